"""A workload added without editing bench: the "Add a workload" example of docs/extending.md,
taken from the page, registered from this test, runs end to end through the runner and a real
worker process, and shows in ``bench results``, ``bench compare`` and ``--where``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.run.scenario import ScenarioError, load_scenario
from bench.workloads import registry
from tests.conftest import REPO
from tests.fixtures.page_plugin import plugin_from_page

PAGE = REPO / "docs" / "extending.md"
MODULE = "echo_workload"

SCENARIO = """\
name: echo
description: the echo plug-in, two batch sizes
workload: echo
model: mlp
model_args: {hidden: [8]}
framework: jax
device: cpu
matrix:
  batch_size: [4, 16]
measure: {warmup_steps: 1, min_steps: 50, min_seconds: 0, max_seconds: 5, timeout_s: 120}
"""


@pytest.fixture
def echo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The page's module on the import path of this process and of the workers it starts."""
    with plugin_from_page(PAGE, MODULE, tmp_path / "plugins", monkeypatch) as module:
        yield module.SPEC
        registry.unregister("echo")


def test_an_unregistered_workload_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "workload: got 'echo'; expected one of: train, predict, serve" in str(err.value)


@pytest.mark.slow
def test_the_page_workload_runs_in_a_worker_and_is_read_like_any_other(echo, tmp_path, capsys):
    assert "echo" in registry.names() and echo.module == MODULE
    path = tmp_path / "echo.yaml"
    path.write_text(SCENARIO)
    loaded = load_scenario(path)
    assert [c.key.workload for c in loaded.cells] == ["echo", "echo"]
    results = tmp_path / "results"

    runs = []
    for _ in range(2):  # two runs, for compare
        assert main(["run", str(path), "--results-dir", str(results)]) == 0
        runs.append(max(results.iterdir(), key=lambda p: p.stat().st_mtime))
        capsys.readouterr()
    lines = (runs[0] / "cells.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["status"] for r in records] == ["ok", "ok"], [r.get("reason") for r in records]
    assert all(r["metrics"]["examples_per_s"]["value"] > 0 for r in records)
    assert {r["worker_pid"] for r in records}.isdisjoint({__import__("os").getpid()})

    assert main(["results", str(runs[0])]) == 0
    table = capsys.readouterr().out
    assert "echo" in table and table.count(" ok ") + table.count("ok ") >= 2, table
    assert main(["results", str(runs[0]), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["workload"], r["status"]) for r in rows] == [("echo", "ok")] * 2

    assert main(["compare", str(runs[0]), str(runs[1]), "--format", "json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    throughput = [m for g in compared["groups"] for m in g["metrics"]
                  if m["field"] == "examples_per_s"]  # fmt: skip
    assert len(throughput) == 2 and all(len(m["values"]) == 2 for m in throughput)

    # --where selects by the workload's name and by its metric.
    where = [
        "--where",
        "workload==echo",
        "--where",
        "examples_per_s>0",
        "--where",
        "batch_size>=16",
    ]
    assert main(["compare", str(runs[0]), str(runs[1]), *where, "--format", "json"]) == 0
    picked = json.loads(capsys.readouterr().out)["groups"]
    rows = [m for g in picked for m in g["metrics"] if m["field"] == "examples_per_s"]
    assert len(rows) == 1, picked
