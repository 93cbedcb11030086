"""The command line: fast paths import no framework; bad input exits 2 and runs nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, bench_cmd

NO_FRAMEWORK = (
    "import sys, runpy; sys.argv = {argv!r}\n"
    "try:\n    runpy.run_module('bench', run_name='__main__')\n"
    "except SystemExit as e:\n    code = e.code\n"
    "loaded = [m for m in ('jax', 'tensorflow', 'keras', 'flax') if m in sys.modules]\n"
    "print('LOADED', loaded, 'EXIT', code)\n"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--help"],
        ["bench", "validate", "scenarios/quickstart.yaml"],
        ["bench", "schema"],
        ["bench", "list"],
        ["bench", "results", "--results-dir", "/nonexistent"],
    ],
)
def test_fast_commands_import_no_framework(argv):
    done = subprocess.run(
        [sys.executable, "-c", NO_FRAMEWORK.format(argv=argv)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "LOADED [] EXIT 0" in done.stdout, done.stdout + done.stderr


BROKEN = {
    "syntax": ("name: b\nmodel: mlp\nmatrix: {batch_size: [8\n", ":4: invalid YAML"),
    "unknown_key": ("name: b\nmodel: mlp\nbatchsize: 8\n", ":3: batchsize: unknown key"),
    "wrong_type": ("name: b\nmodel: mlp\nseed: lots\n", ":3: seed: got 'lots'"),
    "empty_axis": (
        "name: b\nmodel: mlp\nmatrix:\n  framework: []\n",
        ":4: matrix.framework: got []",
    ),
    "unknown_model": ("name: b\nmodel: nope\n", ":2: model: unknown model 'nope'"),
    "negative_batch": (
        "name: b\nmodel: mlp\nmatrix:\n  batch_size: [-8]\n",
        ":4: matrix.batch_size[0]: got -8",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_scenarios_exit_2_name_the_line_and_write_nothing(case, tmp_path):
    text, expected = BROKEN[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    results = tmp_path / "results"
    for command in (["validate", str(path)], ["run", str(path), "--results-dir", str(results)]):
        done = subprocess.run(bench_cmd(*command), capture_output=True, text=True)
        assert done.returncode == 2, done.stderr
        assert f"{path}{expected}" in done.stderr
    assert not results.exists()


def test_validate_reports_every_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nmodel: mlp\nseed: x\n")
    done = subprocess.run(
        bench_cmd("validate", "scenarios/quickstart.yaml", str(bad)),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "quickstart.yaml: valid, 12 cells" in done.stdout
    assert "bad.yaml:3: seed" in done.stderr


def test_schema_is_json_and_dry_run_lists_cells():
    schema = json.loads(
        subprocess.run(bench_cmd("schema"), capture_output=True, text=True, check=True).stdout
    )
    assert schema["title"] == "bench scenario"
    done = subprocess.run(
        bench_cmd("run", "scenarios/quickstart.yaml", "--dry-run"),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "jax-cpu-train-bs32-float32-synthetic" in done.stdout and "12 cells" in done.stdout


def test_list_shows_models_and_scenarios():
    done = subprocess.run(bench_cmd("list"), cwd=REPO, capture_output=True, text=True, check=True)
    assert "mlp" in done.stdout and "quickstart.yaml" in done.stdout


def test_run_needs_a_scenario_or_resume(tmp_path: Path):
    assert subprocess.run(bench_cmd("run"), capture_output=True).returncode == 2
    done = subprocess.run(
        bench_cmd("run", "--resume", str(tmp_path)), capture_output=True, text=True
    )
    assert done.returncode == 2 and "not a bench run folder" in done.stderr
