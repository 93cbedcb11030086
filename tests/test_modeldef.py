"""User models (``model: "package.module:factory"``): clear errors for every way a reference can
be wrong, and the minimal example in docs/extending.md runs in both frameworks."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest

from bench.modeldef import ModelError, load_model
from bench.run.scenario import ScenarioError, parse_scenario
from tests.conftest import REPO, bench_cmd

COMPLETE = """\
from pydantic import BaseModel

DESCRIPTION = "test model"


class Args(BaseModel):
    width: int = 4


def data_spec(args): ...
def flops_per_example(args, workload): ...
def build_tf(args): ...
def build_jax(args, dtype): ...
"""
FACTORY = """
def factory():
    import sys

    return sys.modules[__name__]
"""


@pytest.fixture
def user_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write modules into an importable package ``usermodels_<test>`` and return a writer."""
    package = f"usermodels_{abs(hash(tmp_path)) % 10**8}"
    root = tmp_path / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, text: str) -> str:
        (root / f"{name}.py").write_text(textwrap.dedent(text))
        return f"{package}.{name}"

    return write


def test_missing_module_says_it_cannot_be_imported():
    with pytest.raises(ModelError, match=r"cannot import model module 'no_such_pkg\.models'"):
        load_model("no_such_pkg.models:factory")


def test_module_whose_own_import_fails_says_why(user_modules):
    module = user_modules("broken", "import not_installed_anywhere\n")
    with pytest.raises(ModelError, match="No module named 'not_installed_anywhere'"):
        load_model(f"{module}:factory")


def test_missing_attribute_is_named():
    with pytest.raises(ModelError, match=r"'tests\.fixtures\.toy_model' has no attribute 'nope'"):
        load_model("tests.fixtures.toy_model:nope")


def test_malformed_reference():
    with pytest.raises(ModelError, match=r"expected 'package\.module:factory'"):
        load_model(":factory")


def test_object_missing_part_of_the_protocol_lists_what_is_missing(user_modules):
    module = user_modules("partial", 'DESCRIPTION = "half a model"\n' + FACTORY)
    with pytest.raises(ModelError) as info:
        load_model(f"{module}:factory")
    assert str(info.value) == (
        f"model '{module}:factory' does not provide Args, data_spec, flops_per_example, "
        "build_tf, build_jax (see bench.modeldef)"
    )


def test_attributes_of_the_wrong_kind_are_named(user_modules):
    text = COMPLETE.replace("class Args(BaseModel):", "class Args:").replace(
        "def data_spec(args): ...", "data_spec = 3"
    )
    module = user_modules("wrong", text + FACTORY)
    with pytest.raises(ModelError) as info:
        load_model(f"{module}:factory")
    assert str(info.value) == (
        f"model '{module}:factory': Args is not a pydantic BaseModel class; "
        "data_spec is not callable (see bench.modeldef)"
    )


def test_factory_that_raises_is_reported(user_modules):
    module = user_modules("raises", "def factory():\n    raise RuntimeError('no GPU license')\n")
    with pytest.raises(ModelError, match=r"model factory .* raised RuntimeError: no GPU license"):
        load_model(f"{module}:factory")


def test_an_object_with_the_attributes_is_used_as_is(user_modules):
    # A class (or module) that has ``Args`` is the model itself, not a factory to call.
    module = user_modules(
        "classy",
        """\
        from pydantic import BaseModel


        class Model:
            DESCRIPTION = "a class as the model"

            class Args(BaseModel):
                width: int = 4

            data_spec = flops_per_example = build_tf = build_jax = staticmethod(print)
        """,
    )
    model = load_model(f"{module}:Model")
    assert model.Args().width == 4


def test_validate_reports_a_bad_model_with_its_line():
    with pytest.raises(ScenarioError) as info:
        parse_scenario("name: t\nmodel: no_such_pkg.models:factory\n", "s.yaml")
    assert info.value.problems == [
        "s.yaml:2: model: cannot import model module 'no_such_pkg.models': "
        "No module named 'no_such_pkg'"
    ]


def docs_model() -> str:
    page = (REPO / "docs" / "extending.md").read_text()
    section = page[page.index("## Add a model") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
@pytest.mark.heavy
def test_docs_example_model_runs_in_both_frameworks(tmp_path):
    (tmp_path / "mymodels").mkdir()
    (tmp_path / "mymodels" / "__init__.py").write_text("")
    (tmp_path / "mymodels" / "linear.py").write_text(docs_model())
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: readme\nmodel: mymodels.linear:factory\nmodel_args: {features: 64}\n"
        "matrix:\n  framework: [jax, tensorflow]\n  workload: [train, predict]\n"
        "measure: {warmup_steps: 1, min_steps: 3, min_seconds: 0.0, max_seconds: 1.0,"
        " target_rel_ci: 0.5, timeout_s: 120}\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(tmp_path / "results")),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 ok" in done.stdout
