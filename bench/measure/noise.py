"""When a measured difference is a claim: one notion of noise for compare, recommend,
``input_bound`` and the gate.

A 95% interval from one process's step times says how noisy *steps* are; it says nothing of the
variation between processes (allocation, thread placement, clock state, other jobs), which is
what a rerun meets. Two identical quickstart runs 50 minutes apart on a 2-core VM differed by
ratios of 0.65-1.18 with intervals under 2% wide, so "the interval excludes 1.00" alone called
most cells better or worse. Like criterion's ``noise_threshold`` and asv's ``factor``, a claim
also needs the whole interval beyond a noise threshold T: above ``1 + T`` or below
``1 / (1 + T)``, the band the gate uses (10% slower and 10% faster are the same distance from 1
in log scale). A band beyond 1 also excludes 1, so both conditions are this one test.

T, in order of precedence:

1. set by the user (``bench compare --noise 0.05``, ``bench recommend --noise``);
2. the spread between repeated processes where ``measure.repeats`` measured one: the largest
   relative difference between two processes' median step times of the compared cells
   (``max / min - 1``), i.e. what a rerun of the same cell has been seen to change;
3. ``DEFAULT_THRESHOLD``, the gate's default tolerance.

A shared machine widens it, as in the gate's machine check (``bench.gate.fingerprint``): when
other processes used more than T of the machine's CPU time while a compared cell was timed (the
worker measures it per cell, metric ``others_cpu_share``) or during its run (the runner,
``run.json`` ``reference_kernel.end.host_cpu.others_share``), a program that needed the whole
machine ran up to ``1 / (1 - share)`` slower for reasons of no cell's own, so the band becomes
``(1 + T) x that factor``. On this project's 2-core VM, an A/A pair of runs during which other
processes held 78% and 81% of the CPU differed by up to 1.86x (intervals about +-15%): no
threshold of a few percent survives that, and saying why beats claiming a difference.

A machine can also change speed with no process of its own to show for it: a neighbour on the
host, a throttled or migrated VM. On the project's 2-core CI machine two back-to-back runs of the
same scenario differed by 1.27-1.6x on every JAX cell while each cell's three processes agreed
within the band they set. Runs compared across time are therefore also judged against the
reference kernel the runner times at the start and end of every run (``bench.measure.reference``):
the largest ratio between the median kernel times of two compared runs, or of one run's end and
start, is a slowdown the machine itself showed, and widens the band the same way.

Pure arithmetic over records (plain dicts), so the runner (``input_bound``) and every reader
share it without importing each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bench.measure.reference import KERNELS
from bench.metrics import value_of

# The gate's default tolerance, and the default here when no repeats measured a spread: a prior
# for CI machines, not a measurement of every machine. On the project's shared 2-core VM the same
# MLP training cell, run four times in one fresh worker, moved by 1.2-1.4x (max / min; 3 JAX and
# 3 TensorFlow workers, others' CPU share <= 3%). Where cells move like that, ``measure.repeats``
# measures the spread and the threshold follows it.
DEFAULT_THRESHOLD = 0.10
# Others holding (nearly) all of the CPU would explain any difference; past 95% the factor
# 1 / (1 - share) stops at 20x (the gate's cap).
MAX_OTHERS_SHARE = 0.95

Source = Literal["set", "repeats", "default"]
Side = Literal["above", "below"]


@dataclass(frozen=True)
class Noise:
    """The threshold one claim was judged against, and where it came from."""

    threshold: float  # a fraction: 0.1 is 10%
    source: Source
    # the slowdown a shared machine explains (>= 1), and what measured it
    machine: float = 1.0
    shared: str = ""

    @property
    def band(self) -> float:
        """The threshold in effect: ``threshold`` compounded with the machine's slowdown."""
        return (1.0 + self.threshold) * self.machine - 1.0

    @property
    def why(self) -> str:
        return {
            "set": "set by --noise",
            "repeats": "spread between repeated processes",
            "default": "default; no repeats",
        }[self.source]

    def describe(self) -> str:
        """``10% (default; no repeats)``: what an output line says was used."""
        found = f"{percent(self.threshold)} ({self.why})"
        if self.machine > 1.0:
            found += f" x {self.machine:.3g} for the machine ({self.shared}) = {percent(self.band)}"
        return found


