"""The environment fingerprint, the reference kernel, and the machine check built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.gate.decision import GatePolicy
from bench.gate.fingerprint import compare_fingerprints, fingerprint, machine_check, robust_cv
from bench.measure.reference import SAMPLES, cpu_snapshot, others_cpu, run_reference_kernel

ENV = {
    "host": {"hostname": "a", "cpu_model": "Xeon", "cpu_count_logical": 8, "cpu_count_usable": 8,
             "memory_bytes": 1},
    "packages": {"jax": "0.4.35", "jaxlib": "0.4.35", "flax": None, "tensorflow": "2.18.0",
                 "keras": "3.6.0", "numpy": "2.1"},
    "accelerators": [
        {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54"},
        {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54"},
    ],
    "frameworks": {"jax": {"gpu": {"present": True}}},
}  # fmt: skip


def test_fingerprint_keeps_what_changes_timings():
    assert fingerprint(ENV) == {
        "cpu_model": "Xeon",
        "cpu_count": "8",
        "accelerators": "2 x NVIDIA H100 80GB HBM3",
        "accelerator_driver": "550.54",
        # only the framework whose worker started; flax is not installed
        "framework.jax": "0.4.35",
        "framework.jaxlib": "0.4.35",
    }
    tpu = {**ENV, "accelerators": [{"kind": "tpu", "accelerator_type": "v5litepod-8", "chips": 8}]}
    assert fingerprint(tpu)["accelerators"] == "8 x TPU v5litepod-8"
    limited = {**ENV, "host": {**ENV["host"], "cpu_count_usable": 4}}
    assert fingerprint(limited)["cpu_count"] == "4 usable of 8"


def test_hostname_and_memory_do_not_count_but_the_driver_does():
    other_host = {**ENV, "host": {**ENV["host"], "hostname": "b", "memory_bytes": 2}}
    assert compare_fingerprints([fingerprint(ENV)], [fingerprint(other_host)]).match
    driver = {
        **ENV,
        "accelerators": [{**a, "driver_version": "560.1"} for a in ENV["accelerators"]],
    }
    check = compare_fingerprints([fingerprint(ENV)], [fingerprint(driver)])
    assert check.mismatches == (("accelerator_driver", "550.54", "560.1"),)


def test_a_framework_only_one_side_used_is_not_a_mismatch():
    both = {**ENV, "frameworks": {"jax": {}, "tensorflow": {}}}
    assert compare_fingerprints([fingerprint(ENV)], [fingerprint(both)]).match
    bumped = {**both, "packages": {**ENV["packages"], "jax": "0.5.0"}}
    assert compare_fingerprints([fingerprint(both)], [fingerprint(bumped)]).mismatches == (
        ("framework.jax", "0.4.35", "0.5.0"),
    )


# ------------------------------------------------------------------ the reference kernel


def test_reference_kernel_times_each_kernel_after_one_untimed_call():
    ticks = iter(range(1000))
    found = run_reference_kernel(samples=4, clock=lambda: float(next(ticks)))
    # each timed call reads the clock twice, one tick apart
    assert found["matmul_s"] == found["copy_s"] == [1.0] * 4
    # clock reads: 1 at the start, 2 per timed call (16), 1 at the end: 0 -> 17
    assert found["wall_s"] == 17.0
    assert len(run_reference_kernel()["copy_s"]) == SAMPLES


def test_cpu_snapshot_reads_proc_stat_and_others_is_busy_minus_own(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 0 0 0 10 0 0\ncpu0 1 2 3\n")
    snap = cpu_snapshot(stat)
    assert snap is not None and snap["machine_busy_s"] == pytest.approx(160 / 100, rel=0.5)
    assert cpu_snapshot(tmp_path / "missing") is None
    before = {"machine_busy_s": 100.0, "own_s": 10.0, "clock_s": 0.0, "cpus": 4.0}
    # 10 s: the machine was busy 25 CPU-seconds, 5 of them ours -> others 2 cores of 4
    after = {"machine_busy_s": 125.0, "own_s": 15.0, "clock_s": 10.0, "cpus": 4.0}
    found = others_cpu(before, after)
    assert found is not None
    assert (found["others_cores"], found["others_share"], found["cpus"]) == (2.0, 0.5, 4)
    assert others_cpu(None, after) is None


# ------------------------------------------------------------------ the machine check


def ref(
    matmul_ms: float,
    copy_ms: float,
    cv: float = 0.02,
    seed: int = 0,
    others: float = 0.0,
    end_factor: float = 1.0,
) -> dict:
    rng = np.random.default_rng(seed)
    sigma = math.sqrt(math.log1p(cv * cv))

    def moment(factor: float) -> dict:
        return {
            "matmul_s": list(matmul_ms * 1e-3 * factor * rng.lognormal(0, sigma, 30)),
            "copy_s": list(copy_ms * 1e-3 * factor * rng.lognormal(0, sigma, 30)),
        }

    end = moment(end_factor)
    end["host_cpu"] = {"others_share": others, "others_cores": others * 2, "cpus": 2}
    return {"version": 1, "start": moment(1.0), "end": end}  # fmt: skip


def test_same_machine_is_stable():
    check = machine_check([("b", ref(1, 4, seed=1))], [("c", ref(1, 4, seed=2))])
    assert check.status == "stable", check.reasons
    assert [k.kernel for k in check.kernels] == ["matmul_s", "copy_s"]
    assert all(0.97 < k.ratio < 1.03 for k in check.kernels)


def test_a_slower_machine_is_unstable():
    # copy 20% slower: beyond half the 10% threshold with a tight interval
    check = machine_check([("b", ref(1, 4, seed=1))], [("c", ref(1, 4.8, seed=2))])
    assert check.status == "UNSTABLE"
    assert check.reasons[0].startswith("machine slower: copy_s median 4")


def test_a_faster_machine_is_only_noted():
    check = machine_check([("b", ref(1, 4, seed=1))], [("c", ref(0.7, 4, seed=2))])
    assert check.status == "stable"
    assert "machine faster: matmul_s" in check.notes[0]


def test_a_noisier_machine_is_unstable():
    # robust CV 2% -> ~25%: doubled, and above the 10% threshold
    check = machine_check([("b", ref(1, 4, cv=0.02, seed=1))], [("c", ref(1, 4, cv=0.4, seed=2))])
    assert check.status == "UNSTABLE"
    assert any("noisier" in r for r in check.reasons)


def test_drift_within_the_candidate_run_is_unstable():
    check = machine_check([("b", ref(1, 4, seed=1))], [("c", ref(1, 4, seed=2, end_factor=1.3))])
    assert check.status == "UNSTABLE"
    assert any(
        r.startswith("candidate run c: machine during the run slower") for r in check.reasons
    )


def test_a_shared_candidate_is_unstable_a_shared_baseline_only_noted():
    shared = machine_check([("b", ref(1, 4, seed=1))], [("c", ref(1, 4, seed=2, others=0.3))])
    assert shared.status == "UNSTABLE"
    assert "other processes used 30% of the machine's CPU time" in shared.reasons[0]
    noted = machine_check([("b", ref(1, 4, seed=1, others=0.3))], [("c", ref(1, 4, seed=2))])
    assert noted.status == "stable" and "can hide a regression" in noted.notes[0]


def test_a_run_gated_against_itself_is_checked_once():
    one = ref(1, 4, seed=1, end_factor=1.3)
    check = machine_check([("r", one)], [("r", one)])
    drift = [r for r in check.reasons if "during the run" in r]
    assert len(drift) == 2  # matmul and copy, not twice each


def test_missing_reference_leaves_the_check_unknown():
    check = machine_check([("b", None)], [("c", ref(1, 4))])
    assert check.status == "unknown" and "baseline run b has no reference" in check.reasons[0]
    assert not check.unstable


def test_machine_tolerance_follows_the_gate_threshold():
    # copy 20% slower is within half of a 50% threshold
    check = machine_check(
        [("b", ref(1, 4, seed=1))], [("c", ref(1, 4.8, seed=2))], GatePolicy(threshold=0.5)
    )
    assert check.status == "stable"


def test_robust_cv_ignores_one_stray_sample():
    x = [1.0, 1.01, 0.99, 1.02, 0.98] * 6
    assert robust_cv([*x, 50.0]) == pytest.approx(robust_cv(x), rel=0.2)
