"""Was the candidate measured on the same kind of machine, and did that machine behave the same?

A verdict may fail a build only when the answer to both is yes; otherwise a slower machine
would be blamed on the code. Two checks, both pure functions over what run folders hold:

``fingerprint`` picks from run.json's ``environment`` the fields that change timings: CPU model,
count and container quota, accelerator model and count, accelerator driver, the CUDA driver,
runtime and cuDNN, the compiler flags (XLA_FLAGS, TF_XLA_FLAGS, LIBTPU_INIT_ARGS,
NVIDIA_TF32_OVERRIDE), and the versions of the frameworks the run used with their plugins (the
JAX CUDA plugins, libtpu). Hostnames, memory size, the OS and Python are left out: CI runners
of one type differ in those without running faster or slower. Any difference makes the gate's
verdicts advisory (reported, never failing) unless ``--strict-env``: a cuDNN upgrade is named,
not blamed on the code. Fields that runs written by an older bench lack are compared only when
both sides have them.

``machine_check`` reads the reference kernel (``bench.measure.reference``) timed at the start
and the end of every run, and calls the machine UNSTABLE when, for either kernel:

1. slower: the gate's own rule (``gate.decide``) applied to the kernel's timings, baseline
   against candidate, with half the gate's threshold, says REGRESSED. Half, because a machine
   that lost T/2 leaves only T/2 of the tolerance for the code: a 6% slower program on a 5%
   slower machine would cross a 10% threshold;
2. noisier: the candidate's robust CV (IQR / 1.349 / median; equal to the CV for normal data,
   but one stray sample cannot move it) is at least twice the baseline's AND above the
   threshold T, i.e. the noise is as large as the changes the gate is asked to find;
3. drifting: within one run (baseline or candidate), the end timings against the start
   timings fail test 1 or 2: the machine changed while the cells were measured;
4. shared: during the candidate run, other processes used more than T of the machine's CPU
   time (``host_cpu.others_share``, counted by the runner from /proc/stat). The kernel samples
   two moments; this covers the whole run, and it is the usual cause of a slow run on a shared
   machine: on a 2-core VM, a neighbour using half the CPU time made MLP steps 1.5x slower.

A machine that got faster, or a baseline measured while shared, is noted, not flagged: that can
hide a regression, never invent one. Runs without reference timings (written before the kernel
existed) leave the check "unknown".

An UNSTABLE machine does not excuse every slowdown: the check also says how much slower it
measured the machine at most (``MachineCheck.slowdown``, a factor >= 1), and the gate still
fails a cell whose whole interval lies beyond the threshold compounded with it
(``bench.gate.regression``). The factor is the largest of: for each kernel, the upper end of
the interval of candidate / baseline; for each run's drift, the upper end of end / start or of
start / end (a run that sped up was slow at its start, and cells measured then were too); and
for the candidate run, 1 / (1 - others' CPU share), the slowdown of a program that needed the
whole machine while others held that share of it.

Cells carry a reading of their own (``machine_matmul_s``: the matmul kernel timed just before
each process got the cell), and for a cell read on both sides the gate uses it instead of the
run-wide figures: the same cell's reading, candidate / baseline, compounded with the others'
share factor (``bench.gate.regression``). The run-wide kernels only sample a run's two ends,
and on the project's 2-core VM the end was 1.3-2x slower than the start in almost every run
while the cells of the run and of its rerun agreed: taken as the bound, that drift let a model
twice as deep pass as advisory in 2 of 19 pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bench.backends import registry
from bench.finite import finite_samples
from bench.gate.decision import GatePolicy, Verdict, decide

HARDWARE_FIELDS = ("cpu_model", "cpu_count", "accelerators", "accelerator_driver")
# Newer fields, in the order they are shown; compared only where both sides recorded them.
STACK_FIELDS = ("cpu_quota", "cuda_driver", "cuda_runtime", "cudnn")
REFERENCE_KERNELS = ("matmul_s", "copy_s")
# Others holding (nearly) all of the CPU would make any slowdown explainable; past 95% the
# factor 1 / (1 - share) stops at 20x.
MAX_OTHERS_SHARE = 0.95
DEFAULT_POLICY = GatePolicy()


def _accelerators(env: Mapping[str, Any]) -> tuple[str, str]:
    """A summary such as '2 x NVIDIA H100 80GB HBM3', and the drivers; 'none' when none."""
    models: dict[str, int] = {}
    drivers: set[str] = set()
    for acc in env.get("accelerators") or []:
        if acc.get("kind") == "tpu":
            name = f"TPU {acc.get('accelerator_type') or 'unknown type'}"
            models[name] = models.get(name, 0) + int(acc.get("chips") or 1)
        else:
            name = str(acc.get("name") or acc.get("kind") or "unknown")
            models[name] = models.get(name, 0) + 1
        if acc.get("driver_version"):
            drivers.add(str(acc["driver_version"]))
    summary = ", ".join(f"{n} x {name}" for name, n in sorted(models.items()))
    return summary or "none", ", ".join(sorted(drivers)) or "none"


def fingerprint(environment: Mapping[str, Any]) -> dict[str, str]:
    """The timing-relevant identity of a run's environment, as flat ``field: text`` pairs.

    Framework fields (``framework.jax`` ...) cover the frameworks whose workers started in the
    run; a run where none started (every cell skipped) lists every installed one.
    """
    host = environment.get("host") or {}
    usable, logical = host.get("cpu_count_usable"), host.get("cpu_count_logical")
    count = str(logical) if usable in (None, logical) else f"{usable} usable of {logical}"
    accelerators, drivers = _accelerators(environment)
    found = {
        "cpu_model": str(host.get("cpu_model") or "unknown"),
        "cpu_count": count,
        "accelerators": accelerators,
        "accelerator_driver": drivers,
    }
    quota = host.get("cpu_quota")
    if isinstance(quota, Mapping):
        cpus = quota.get("cpus")
        found["cpu_quota"] = "none" if cpus is None else f"{float(cpus):g} CPUs"
    cuda = environment.get("cuda")
    if isinstance(cuda, Mapping):
        for name, part in (
            ("cuda_driver", "driver"),
            ("cuda_runtime", "runtime"),
            ("cudnn", "cudnn"),
        ):
            found[name] = str(cuda.get(part) or "none")
    flags = environment.get("flags")
    if isinstance(flags, Mapping):
        for name, value in sorted(flags.items()):
            found[f"flags.{name}"] = "unset" if value is None else repr(str(value))
    packages = environment.get("packages") or {}
    # Packages whose versions change a framework's speed (its backend says which), per
    # framework the run used.
    used = list(environment.get("frameworks") or {}) or list(registry.names())
    for framework in sorted(used):
        spec = registry.find(framework)
        for package in spec.packages if spec else ():
            if packages.get(package):
                found[f"framework.{package}"] = str(packages[package])
    return found


@dataclass(frozen=True)
class EnvironmentCheck:
    """``mismatches``: (field, baseline value, candidate value) for every field that differs."""

    mismatches: tuple[tuple[str, str, str], ...]

    @property
    def match(self) -> bool:
        return not self.mismatches


def compare_fingerprints(
    baseline: Sequence[Mapping[str, str]], candidate: Sequence[Mapping[str, str]]
) -> EnvironmentCheck:
    """Compare every run of one side with the first run of the baseline.

    Hardware fields always count; any other field (a framework's packages, the CUDA stack,
    flags) only where both sides have it: a candidate that also runs TensorFlow cells does not
    mismatch a JAX-only baseline, nor a run of an older bench one that records the CUDA stack.
    Runs within one side that differ from each other count as a mismatch too.
    """
    if not baseline or not candidate:
        return EnvironmentCheck(())
    reference = baseline[0]
    found: dict[tuple[str, str, str], None] = {}
    for other in [*baseline[1:], *candidate]:
        for name in sorted(set(reference) | set(other), key=_field_order):
            if name not in HARDWARE_FIELDS and (name not in reference or name not in other):
                continue
            b, c = reference.get(name, "-"), other.get(name, "-")
            if b != c:
                found[(name, b, c)] = None
    return EnvironmentCheck(tuple(found))


def _field_order(name: str) -> tuple[int, str]:
    shown = (*HARDWARE_FIELDS, *STACK_FIELDS)
    return (shown.index(name), "") if name in shown else (99, name)


# ------------------------------------------------------------------ machine check


def robust_cv(samples: Sequence[float]) -> float:
    """IQR / 1.349 / median: the CV for normal data, but unmoved by one stray sample."""
    x = np.asarray(samples, dtype=np.float64)
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    return float((q3 - q1) / 1.349 / median) if median > 0 else float("nan")


@dataclass(frozen=True)
class KernelComparison:
    """Candidate / baseline ratio of a kernel's median time, with its interval."""

    kernel: str
    ratio: float
    ci_lo: float
    ci_hi: float
    cv_baseline: float
    cv_candidate: float


