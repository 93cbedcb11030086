"""Data parallelism on fake devices: N replicas train to the parameters one device reaches on
the same global batch; multi-host jobs on localhost through ``bench run``.

Fake devices: JAX splits the CPU with JAX_NUM_CPU_DEVICES, TensorFlow into logical CPU devices
(BENCH_CPU_DEVICES, read by the TF backend before TF starts). Each framework runs in its own
subprocess, as in the workers: TF and JAX never share a process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.runfolder import load_run
from tests.conftest import REPO, bench_cmd

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

# float32 sums of the same numbers in another order (a per-device partial sum, then the
# all-reduce) differ in the last bits; after 3 SGD steps that is ~1e-7 of parameters ~0.1-1.
TOLERANCE = 1e-5


def dp_step(framework: str, replicas: int, devices: dict[str, str]) -> dict:
    env = {**os.environ, **devices, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "-1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.dp_step", framework, str(replicas)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_jax_four_devices_train_like_one_on_the_same_global_batch():
    found = dp_step("jax", 4, {"JAX_NUM_CPU_DEVICES": "4"})
    assert found["split"]["replicas"] == 4 and found["split"]["per_device_batch_size"] == 4
    assert found["max_abs_change"] > 1e-3  # the steps did move the parameters
    assert found["max_abs_diff"] < TOLERANCE
    assert found["max_abs_diff_k2"] < TOLERANCE  # 2 steps per call: the same 6 steps


def test_tensorflow_two_logical_cpus_train_like_one_on_the_same_global_batch():
    found = dp_step("tensorflow", 2, {"BENCH_CPU_DEVICES": "2"})
    assert "MirroredStrategy over 2 replica(s)" in found["split"]["method"]
    assert found["split"]["per_device_batch_size"] == 8
    assert found["max_abs_change"] > 1e-3
    assert found["max_abs_diff"] < TOLERANCE
    assert found["max_abs_diff_k2"] < TOLERANCE


FAST = """\
model: mlp
model_args: {hidden: [32], vocab_size: 50, embed_dim: 4}
measure: {warmup_steps: 1, min_steps: 4, min_seconds: 0.0, max_seconds: 2.0, target_rel_ci: 0.5,
          timeout_s: 180}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_replicas_axis_through_bench_run_records_both_batches_and_scaling(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "name: dp\nbatch_size: 16\nmatrix:\n  framework: [jax, tensorflow]\n"
        "  replicas: [1, 2]\ninclude:\n  - {framework: jax, batch_size: 5, replicas: all}\n" + FAST
    )
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(tmp_path / "r")),
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "250"},  # the whole table on one line per row
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    run = load_run(run_dir)
    for fw in ("jax", "tensorflow"):
        record = run.cells[f"{fw}-cpu-train-bs16-float32-synthetic-r2"]
        assert record["status"] == "ok", record
        assert record["parallelism"]["global_batch_size"] == 16
        assert record["parallelism"]["per_device_batch_size"] == 8
        # CPU replicas are virtual devices sharing one host: MFU and cost count the host once.
        assert "1 x" in record["metrics"]["cost_per_million_examples_usd"]["method"]
    # "all" resolved to the 2 virtual devices the group was given; 5 does not split over them.
    skipped = run.cells["jax-cpu-train-bs5-float32-synthetic-rall"]
    assert skipped["status"] == "skipped"
    assert (
        "batch_size 5 (the global batch) does not split evenly over 2 replicas" in skipped["reason"]
    )
    assert "scaling (same global batch)" in " ".join(done.stdout.split())


def multihost(tmp_path: Path, framework: str, replicas: str) -> tuple[Path, str]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: mh\nframework: {framework}\nbatch_size: 16\nmatrix:\n  replicas: {replicas}\n"
        + FAST
    )
    coordinator = f"127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            bench_cmd(
                "run",
                str(scenario),
                "--results-dir",
                str(tmp_path / f"host{i}"),
                "--coordinator",
                coordinator,
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "250"},
        )
        for i in range(2)
    ]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=400)[0])
        finally:
            if proc.poll() is None:
                proc.kill()
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out
    (primary,) = (tmp_path / "host0").iterdir()
    return primary, outputs[0]


def _check_both_hosts(primary: Path, cell_id: str, replicas: int) -> dict:
    run = load_run(primary)
    assert run.meta["multihost"]["process_id"] == 0
    assert run.meta["multihost"]["num_processes"] == 2
    record = run.cells[cell_id]
    assert record["status"] == "ok", record
    assert [h["process_id"] for h in record["hosts"]] == [0, 1]
    for host in record["hosts"]:
        assert host["status"] == "ok" and host["median_step_s"] > 0 and host["hostname"]
    # Every process took the same number of steps (lockstep), and the aggregate is bounded by
    # the slower host: global batch 16 / its median step time.
    assert record["metrics"]["run_length"]["steps"] == 4
    slowest = max(h["median_step_s"] for h in record["hosts"])
    assert record["metrics"]["examples_per_s"]["value"] == pytest.approx(16 / slowest)
    assert record["parallelism"]["processes"] == 2
    assert record["parallelism"]["replicas"] == replicas
    return record


def test_two_process_jax_job_on_localhost_gathers_both_hosts_figures(tmp_path):
    # 4 replicas over 2 processes: each process splits its CPU into 2 virtual devices.
    primary, out = multihost(tmp_path, "jax", "[2, 4]")
    _check_both_hosts(primary, "jax-cpu-train-bs16-float32-synthetic-r2", 2)
    record = _check_both_hosts(primary, "jax-cpu-train-bs16-float32-synthetic-r4", 4)
    assert record["parallelism"]["local_replicas"] == 2
    assert "per-host" in " ".join(out.split())


def test_two_worker_tensorflow_job_on_localhost_gathers_both_hosts_figures(tmp_path):
    # MultiWorkerMirroredStrategy on CPUs: one replica per worker, so "all" is 2.
    primary, _ = multihost(tmp_path, "tensorflow", "[all, 4]")
    record = _check_both_hosts(primary, "tensorflow-cpu-train-bs16-float32-synthetic-rall", 2)
    assert "MultiWorkerMirroredStrategy" in record["parallelism"]["method"]
    refused = load_run(primary).cells["tensorflow-cpu-train-bs16-float32-synthetic-r4"]
    assert refused["status"] == "skipped"
    assert (
        "replicas 4 asked for, but 2 processes together see only 2 device(s)" in refused["reason"]
    )
