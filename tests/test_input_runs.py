"""tfdata cells through real workers: records carry the input's numbers and where its files
are; a corrupt data file fails its cells with the file named, and the sweep goes on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.runfolder import load_run
from tests.conftest import bench_cmd

pytestmark = pytest.mark.slow

SCENARIO = """\
name: inputs
model: tests.fixtures.toy_model:factory
batch_size: 4
matrix:
  framework: [jax, tensorflow]
  input: [tfdata, synthetic]
  pipeline: [naive, tuned]
data: {{examples: 32, shards: 2, dir: {data}}}
measure: {{warmup_steps: 1, min_steps: 3, min_seconds: 0.0, max_seconds: 1.0, target_rel_ci: 0.5,
          timeout_s: 120}}
"""


def run(scenario: Path, results: Path) -> tuple[subprocess.CompletedProcess, Path]:
    done = subprocess.run(
        bench_cmd("run", str(scenario), "--results-dir", str(results)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done, sorted(p for p in results.iterdir() if p.is_dir())[-1]


@pytest.mark.heavy
def test_tfdata_cells_record_input_numbers_and_a_corrupt_file_fails_only_them(tmp_path, worker_env):
    data = tmp_path / "data"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.format(data=data))
    done, run_dir = run(scenario, tmp_path / "results")
    assert done.returncode == 0, done.stdout + done.stderr
    cells = load_run(run_dir).cells
    assert sorted(cells) == sorted(
        f"{fw}-cpu-train-bs4-float32-{inp}"
        for fw in ("jax", "tensorflow")
        for inp in ("tfdata-naive", "tfdata-tuned", "synthetic")
    )
    (folder,) = [p for p in data.iterdir() if p.is_dir()]
    for cell_id, record in cells.items():
        assert record["status"] == "ok", record
        if "tfdata" not in cell_id:
            assert "input_wait_s" not in record["metrics"]
            continue
        metrics = record["metrics"]
        for name in ("input_wait_s", "input_wait_fraction", "pipeline_examples_per_s"):
            assert metrics[name]["unit"] and metrics[name]["method"], name
        assert len(record["samples"]["input_wait_s"]) == metrics["step_time_s"]["n"]
        # The synthetic cell ran after these: the runner judged them again when it finished.
        verdict = metrics["input_bound"]
        assert verdict["reference_cell"] == cell_id.split("-tfdata")[0] + "-synthetic"
        assert ("input_bound" in record["flags"]) == verdict["value"]
        assert record["input"]["data"]["dir"] == str(folder)
        assert record["input"]["pipeline"] == cell_id.rsplit("-", 1)[1]
    made = [r["input"]["data"]["made"] for c, r in cells.items() if "tfdata" in c]
    assert made.count(True) == 1  # the first tfdata cell made the files; the others reused them
    assert cells["jax-cpu-train-bs4-float32-tfdata-tuned"]["input"]["applied"]["cache"]
    assert "cache_fill_s" in cells["jax-cpu-train-bs4-float32-tfdata-tuned"]["metrics"]

    shard = folder / "train-00000-of-00002.tfrecord"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte: same size, different content
    shard.write_bytes(bytes(raw))
    done, run_dir = run(scenario, tmp_path / "results")
    assert done.returncode == 1, done.stdout + done.stderr
    cells = load_run(run_dir).cells
    for cell_id, record in cells.items():
        if "tfdata" in cell_id:
            assert record["status"] == "failed"
            assert f"data file {shard} is corrupt" in record["reason"]
        else:
            assert record["status"] == "ok"  # the sweep went on after the failed cells


def test_bench_data_make_writes_once_then_finds_the_files(tmp_path):
    args = ("data", "make", "mlp", "--examples", "16", "--shards", "2", "--dir", str(tmp_path))
    first = subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "mlp (tabular): 16 examples in 2 files" in first.stdout and str(folder) in first.stdout
    assert "made in" in first.stdout
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "train-00000-of-00002.csv",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.csv",
        "train-00001-of-00002.tfrecord",
    ]
    again = subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=300)
    assert "found in the cache, checked" in again.stdout and str(folder) in again.stdout


@pytest.mark.heavy
def test_tfdata_feeds_data_parallel_replicas_in_both_frameworks(tmp_path, worker_env):
    # The backend's placement shards each call's input (a JAX mesh, a TF MirroredStrategy over
    # logical CPUs); the pipeline and its prefetch thread hand over whole batches to it.
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        SCENARIO.format(data=tmp_path / "data")
        .replace("batch_size: 4\n", "batch_size: 4\nreplicas: 2\n")
        .replace("input: [tfdata, synthetic]", "input: [tfdata]")
        .replace("pipeline: [naive, tuned]", "pipeline: [tuned]")
    )
    done, run_dir = run(scenario, tmp_path / "results")
    assert done.returncode == 0, done.stdout + done.stderr
    cells = load_run(run_dir).cells
    assert sorted(cells) == [
        "jax-cpu-train-bs4-float32-tfdata-tuned-r2",
        "tensorflow-cpu-train-bs4-float32-tfdata-tuned-r2",
    ]
    for record in cells.values():
        assert record["parallelism"]["replicas"] == 2
        assert record["metrics"]["input_wait_fraction"]["unit"] == "fraction"
        assert record["metrics"]["pipeline_examples_per_s"]["value"] > 0