@dataclass(frozen=True)
class MachineCheck:
    """``status``: "stable", "UNSTABLE" or "unknown"; ``reasons`` say why it is not stable,
    ``notes`` what is worth knowing anyway (a faster machine)."""

    status: str
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    kernels: tuple[KernelComparison, ...] = field(default=())
    # The largest slowdown factor the check measured (>= 1), and where it was measured.
    slowdown: float = 1.0
    slowdown_source: str = ""
    # The part of it that other processes explain (1 / (1 - their share) in the candidate run):
    # it applies to every cell, including those with their own reading of the machine.
    shared_slowdown: float = 1.0

    @property
    def unstable(self) -> bool:
        return self.status == "UNSTABLE"


def _samples(entry: Mapping[str, Any] | None, moment: str, kernel: str) -> list[float]:
    values = ((entry or {}).get(moment) or {}).get(kernel) or []
    return finite_samples(values)  # NaN or infinity in run.json counts as missing


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms"


def _compare(
    what: str,
    kernel: str,
    before: list[float],
    after: list[float],
    policy: GatePolicy,
    noise_floor: float,
    found: tuple[list[str], list[str]],
    note_faster: bool,
) -> KernelComparison | None:
    """Rules 1 and 2 for one kernel's timings; appends to ``found`` = (reasons, notes)."""
    reasons, notes = found
    if min(len(before), len(after)) < policy.min_samples:
        notes.append(
            f"{what}: {kernel} has {len(before)} and {len(after)} timings; "
            f"at least {policy.min_samples} per side are needed"
        )
        return None
    d = decide(before, after, policy)
    assert d.ratio is not None and d.ci_lo is not None and d.ci_hi is not None
    change = (
        f"{kernel} median {_ms(float(np.median(before)))} -> {_ms(float(np.median(after)))} "
        f"(ratio {d.ratio:.3f} [{d.ci_lo:.3f}, {d.ci_hi:.3f}])"
    )
    if d.verdict == Verdict.REGRESSED:
        reasons.append(f"{what} slower: {change}, beyond half the threshold")
    elif d.verdict == Verdict.IMPROVED and note_faster:
        notes.append(f"{what} faster: {change}; this can hide a regression, never invent one")
    cv_before, cv_after = robust_cv(before), robust_cv(after)
    if cv_after >= 2 * cv_before and cv_after > noise_floor:
        reasons.append(
            f"{what} noisier: {kernel} robust CV {cv_before:.1%} -> {cv_after:.1%}, "
            f"doubled and above the threshold {noise_floor:.0%}"
        )
    return KernelComparison(kernel, d.ratio, d.ci_lo, d.ci_hi, cv_before, cv_after)


