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


# ------------------------------------------------------------------ the fuller fingerprint

STACK = {
    **ENV,
    "host": {**ENV["host"], "cpu_quota": {"cpus": 2.0, "source": "cgroup v2 cpu.max"}},
    "packages": {**ENV["packages"], "jax-cuda12-plugin": "0.4.35", "jax-cuda12-pjrt": "0.4.35"},
    "cuda": {"driver": "12.4", "runtime": "12.4.127", "cudnn": "9.1.0"},
    "flags": {"XLA_FLAGS": None, "TF_XLA_FLAGS": None},
}


def test_fingerprint_has_the_cuda_stack_plugins_flags_and_quota():
    found = fingerprint(STACK)
    assert found["cpu_quota"] == "2 CPUs"
    assert (found["cuda_driver"], found["cuda_runtime"], found["cudnn"]) == (
        "12.4",
        "12.4.127",
        "9.1.0",
    )
    assert found["framework.jax-cuda12-plugin"] == "0.4.35"
    assert found["flags.XLA_FLAGS"] == "unset"


@pytest.mark.parametrize(
    ("change", "field", "values"),
    [
        ({"cuda": {**STACK["cuda"], "cudnn": "9.3.0"}}, "cudnn", ("9.1.0", "9.3.0")),
        ({"packages": {**STACK["packages"], "jax-cuda12-plugin": "0.4.36"}},
         "framework.jax-cuda12-plugin", ("0.4.35", "0.4.36")),
        ({"flags": {"XLA_FLAGS": "--xla_gpu_autotune_level=0", "TF_XLA_FLAGS": None}},
         "flags.XLA_FLAGS", ("unset", "'--xla_gpu_autotune_level=0'")),
        ({"host": {**STACK["host"], "cpu_quota": {"cpus": None, "source": "max"}}},
         "cpu_quota", ("2 CPUs", "none")),
    ],
)  # fmt: skip
def test_a_stack_change_is_an_environment_difference_the_gate_names(change, field, values):
    check = compare_fingerprints([fingerprint(STACK)], [fingerprint({**STACK, **change})])
    assert check.mismatches == ((field, *values),)


def test_a_run_of_an_older_bench_without_the_stack_still_matches():
    assert compare_fingerprints([fingerprint(ENV)], [fingerprint(STACK)]).match


def test_cpu_quota_from_cgroup_v2_and_v1(tmp_path):
    from bench.platform.environment import cpu_quota

    v2 = tmp_path / "v2"
    (v2 / "ci.slice").mkdir(parents=True)
    (v2 / "ci.slice" / "cpu.max").write_text("200000 100000\n")
    (tmp_path / "self-v2").write_text("0::/ci.slice\n")
    found = cpu_quota(v2, tmp_path / "self-v2")
    assert found["cpus"] == 2.0 and "cgroup v2" in found["source"]
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(v2, tmp_path / "missing")["cpus"] is None  # the root: unlimited

    v1 = tmp_path / "v1" / "cpu,cpuacct" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("150000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "self-v1").write_text("4:cpu,cpuacct:/docker/abc\n0::/\n")
    assert cpu_quota(tmp_path / "v1", tmp_path / "self-v1")["cpus"] == 1.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpu_quota(tmp_path / "v1", tmp_path / "self-v1")["cpus"] is None
    assert cpu_quota(tmp_path / "none", tmp_path / "missing")["cpus"] is None


def test_cuda_stack_from_nvidia_smi_and_the_toolkit(tmp_path, monkeypatch):
    from bench.platform import environment

    monkeypatch.setattr(environment, "CUDNN_PACKAGES", ("no-such-package-x",))
    monkeypatch.setattr(environment, "CUDA_RUNTIME_PACKAGES", ("no-such-package-y",))
    (tmp_path / "version.json").write_text('{"cuda": {"name": "CUDA SDK", "version": "12.6.3"}}')
    header = tmp_path / "cudnn_version.h"
    header.write_text("#define CUDNN_MAJOR 9\n#define CUDNN_MINOR 5\n#define CUDNN_PATCHLEVEL 1\n")
    smi = "| NVIDIA-SMI 560.35.03   Driver Version: 560.35.03   CUDA Version: 12.6     |"
    found = environment.cuda_stack(smi, tmp_path, (tmp_path / "absent.h", header))
    assert (found["driver"], found["runtime"], found["cudnn"]) == ("12.6", "12.6.3", "9.5.1")
    assert found["sources"]["cudnn"] == str(header)
    none = environment.cuda_stack("", tmp_path / "absent", ())
    assert (none["driver"], none["runtime"], none["cudnn"]) == (None, None, None)
