"""An A/A pair through real workers: two runs of the same scenario on the same machine make no
claim of a difference (issue 12, invariant 10): nothing better/worse in ``bench compare``, no
lead beyond noise between a cell and its own rerun, and no ``input_bound`` that the other run
contradicts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.read.recommend import margin, objectives
from bench.read.runset import load_runs
from bench.runfolder import load_run
from tests.conftest import REPO, bench_cmd

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

# The quickstart's MLP training, both frameworks, two batch sizes, plus a tiny tfdata cell
# (4096 tabular examples) judged against the synthetic one; short run lengths. Three processes
# per cell: on the 2-core VM this was written on, the same cell measured again in the same
# worker moved by up to 1.4x with nothing else running, so the claim is judged against the
# spread between processes that the runs measured (bench.measure.noise), not a fixed 10%.
OVERRIDES = [
    "measure.repeats=3",
    "matrix.workload=[train]",
    "matrix.batch_size=[256,1024]",
    "include=[{framework: jax, workload: train, batch_size: 256, input: tfdata, pipeline: tuned}]",
    "measure.min_seconds=1.0",
    "measure.max_seconds=1.5",
]


def run(results: Path, data: Path) -> Path:
    sets = [*OVERRIDES, f"data={{examples: 4096, shards: 2, dir: {data}}}"]
    args = [a for s in sets for a in ("--set", s)]
    done = subprocess.run(
        bench_cmd(
            "run", str(REPO / "scenarios" / "quickstart.yaml"), "--results-dir", str(results), *args
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(p for p in results.iterdir() if p.is_dir())[-1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), capture_output=True, text=True, timeout=120)


def test_a_rerun_of_the_same_scenario_claims_no_difference(tmp_path):
    data = tmp_path / "data"
    a = run(tmp_path / "results", data)
    b = run(tmp_path / "results", data)

    done = bench("compare", str(a), str(b), "--format", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    # the spread between repeated processes, widened where other processes shared the machine
    assert "from the spread between repeated processes" in doc["noise_rule"] or (
        "(spread between repeated processes)" in doc["noise_rule"]
    )
    ratios = [
        (g["match"], m["field"], r)
        for g in doc["groups"]
        for m in g["metrics"]
        for r in m["ratios"]
        if r is not None
    ]
    assert any(r["verdict"] == "same" for _, _, r in ratios)  # something was judged
    claims = [
        (match, field, r) for match, field, r in ratios if r["verdict"] in ("better", "worse")
    ]
    # on failure, say what the machine did: the kernel and others' share are what widen the band
    machine = {
        run.name: {
            m: {k: sorted(v)[len(v) // 2] for k, v in e.items() if isinstance(v, list) and v}
            for m, e in load_run(run).meta["reference_kernel"].items()
            if isinstance(e, dict)
        }
        for run in (a, b)
    }
    assert not claims, (doc["noise_rule"], machine, claims)

    # recommend sets aside a host's earlier record of the same cell, so the claim it could
    # make between a cell and its rerun is judged here directly, both ways round.
    runset = load_runs([a, b])
    throughput = objectives()["throughput"]
    by_key: dict[str, list] = {}
    for cell in runset.cells:
        if cell.ok:
            by_key.setdefault(cell.cell_id, []).append(cell)
    assert len(by_key) == 5 and all(len(pair) == 2 for pair in by_key.values())
    for cell_id, (first, second) in by_key.items():
        faster, slower = sorted((first, second), key=lambda c: -(c.number("examples_per_s") or 0.0))
        runs = [(r.run_id, r.meta) for r in runset.runs]
        lead = margin(
            throughput, faster, slower, runs=[runs[faster.run_index], runs[slower.run_index]]
        )
        assert lead.within_noise is True, (cell_id, lead)
    done = bench("recommend", str(a), str(b))
    assert done.returncode == 0, done.stderr
    assert "spread between repeated processes" in done.stdout

    # input_bound: no claim that the other run contradicts. The tiny tf.data cell is really
    # slower than its synthetic twin on 2 cores (its share was 0.52-0.63 in runs on the project
    # VM: tf.data's threads take CPU from the step), so one run may show that beyond its noise
    # and the other, noisier, not: that is an unshown claim, not a contradicted one. A flag is
    # contradicted when the other run's interval of the same share does not lie below 1.
    cells = {folder: load_run(folder).cells for folder in (a, b)}
    tfdata = "jax-cpu-train-bs256-float32-tfdata-tuned"
    for cell_id, record in cells[a].items():  # the worker measured the machine per cell
        assert 0 <= record["metrics"]["others_cpu_share"]["value"] <= 1, cell_id
    for side, other in ((a, b), (b, a)):
        assert "input_bound" in cells[side][tfdata]["metrics"]  # judged in both runs
        for cell_id, record in cells[side].items():
            if (
                "input_bound" in record["flags"]
                and "input_bound" not in cells[other][cell_id]["flags"]
            ):
                seen = cells[other][cell_id]["metrics"]["input_bound"]
                interval = seen.get("share_ci95") or [seen["share_of_synthetic"]] * 2
                assert interval[1] < 1.0, (cell_id, record["metrics"]["input_bound"], seen)