Runs = Sequence[tuple[str, Mapping[str, Any] | None]]  # (run_id, reference_kernel) per run
Slowdown = tuple[float, str]  # how much slower the machine may have been, and by which reading


def _runs_once(baseline: Runs, candidate: Runs) -> dict[str, tuple[str, Mapping[str, Any] | None]]:
    runs: dict[str, tuple[str, Mapping[str, Any] | None]] = {}
    for side, side_runs in (("baseline", baseline), ("candidate", candidate)):
        for run_id, entry in side_runs:
            runs.setdefault(run_id, (side, entry))
    return runs


def machine_check(
    baseline: Runs,
    candidate: Runs,
    policy: GatePolicy = DEFAULT_POLICY,
) -> MachineCheck:
    """Rules 1 to 3 of the module docstring over ``(run_id, reference_kernel)`` per run.

    ``policy`` is the gate's default policy; the machine is judged with half its threshold.
    """
    missing = _unreadable(baseline, candidate)
    if missing or not baseline or not candidate:
        return MachineCheck("unknown", tuple(missing or ["no runs to compare"]))
    machine_policy = replace(policy, threshold=policy.threshold / 2, higher_is_better=False)
    found: tuple[list[str], list[str]] = ([], [])  # (reasons, notes): the rules append to them
    reasons, notes = found
    kernels: list[KernelComparison] = []
    slowdowns: list[Slowdown] = [(1.0, "")]
    for kernel in REFERENCE_KERNELS:
        compared = _between_sides(kernel, baseline, candidate, machine_policy, policy, found)
        if compared:
            kernels.append(compared)
            slowdowns.append(
                (compared.ci_hi, f"{kernel} candidate / baseline, interval's upper end")
            )
        slowdowns += _drifts(kernel, baseline, candidate, machine_policy, policy, found)
    shared, shared_slowdown = _shared_cpu(baseline, candidate, policy, found)
    slowdowns += shared
    status = "UNSTABLE" if reasons else "stable"
    slowdown, source = max(slowdowns, key=lambda item: item[0])
    return MachineCheck(
        status,
        tuple(reasons),
        tuple(dict.fromkeys(notes)),
        tuple(kernels),
        slowdown=float(slowdown),
        slowdown_source=source,
        shared_slowdown=float(shared_slowdown),
    )