def percent(fraction: float) -> str:
    """0.1 -> "10%", 0.034 -> "3.4%"."""
    return f"{fraction * 100:.3g}%"


def check_threshold(value: float) -> float:
    """``value`` if it is a usable threshold; ValueError saying what is expected otherwise."""
    if not math.isfinite(value) or not 0 <= value < 10:
        raise ValueError(f"expected a finite fraction in [0, 10), e.g. 0.05 for 5%; got {value}")
    return value


def beyond(ci_lo: float, ci_hi: float, threshold: float) -> Side | None:
    """Where the interval of a ratio lies: wholly above ``1 + T`` ("above"), wholly below
    ``1 / (1 + T)`` ("below"), or neither (None: no claim). ``threshold``: ``Noise.band``."""
    if ci_lo > 1.0 + threshold:
        return "above"
    if ci_hi < 1.0 / (1.0 + threshold):
        return "below"
    return None


def process_medians(record: Mapping[str, Any]) -> list[float]:
    """Each ok repeat's median step time (``measure.repeats`` keeps them under ``repeats``)."""
    found = []
    for repeat in record.get("repeats") or ():
        if not isinstance(repeat, Mapping) or repeat.get("status") != "ok":
            continue
        median = repeat.get("median_step_s")
        if isinstance(median, int | float) and math.isfinite(median) and median > 0:
            found.append(float(median))
    return found


def machine_medians(record: Mapping[str, Any]) -> list[float]:
    """Each ok process's ``machine_matmul_s``: the reference matmul timed just before that
    process got the cell (``bench.measure.reference.cell_kernel``); empty for records written
    before the runner timed it."""
    repeats = record.get("repeats")
    if isinstance(repeats, list) and repeats:
        values = [
            r.get("machine_matmul_s")
            for r in repeats
            if isinstance(r, Mapping) and r.get("status") == "ok"
        ]
    else:
        values = [value_of((record.get("metrics") or {}).get("machine_matmul_s"))]
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v) and v > 0]


def spread(medians: Sequence[float]) -> float | None:
    """``max / min - 1`` of per-process medians; None with fewer than two."""
    if len(medians) < 2:
        return None
    return max(medians) / min(medians) - 1.0


def others_share(meta: Mapping[str, Any]) -> float | None:
    """The share of the machine's CPU time other processes used during a run (``run.json``)."""
    entry = meta.get("reference_kernel")
    end = entry.get("end") if isinstance(entry, Mapping) else None
    host = end.get("host_cpu") if isinstance(end, Mapping) else None
    share = host.get("others_share") if isinstance(host, Mapping) else None
    if isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1:
        return float(share)
    return None


def cell_shares(record: Mapping[str, Any]) -> list[float]:
    """Others' CPU share during a cell's timed phase (the worker measures it), and during each
    repeat's where ``measure.repeats`` kept them."""
    found = [value_of((record.get("metrics") or {}).get("others_cpu_share"))]
    found += [
        r.get("others_cpu_share") for r in record.get("repeats") or () if isinstance(r, Mapping)
    ]
    return [
        float(s) for s in found if isinstance(s, int | float) and math.isfinite(s) and 0 <= s <= 1
    ]


