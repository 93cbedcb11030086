"""The prepared GPU script stays runnable: every ``bench run`` line of ``.ci/device-check``
validates, with its overrides, on this CPU machine (``--dry-run`` lists the cells, runs none).

A GPU session is short and rare; a script that fails validation there measures nothing. bash
expands each line exactly as the script would (its arrays, ``$OLDPWD`` = the repository root,
``$OUT``), then the CLI runs in-process with ``--dry-run`` appended.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from bench.cli import main
from tests.conftest import REPO

SCRIPT = REPO / ".ci" / "device-check"
# The models of the GPU performance goals, which the script must keep measuring.
GOALS = (
    ("resnet_train.yaml", ("model_args.depth=50", "model_args.image_size=224", "batch_size=256")),
    (
        "transformer_train.yaml",
        (
            "model_args.d_model=2048",
            "model_args.num_layers=8",
            "model_args.num_heads=16",
            "model_args.seq_len=1024",
            "batch_size=16",
        ),
    ),
)


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined (a heredoc body is never a ``bench`` line)."""
    return re.sub(r"\\\n\s*", " ", text).splitlines()


def _run_lines() -> list[str]:
    """Each ``bench run ...`` command, without the ``| tee`` that follows it."""
    return [
        line.split(" | ")[0].strip()
        for line in _logical_lines(SCRIPT.read_text())
        if line.startswith("bench run ")
    ]


def _expanded(line: str, tmp_path) -> list[str]:
    """The argv bash would pass for ``line``, after the script's own array assignments."""
    arrays = [ln for ln in _logical_lines(SCRIPT.read_text()) if re.match(r"^\w+=\(", ln)]
    body = "\n".join(
        [
            f"OUT={tmp_path}",
            f"OLDPWD={REPO}",
            "bench() { printf '%s\\0' \"$@\"; }",
            *arrays,
            line,
        ]
    )
    done = subprocess.run(["bash", "-c", body], capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


def test_the_script_has_the_goal_configurations():
    lines = _run_lines()
    assert len(lines) >= 5
    for scenario, settings in GOALS:
        found = [ln for ln in lines if scenario in ln and all(s in ln for s in settings)]
        assert found, f"no bench run line of {scenario} with {settings}"
        assert "matrix.precision=[bfloat16]" in found[0] and "jax_gpu" in found[0]


@pytest.mark.parametrize(
    "line", _run_lines(), ids=lambda line: line.split()[2].strip('"').rsplit("/")[-1]
)
def test_every_run_line_validates(line, tmp_path, capsys):
    argv = _expanded(line, tmp_path)
    assert argv[:1] == ["run"], argv
    code = main([*argv, "--dry-run"])
    shown = capsys.readouterr()
    assert code == 0, f"{line}\n{shown.out}{shown.err}"
    assert re.search(r"^[1-9]\d* cells$", shown.out, re.M), shown.out
    assert not list(tmp_path.iterdir()), "a dry run wrote files"
