"""The gate on a real CPU run: against itself and its saved baseline it never fails the build.

Identical samples: nothing may be REGRESSED at all, whatever the machine did. A second run of
the same scenario against the first is an A/A pair whose verdict rests on what the machine did
between the runs (on a loaded 2-core VM two back-to-back runs of the same MLP differed by 1.5x
when a neighbour took one core; the gate must then call the machine UNSTABLE and stay advisory):
that is measured by ``.ci/gate-pairs``, which CI runs and whose figures it prints (issue 21),
not asserted here. Run with -s to see the reports.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.measure.reference import SAMPLES
from tests.conftest import bench_cmd

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

SCENARIO = """\
name: gate-e2e
model: mlp
model_args: {hidden: [256, 256]}
framework: jax
device: cpu
matrix:
  workload: [train, predict]
  batch_size: [128]
measure: {warmup_steps: 3, min_steps: 20, min_seconds: 1.0, max_seconds: 2.0,
          target_rel_ci: 0.05, timeout_s: 120, repeats: 3}
"""


def bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(bench_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("gate-e2e")
    (root / "s.yaml").write_text(SCENARIO)
    done = bench("run", "s.yaml", "--results-dir", "results", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    (first,) = (root / "results").iterdir()
    return root, first


def test_every_run_times_the_reference_kernel_at_start_and_end(one_run):
    _, first = one_run
    ref = json.loads((first / "run.json").read_text())["reference_kernel"]
    for moment in ("start", "end"):
        assert len(ref[moment]["matmul_s"]) == len(ref[moment]["copy_s"]) == SAMPLES
        # about 0.2 s on a quiet 2-core VM; printed, not asserted (no test asserts on speed)
        print(f"reference kernel {moment}: {ref[moment]['wall_s']:.3f} s")
    host = ref["end"]["host_cpu"]
    assert 0.0 <= host["others_share"] <= 1.0 and host["cpus"] >= 1


def test_a_run_against_itself_and_its_saved_baseline_never_regresses(one_run):
    root, first = one_run
    shown = bench("gate", "--baseline", str(first), "--candidate", str(first), "--metric", "all",
                  cwd=root)  # fmt: skip
    print(shown.stdout)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    saved = root / "baselines" / "b.json"
    assert bench("baseline", "save", str(first), "-o", str(saved), cwd=root).returncode == 0
    for baseline in (first, saved):
        done = bench("gate", "--baseline", str(baseline), "--candidate", str(first), "--metric",
                     "all", "--format", "json", cwd=root)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["environment"]["match"]
        gated = [r for r in report["rows"] if r["verdict"] != "INSUFFICIENT_DATA"]
        # step time and throughput of both cells; identical samples: ratio 1, p = 1. A noisy
        # cell (bimodal steps on a busy machine) can have an interval wider than +-10% even
        # against itself: INCONCLUSIVE, which is honest, and never fails
        assert len(gated) == 4
        assert {r["verdict"] for r in gated} <= {"NO_CHANGE", "INCONCLUSIVE"}
        assert all(r["ratio"] == 1.0 and r["p_value"] == 1.0 for r in gated)
