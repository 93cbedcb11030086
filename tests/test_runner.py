"""Real runs on the CPU through workers: both frameworks, crashes, hangs, kills, Ctrl-C, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.runfolder import load_run
from tests.conftest import RealRun, bench_cmd, sigint_default

pytestmark = pytest.mark.slow

FAST = """\
measure: {warmup_steps: 1, min_steps: 3, min_seconds: 0.0, max_seconds: 2.0, target_rel_ci: 0.5,
          timeout_s: 60}
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(body + FAST)
    return path


def run_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []


def bench_run(scenario: Path, results: Path, *extra: str, timeout: float = 300):
    return subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(results), *extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_both_frameworks_train_and_predict_on_cpu(real_run: RealRun):
    run_dir = real_run.run_dir
    run = load_run(run_dir)
    assert run.meta["status"] == "complete"
    assert run.meta["scenario"]["text"] == real_run.scenario.read_text()
    env = run.meta["environment"]
    assert env["host"]["cpu_model"] and env["python"]["version"]
    assert env["packages"]["jax"] and env["packages"]["tensorflow"]
    assert set(env["frameworks"]) == {"jax", "tensorflow"}
    assert len(run.cells) == 4
    for record in run.cells.values():
        assert record["status"] == "ok", record
        metrics = record["metrics"]
        steps = metrics["step_time_s"]
        assert steps["unit"] == "s" and 0 < steps["median"] <= steps["p99"]
        assert len(record["samples"]["step_time_s"]) == steps["n"] >= 3
        # examples/s is derived from the measured median, not written in.
        assert metrics["examples_per_s"]["value"] == pytest.approx(16 / steps["median"])
        assert metrics["compile_s"]["value"] > 0 and metrics["compile_s"]["method"]
        assert "unavailable" in metrics["peak_device_memory_bytes"]  # CPU: says why
        # Every metric says its unit, and either how it was measured or why it could not be.
        for name, entry in metrics.items():
            if name not in ("run_length", "telemetry"):
                assert "unit" in entry and ("method" in entry or "unavailable" in entry), name
        assert 0 < metrics["mfu"]["value"] <= 1 or "mfu_above_calibration" in record["flags"]
        assert metrics["flops_per_example"]["value"] > 0
        assert metrics["cost_per_million_examples_usd"]["value"] > 0
        assert "energy_j" in metrics and "host_cpu_util_pct" in metrics["telemetry"]
    assert (
        run.cells["jax-cpu-train-bs16-float32-synthetic"]["metrics"]["param_count"]["value"]
        == run.cells["tensorflow-cpu-train-bs16-float32-synthetic"]["metrics"]["param_count"][
            "value"
        ]
    )
    assert "run " + run.run_id in real_run.stdout


@pytest.mark.heavy
def test_crash_hang_nan_and_missing_device_are_recorded_and_the_sweep_goes_on(tmp_path, worker_env):
    # toy_model: batch 9 kills its worker, 7 hangs, 11 gives NaN; gpu is absent here.
    scenario = write(
        tmp_path,
        """\
name: faults
model: tests.fixtures.toy_model:factory
matrix:
  batch_size: [4, 9, 5, 7, 6, 11]
include:
  - {device: gpu, batch_size: 4}
""",
    )
    text = scenario.read_text().replace("timeout_s: 60", "timeout_s: 15")
    scenario.write_text(text)
    done = bench_run(scenario, tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr
    run = load_run(run_dirs(tmp_path / "results")[0])
    status = {
        cid.split("-")[3]: (r["status"], r["reason"])
        for cid, r in run.cells.items()
        if r["key"]["device"] == "cpu"
    }
    assert status["bs4"][0] == status["bs5"][0] == status["bs6"][0] == "ok"
    assert status["bs9"] == ("failed", status["bs9"][1]) and "SIGKILL" in status["bs9"][1]
    assert status["bs7"][0] == "timeout" and "timeout_s=15" in status["bs7"][1]
    assert status["bs11"][0] == "invalid" and "non-finite loss" in status["bs11"][1]
    gpu = run.cells["jax-gpu-train-bs4-float32-synthetic"]
    assert gpu["status"] == "skipped" and "no GPU visible to jax" in gpu["reason"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


@pytest.mark.heavy
def test_killed_worker_then_interrupt_then_resume_runs_only_missing_cells(tmp_path, worker_env):
    # Batch 7 hangs: while it does, kill its worker from outside (as the OOM killer or a user
    # would). Then interrupt the run during a later cell and resume it.
    scenario = write(
        tmp_path,
        """\
name: resume
model: tests.fixtures.toy_model:factory
matrix:
  batch_size: [4, 7, 5, 6, 8, 10, 12, 13]
""",
    )
    scenario.write_text(scenario.read_text().replace("min_seconds: 0.0", "min_seconds: 1.0"))
    results = tmp_path / "results"
    # bs6 hangs in this run only, so the interrupt lands during a cell, never after the last
    proc = subprocess.Popen(
        bench_cmd("run", str(scenario), "--results-dir", str(results)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
        env={**os.environ, "TOY_HANG_ALSO": "6"},
    )
    run_dir = _wait_for(lambda: (run_dirs(results) or [None])[0])
    cells = run_dir / "cells.jsonl"

    def count() -> int:
        return len(cells.read_text().splitlines()) if cells.exists() else 0

    _wait_for(lambda: count() >= 1)  # bs4 done; the worker is now hanging in bs7's build
    time.sleep(1.0)
    (worker,) = _children(proc.pid)
    os.kill(worker, signal.SIGKILL)
    _wait_for(lambda: count() >= 3)  # bs7 recorded, bs5 done on a fresh worker, bs6 hangs
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    run = load_run(run_dir)
    assert run.meta["status"] == "interrupted"
    assert run.cells["jax-cpu-train-bs7-float32-synthetic"]["status"] == "failed"
    assert "worker killed by SIGKILL" in run.cells["jax-cpu-train-bs7-float32-synthetic"]["reason"]
    before = {cid: r["finished_at"] for cid, r in run.cells.items()}
    assert len(before) == 3
    assert "bench run --resume" in out

    done = subprocess.run(
        bench_cmd("run", "--resume", str(run_dir)), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stdout + done.stderr  # bs7 stays failed
    run = load_run(run_dir)
    assert run.meta["status"] == "complete" and run.meta["resumed_at"]
    assert len(run.cells) == 8
    lines = [json.loads(line) for line in cells.read_text().splitlines()]
    assert len(lines) == 8  # no finished cell ran twice
    for cid, finished in before.items():
        assert run.cells[cid]["finished_at"] == finished


@pytest.mark.heavy
def test_repeats_run_each_cell_in_fresh_processes(tmp_path, worker_env):
    scenario = write(tmp_path, "name: rep\nmodel: tests.fixtures.toy_model:factory\n")
    scenario.write_text(scenario.read_text().replace("timeout_s: 60", "timeout_s: 60, repeats: 2"))
    done = bench_run(scenario, tmp_path / "results")
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = load_run(run_dirs(tmp_path / "results")[0]).cells.values()
    assert len(record["repeats"]) == 2
    assert len(record["samples"]["step_time_s_by_repeat"]) == 2
    assert "between_process_cv" in record["metrics"]
    log = (run_dirs(tmp_path / "results")[0] / "worker-jax-cpu.log").read_text()
    assert log.count("=== worker jax/cpu started") == 2  # one process per repeat
