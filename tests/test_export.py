"""bench export --format pytest-benchmark: the numbers pytest-benchmark would compute, in a file
its own ``pytest-benchmark compare`` loads."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.read.export import pytest_benchmark_stats
from tests.conftest import REPO, bench_cmd

pytest_benchmark = pytest.importorskip("pytest_benchmark.stats")
RUN = REPO / "tests" / "golden" / "gate" / "candidate-run"


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 30])
def test_stats_equal_pytest_benchmarks_own(n):
    # every residue of n mod 4 exercises another branch of its quartile methods
    rng = np.random.default_rng(n)
    samples = [float(v) for v in 0.01 * rng.lognormal(0, 0.3, size=n)]
    theirs = pytest_benchmark.Stats()
    for v in samples:
        theirs.update(v)
    ours = pytest_benchmark_stats(samples)
    assert list(ours) == list(theirs.fields)
    for field in theirs.fields:
        want = getattr(theirs, field)
        assert ours[field] == (want if isinstance(want, str | int) else pytest.approx(want)), field


def pytest_benchmark_cli() -> str:
    found = Path(sys.executable).parent / "pytest-benchmark"
    return str(found) if found.exists() else (shutil.which("pytest-benchmark") or "")


def test_exported_file_loads_in_pytest_benchmark_compare(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        bench_cmd("export", str(RUN), "--format", "pytest-benchmark", "-o", str(out)),
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5 benchmarks from run 20260102-000000-ci-bbbb" in done.stdout
    doc = json.loads(out.read_text())
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    first = doc["benchmarks"][0]
    assert first["name"] == "jax-cpu-train-bs32-float32-synthetic"
    assert first["stats"]["rounds"] == 30 and first["stats"]["iterations"] == 1
    assert "data" not in first["stats"]

    cli = pytest_benchmark_cli()
    assert cli, "pytest-benchmark's CLI is installed with the test extra"
    # cwd: compare creates its default storage folder (.benchmarks) there
    shown = subprocess.run([cli, "compare", str(out)], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Failed to load" not in shown.stdout + shown.stderr
    for benchmark in doc["benchmarks"]:
        assert benchmark["name"] in shown.stdout
    # its table shows our median of the first cell (in ms, 4 decimals)
    assert f"{first['stats']['median'] * 1e3:,.4f}" in shown.stdout


def test_include_data_writes_every_step_time(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run(bench_cmd("export", str(RUN), "-o", str(out), "--include-data"), check=True,
                   capture_output=True)  # fmt: skip
    cells = [json.loads(line) for line in (RUN / "cells.jsonl").read_text().splitlines()]
    doc = json.loads(out.read_text())
    assert doc["benchmarks"][0]["stats"]["data"] == cells[0]["samples"]["step_time_s"]


def test_export_of_a_missing_run_exits_2(tmp_path):
    done = subprocess.run(bench_cmd("export", str(tmp_path), "-o", str(tmp_path / "x.json")),
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "not a bench run folder" in done.stderr
    assert "Traceback" not in done.stderr