def kernel_medians(meta: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Median reference-kernel time per (moment, kernel) recorded in a run's ``run.json``."""
    entry = meta.get("reference_kernel")
    found: dict[tuple[str, str], float] = {}
    if not isinstance(entry, Mapping):
        return found
    for moment in ("start", "end"):
        timed = entry.get(moment)
        if not isinstance(timed, Mapping):
            continue
        for kernel in KERNELS:
            values = timed.get(kernel)
            if not isinstance(values, list):
                continue
            good = sorted(
                float(v)
                for v in values
                if isinstance(v, int | float) and math.isfinite(v) and v > 0
            )
            if good:
                found[(moment, kernel)] = good[len(good) // 2]
    return found


def kernel_drift(runs: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[float, str] | None:
    """The largest speed change of the machine the reference kernel saw across ``runs``: between
    two runs (each run's mean of its start and end medians; runs of the same kernel version
    only) or within one (end against start). ``(factor >= 1, what measured it)``; None when no
    run has kernel timings."""
    runs = list(dict(runs).items())  # a run compared with itself counts once
    per_run: list[tuple[str, Any, dict[str, float]]] = []
    worst: tuple[float, str] | None = None

    def consider(a: float, b: float, where: str) -> None:
        nonlocal worst
        factor = max(a, b) / min(a, b)
        if worst is None or factor > worst[0]:
            worst = (factor, where)

    for run_id, meta in runs:
        medians = kernel_medians(meta) if isinstance(meta, Mapping) else {}
        pooled = {}
        for kernel in KERNELS:
            times = [medians[(m, kernel)] for m in ("start", "end") if (m, kernel) in medians]
            if len(times) == 2:
                consider(*times, f"the reference kernel {kernel} changed {_x(*times)} from the "
                         f"start to the end of run {run_id}")  # fmt: skip
            if times:
                pooled[kernel] = sum(times) / len(times)
        if pooled:
            per_run.append((run_id, meta["reference_kernel"].get("version"), pooled))
    for i, (a_id, a_version, a) in enumerate(per_run):
        for b_id, b_version, b in per_run[i + 1 :]:
            if a_version != b_version:
                continue  # a changed workload times differently: not the machine's doing
            for kernel in KERNELS:
                if kernel in a and kernel in b:
                    consider(a[kernel], b[kernel], f"the reference kernel {kernel} took "
                             f"{_x(a[kernel], b[kernel])} between runs {a_id} and {b_id}")  # fmt: skip
    return worst


def _x(a: float, b: float) -> str:
    return f"{max(a, b) / min(a, b):.3g}x"


def noise_for(
    records: Iterable[Mapping[str, Any]],
    override: float | None = None,
    runs: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> Noise:
    """The threshold for a claim about ``records`` (the cells compared) measured in ``runs``
    (``(run_id, run.json)``; see the module docstring for the order of precedence)."""
    records = list(records)
    runs = list(runs)
    if override is not None:
        found = Noise(check_threshold(override), "set")
    else:
        spreads = [s for r in records if (s := spread(process_medians(r))) is not None]
        found = Noise(max(spreads), "repeats") if spreads else Noise(DEFAULT_THRESHOLD, "default")
    shares = [(others_share(meta), f"run {run_id}") for run_id, meta in runs]
    shares += [(s, f"cell {r.get('cell_id', '?')}") for r in records for s in cell_shares(r)]
    worst: tuple[float, str] | None = None
    for share, where in shares:
        if share is None or share <= found.threshold:
            continue
        factor = 1.0 / (1.0 - min(share, MAX_OTHERS_SHARE))
        if worst is None or factor > worst[0]:
            worst = (factor, f"other processes used {share:.0%} of the CPU during {where}")
    drift = kernel_drift(runs)
    if drift is not None and drift[0] > 1.0 and (worst is None or drift[0] > worst[0]):
        worst = drift
    if worst is None:
        return found
    return Noise(found.threshold, found.source, worst[0], worst[1])


def summary(used: Iterable[Noise]) -> str:
    """One line saying which thresholds a set of claims used, for a legend."""
    used = list(used)
    bases = sorted(
        {Noise(n.threshold, n.source) for n in used}, key=lambda n: (n.source, n.threshold)
    )
    if not bases:
        return f"noise threshold {Noise(DEFAULT_THRESHOLD, 'default').describe()}"
    if len(bases) == 1:
        text = f"noise threshold {bases[0].describe()}"
    else:
        from_repeats = [n.threshold for n in bases if n.source == "repeats"]
        parts = []
        if from_repeats:
            lo, hi = min(from_repeats), max(from_repeats)
            span = percent(lo) if lo == hi else f"{percent(lo)}-{percent(hi)}"
            parts.append(f"{span} from the spread between repeated processes")
        parts += [n.describe() for n in bases if n.source != "repeats"]
        text = "noise threshold per cell: " + "; ".join(parts)
    shared = [n for n in used if n.machine > 1.0]
    if shared:
        worst = max(shared, key=lambda n: n.machine)
        text += (
            f"; widened where the machine was shared or changed speed, up to x {worst.machine:.3g} "
            f"({worst.shared})"
        )
    return text