def _unreadable(baseline: Runs, candidate: Runs) -> list[str]:
    """Why the runs' reference kernels cannot be compared: a run without them, or kernels of
    different versions."""
    missing = [
        f"{side} run {run_id} has no reference kernel timings"
        for side, runs in (("baseline", baseline), ("candidate", candidate))
        for run_id, entry in runs
        if not entry or not entry.get("start")
    ]
    versions = {
        entry.get("version") for _, entry in [*baseline, *candidate] if entry and entry.get("start")
    }
    if len(versions) > 1:
        missing.append(f"reference kernel versions differ ({sorted(versions)}): not comparable")
    return missing


def _between_sides(
    kernel: str,
    baseline: Runs,
    candidate: Runs,
    machine_policy: GatePolicy,
    policy: GatePolicy,
    found: tuple[list[str], list[str]],
) -> KernelComparison | None:
    """Rule 1: the kernel's timings on the candidate's machine against the baseline's, every
    run's start and end timings pooled per side."""
    pooled = {
        side: [
            v for _, entry in runs for moment in ("start", "end")
            for v in _samples(entry, moment, kernel)
        ]
        for side, runs in (("baseline", baseline), ("candidate", candidate))
    }  # fmt: skip
    return _compare(
        "machine", kernel, pooled["baseline"], pooled["candidate"], machine_policy,
        policy.threshold, found, note_faster=True,
    )  # fmt: skip


def _drifts(
    kernel: str,
    baseline: Runs,
    candidate: Runs,
    machine_policy: GatePolicy,
    policy: GatePolicy,
    found: tuple[list[str], list[str]],
) -> list[Slowdown]:
    """Rule 2: each run's end timings against its start, both ways round as slowdowns."""
    slowdowns: list[Slowdown] = []
    # a run on both sides (gating a run against itself) is checked once
    for run_id, (side, entry) in _runs_once(baseline, candidate).items():
        start, end = _samples(entry, "start", kernel), _samples(entry, "end", kernel)
        if not end:
            found[1].append(f"{side} run {run_id} has no end timing (interrupted?)")
            continue
        drift = _compare(
            f"{side} run {run_id}: machine during the run", kernel, start, end,
            machine_policy, policy.threshold, found, note_faster=False,
        )  # fmt: skip
        if drift:
            where = f"{kernel} drift in {side} run {run_id}"
            slowdowns.append((drift.ci_hi, f"{where} (end / start, interval's upper end)"))
            slowdowns.append((1 / drift.ci_lo, f"{where} (start / end, interval's upper end)"))
    return slowdowns


def _shared_cpu(
    baseline: Runs, candidate: Runs, policy: GatePolicy, found: tuple[list[str], list[str]]
) -> tuple[list[Slowdown], float]:
    """Rule 3: other processes' share of the CPU during each run. On the candidate's side it
    can invent a regression (a reason, and the slowdown it explains); on the baseline's it can
    only hide one (a note)."""
    reasons, notes = found
    slowdowns: list[Slowdown] = []
    shared_slowdown = 1.0
    for run_id, (side, entry) in _runs_once(baseline, candidate).items():
        host = ((entry or {}).get("end") or {}).get("host_cpu")
        if not host or host["others_share"] <= policy.threshold:
            continue
        shared = (
            f"{side} run {run_id}: other processes used {host['others_share']:.0%} of the "
            f"machine's CPU time during the run ({host['others_cores']:.2f} of {host['cpus']} "
            f"CPUs), more than the threshold {policy.threshold:.0%}"
        )
        if side == "candidate":
            reasons.append(shared)
            share = min(float(host["others_share"]), MAX_OTHERS_SHARE)
            slowdowns.append((1 / (1 - share), f"others' CPU share in candidate run {run_id}"))
            shared_slowdown = max(shared_slowdown, 1 / (1 - share))
        else:
            notes.append(f"{shared}; this can hide a regression, never invent one")
    return slowdowns, shared_slowdown
