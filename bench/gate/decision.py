"""The regression gate's decision: is the candidate really slower than the baseline?

Pure functions over samples; loading results, the CLI and rendering live elsewhere. A CI gate
that fails on noise gets its threshold raised until it catches nothing, so a cell is REGRESSED
only when two independent pieces of evidence agree: a rank test says the change is real, and
a confidence interval says it is large.

The rule, per cell. Let ``r = median(candidate) / median(baseline)`` with a percentile-
bootstrap interval ``[lo, hi]`` at ``policy.confidence`` (see ``stats.ratio_of_medians_ci``).
Work in the *slowdown factor* ``s``, which is above 1 when the candidate is worse: ``s = r``
for lower-is-better metrics (step time, latency, memory) and ``s = 1 / r`` with interval
``[1 / hi, 1 / lo]`` for higher-is-better ones (throughput). With ``U = 1 + T`` and
``L = 1 / (1 + T)``, a band symmetric in log scale (10% slower and 10% faster are the same
distance from 1):

- INSUFFICIENT_DATA: either side has fewer than ``min_samples`` samples. Never fails, and such
  cells are left out of the Holm family.
- REGRESSED: ``s_lo > U`` (the whole interval is beyond the threshold) AND the one-sided
  Mann-Whitney U test "candidate worse than baseline" has a Holm-adjusted p < ``alpha``.
- IMPROVED, the mirror image: ``s_hi < L`` AND the test "candidate better" has adjusted
  p < ``alpha``.
- NO_CHANGE: ``L <= s_lo`` and ``s_hi <= U``: whatever changed is within the tolerance, even
  when the test finds it significant.
- INCONCLUSIVE: everything else. The interval straddles ``U`` or ``L``, or it lies wholly
  beyond one of them while the test is not significant: a large change that this many samples
  cannot confirm is reported as unknown, not as no change.

The p-value used is the one-sided test in the direction the point estimate moved (``s > 1``:
worse). Holm runs over two families of the decidable cells, "worse" p-values and "better"
p-values, so the chance that any cell is falsely REGRESSED stays at most alpha for the whole
gate, with any dependence between cells. Each cell's adjusted p-value in its own direction is
what ``decide`` takes as ``p_adjust``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from bench.limits import MAX_GATE_SAMPLES, MAX_THRESHOLD
from bench.measure.noise import DEFAULT_THRESHOLD
from bench.measure.stats import holm, mann_whitney_u, ratio_of_medians_ci


class Verdict(StrEnum):
    REGRESSED = "REGRESSED"
    IMPROVED = "IMPROVED"
    NO_CHANGE = "NO_CHANGE"
    INCONCLUSIVE = "INCONCLUSIVE"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class GatePolicy:
    """Thresholds of the gate; defaults suit noisy shared CI machines.

    ``threshold`` T: the smallest relative change worth failing a build (10%: shared runners
    commonly drift by several percent; the same default noise threshold as compare and
    recommend, ``bench.measure.noise``). ``alpha``: the tolerated chance of failing a build on
    noise, across all cells. ``min_samples``: per side, below which the rank test and the
    bootstrap are too coarse to trust. ``confidence``, ``n_boot`` and ``seed`` set the
    bootstrap interval; a fixed seed makes the verdict reproducible.
    """

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = 0.01
    min_samples: int = 10
    higher_is_better: bool = False
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("threshold", "alpha", "confidence"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if not 0 < self.threshold <= MAX_THRESHOLD:
            raise ValueError(
                f"threshold must be positive and at most {MAX_THRESHOLD:g}, got {self.threshold}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        if not 2 <= self.min_samples <= MAX_GATE_SAMPLES:
            raise ValueError(
                f"min_samples must be from 2 to {MAX_GATE_SAMPLES:,}, got {self.min_samples}"
            )
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.n_boot < 1:
            raise ValueError(f"n_boot must be at least 1, got {self.n_boot}")


@dataclass(frozen=True)
class Decision:
    """One cell's verdict with the numbers behind it.

    ``ratio``, ``ci_lo`` and ``ci_hi`` are candidate / baseline as measured, not flipped for
    higher-is-better metrics, so a table reads the same way for every metric. ``p_value`` is
    the (adjusted, when given) one-sided p-value in the direction of the change; None when no
    test was run. Medians and ratio are None only when a side has no samples.
    """

    n_baseline: int
    n_candidate: int
    median_baseline: float | None
    median_candidate: float | None
    ratio: float | None
    ci_lo: float | None
    ci_hi: float | None
    p_value: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class _Evidence:
    b: np.ndarray
    c: np.ndarray
    ratio: float
    ci_lo: float
    ci_hi: float
    worse: bool  # the point estimate moved in the bad direction (or not at all)
    p_worse: float
    p_better: float


def _evidence(b: np.ndarray, c: np.ndarray, policy: GatePolicy) -> _Evidence:
    ratio, lo, hi = ratio_of_medians_ci(
        b, c, confidence=policy.confidence, n_boot=policy.n_boot, seed=policy.seed
    )
    # for throughput, "worse" means the candidate is smaller
    worse_alt, better_alt = ("less", "greater") if policy.higher_is_better else ("greater", "less")
    _, p_worse = mann_whitney_u(c, b, worse_alt)
    _, p_better = mann_whitney_u(c, b, better_alt)
    worse = ratio <= 1.0 if policy.higher_is_better else ratio >= 1.0
    return _Evidence(b, c, ratio, lo, hi, worse, p_worse, p_better)


def _as_samples(samples: Sequence[float], side: str) -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{side} samples contain NaN or infinity")
    return arr


def _insufficient(b: np.ndarray, c: np.ndarray, policy: GatePolicy) -> Decision:
    median_b = float(np.median(b)) if b.size else None
    median_c = float(np.median(c)) if c.size else None
    ratio: float | None = None
    lo: float | None = None
    hi: float | None = None
    if b.size and c.size and np.all(b > 0):
        # shown for context only: too few samples to decide on
        ratio, lo, hi = ratio_of_medians_ci(
            b, c, confidence=policy.confidence, n_boot=policy.n_boot, seed=policy.seed
        )
    return Decision(
        n_baseline=int(b.size),
        n_candidate=int(c.size),
        median_baseline=median_b,
        median_candidate=median_c,
        ratio=ratio,
        ci_lo=lo,
        ci_hi=hi,
        p_value=None,
        verdict=Verdict.INSUFFICIENT_DATA,
        reason=(
            f"{b.size} baseline and {c.size} candidate samples; "
            f"at least {policy.min_samples} per side are needed"
        ),
    )


def _verdict(ev: _Evidence, policy: GatePolicy, p: float) -> tuple[Verdict, str]:
    t = policy.threshold
    upper, lower = 1.0 + t, 1.0 / (1.0 + t)
    # slowdown factor: above 1 means worse, whichever way the metric points
    s_lo, s_hi = (
        (1.0 / ev.ci_hi, 1.0 / ev.ci_lo) if policy.higher_is_better else (ev.ci_lo, ev.ci_hi)
    )
    significant = p < policy.alpha
    ci = f"interval of the ratio [{ev.ci_lo:.4g}, {ev.ci_hi:.4g}]"
    test = f"p = {p:.3g} {'<' if significant else '>='} alpha {policy.alpha:g}"
    band = f"the tolerance of {t:.0%}"
    if s_lo > upper and ev.worse and significant:
        return Verdict.REGRESSED, f"{ci} lies wholly beyond {band} in the worse direction; {test}"
    if s_hi < lower and not ev.worse and significant:
        return Verdict.IMPROVED, f"{ci} lies wholly beyond {band} in the better direction; {test}"
    if lower <= s_lo and s_hi <= upper:
        return Verdict.NO_CHANGE, f"{ci} lies within {band}; {test}"
    if s_lo > upper or s_hi < lower:
        return (
            Verdict.INCONCLUSIVE,
            f"{ci} lies beyond {band} but the change is not significant; {test}",
        )
    return Verdict.INCONCLUSIVE, f"{ci} straddles {band}; {test}"


def _decision(ev: _Evidence, policy: GatePolicy, p: float) -> Decision:
    verdict, reason = _verdict(ev, policy, p)
    return Decision(
        n_baseline=int(ev.b.size),
        n_candidate=int(ev.c.size),
        median_baseline=float(np.median(ev.b)),
        median_candidate=float(np.median(ev.c)),
        ratio=ev.ratio,
        ci_lo=ev.ci_lo,
        ci_hi=ev.ci_hi,
        p_value=p,
        verdict=verdict,
        reason=reason,
    )


def decide(
    baseline: Sequence[float],
    candidate: Sequence[float],
    policy: GatePolicy = GatePolicy(),
    *,
    p_adjust: float | None = None,
) -> Decision:
    """The verdict for one cell (see the module docstring for the rule).

    ``p_adjust`` replaces this cell's raw one-sided p-value (in the direction the median
    moved) with one already adjusted across cells, as ``decide_many`` does. Raises ValueError
    on non-finite samples, or on a non-positive baseline when the ratio is needed.
    """
    b, c = _as_samples(baseline, "baseline"), _as_samples(candidate, "candidate")
    if min(b.size, c.size) < policy.min_samples:
        return _insufficient(b, c, policy)
    ev = _evidence(b, c, policy)
    if p_adjust is None:
        p_adjust = ev.p_worse if ev.worse else ev.p_better
    return _decision(ev, policy, p_adjust)


def decide_many(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    policy: GatePolicy = GatePolicy(),
    *,
    overrides: Mapping[str, GatePolicy] | None = None,
) -> dict[str, Decision]:
    """Verdicts for every cell, ``{key: (baseline, candidate)}``, with Holm across cells.

    ``overrides`` gives some cells their own policy (a noisier cell, a throughput metric);
    each cell then compares its adjusted p-value with its own alpha. Cells with too few
    samples are not tested and do not enlarge the Holm family.
    """
    overrides = overrides or {}
    decisions: dict[str, Decision] = {}
    tested: dict[str, tuple[_Evidence, GatePolicy]] = {}
    for key, (baseline, candidate) in pairs.items():
        cell_policy = overrides.get(key, policy)
        b, c = _as_samples(baseline, "baseline"), _as_samples(candidate, "candidate")
        if min(b.size, c.size) < cell_policy.min_samples:
            decisions[key] = _insufficient(b, c, cell_policy)
        else:
            tested[key] = (_evidence(b, c, cell_policy), cell_policy)
    worse_adj = holm([ev.p_worse for ev, _ in tested.values()])
    better_adj = holm([ev.p_better for ev, _ in tested.values()])
    for (key, (ev, cell_policy)), pw, pb in zip(tested.items(), worse_adj, better_adj, strict=True):
        decisions[key] = _decision(ev, cell_policy, pw if ev.worse else pb)
    return {key: decisions[key] for key in pairs}
