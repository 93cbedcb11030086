"""The first stage of change detection: where each series may have changed, pinned to a commit,
with the window of commits it may really be in.

The segmentation is ruptures' PELT (``KernelCPD``, linear kernel: the exact penalised least-
squares split into segments of constant mean, in C), chosen over E-divisive by the numbers in
``.ci/history-bench`` and docs/history.md. Around it, what a series of one noisy run per commit
needs:

- log scale, so a 5% step is the same size at 1 ms and at 1 s;
- noise measured robustly from differences at lag 1 and lag 10 (a step or an outlier moves
  few of them): their spreads give the point noise and the lag-1 correlation, and so the
  long-run noise of a segment's mean, which is what the penalty is in units of;
- single commits far from their neighbours' median (beyond ``SPIKE_Z`` noise units: an outlier
  or a one-commit spike) replaced by that median, and a pair of breaks fencing at most
  ``MIN_SIZE`` commits with the same level on both sides dropped, so a spike never makes a
  change;
- each point weighted by its own interval: a point whose within-run interval is wide next to
  the series' noise is pulled towards its neighbours' median in proportion;
- a segment of at least ``MIN_SIZE`` commits, a penalty of ``penalty`` x log(n), and a
  change smaller than ``min_effect`` dropped: it is not worth a re-run.

Each suspect carries the window of commits whose split explains the two segments nearly as
well (within ``WINDOW_MARGIN`` of the best, in noise units): the second stage
(``bench.history.confirm``) pins the commit inside it. The same input always gives the same
output: nothing here is random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MIN_SIZE = 2
SPIKE_Z = 4.0
PENALTY = 3.0  # x log(n), in units of the long-run noise variance
MIN_EFFECT = 0.02
WINDOW_MARGIN = 10.0
WEIGHT_HALF = 5  # the neighbours a wide-interval point is pulled towards: 5 each side
LOCAL = 40  # commits each side used to measure a change's size
CHUNK = 600  # PELT runs on overlapping chunks: its cost grows with the square of a quiet run
OVERLAP = 120


@dataclass(frozen=True)
class Suspect:
    """A suspected change at ``index`` (the first point of the new level)."""

    index: int
    ratio: float  # mean after / mean before, over up to LOCAL points each side
    lo: int  # the window of indices the change may be at (inclusive)
    hi: int
    score: float  # the split's gain, in long-run noise variances

    @property
    def direction(self) -> int:
        return 1 if self.ratio > 1 else -1


@dataclass(frozen=True)
class Noise:
    sigma: float  # per point, log scale
    rho: float  # lag-1 correlation
    long_run: float  # sd of the mean of a long segment, per sqrt(point)


def _mad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def noise_of(y: np.ndarray) -> Noise:
    """Point noise and lag-1 correlation from differences at lag 1 and 10, robustly."""
    if y.size < 3:
        return Noise(0.0, 0.0, 0.0)
    v1 = _mad(np.diff(y)) ** 2 / 2.0  # sigma^2 (1 - rho)
    far = y[10:] - y[:-10] if y.size > 20 else np.diff(y)
    v10 = _mad(far) ** 2 / 2.0  # sigma^2 (1 - rho^10), about sigma^2
    sigma2 = max(v10, v1)
    rho = min(max(1.0 - v1 / sigma2, 0.0), 0.9) if sigma2 > 0 else 0.0
    return Noise(math.sqrt(sigma2), rho, math.sqrt(sigma2 * (1 + rho) / (1 - rho)))


def rolling_median(y: np.ndarray, half: int = 2) -> np.ndarray:
    n = y.size
    if n <= 2 * half:
        return np.full(n, float(np.median(y)))
    # the edges are padded with the median of the points nearest them, so a spike on the
    # first or last commit is still a spike
    head, tail = float(np.median(y[: 2 * half + 1])), float(np.median(y[-2 * half - 1 :]))
    padded = np.concatenate([np.full(half, head), y, np.full(half, tail)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=1)


def cleaned(y: np.ndarray, within: np.ndarray | None, noise: Noise) -> np.ndarray:
    """Spikes replaced by the neighbours' median; each point pulled towards it by the share of
    its own within-run variance in its total."""
    med = rolling_median(y)
    out = y.copy()
    if noise.sigma > 0:
        spikes = np.abs(y - med) > SPIKE_Z * noise.sigma
        out[spikes] = med[spikes]
        if within is not None:
            # towards a wider neighbourhood's median: a few noisy runs in a row must not be
            # their own target
            wide = rolling_median(out, WEIGHT_HALF)
            keep = noise.sigma**2 / (noise.sigma**2 + np.square(within))
            out = wide + (out - wide) * keep
    return out


def _pelt(z: np.ndarray, pen: float) -> list[int]:
    import ruptures as rpt

    if z.size < 2 * MIN_SIZE:
        return []
    bkps = rpt.KernelCPD(kernel="linear", min_size=MIN_SIZE, jump=1).fit(z).predict(pen=pen)
    return [int(b) for b in bkps[:-1]]


def _breaks(z: np.ndarray, pen: float) -> list[int]:
    """PELT's change points over the whole series, run chunk by chunk with overlaps: a break
    is kept from the chunk where it lies furthest from an edge."""
    n = z.size
    if n <= CHUNK:
        return _pelt(z, pen)
    found: set[int] = set()
    start = 0
    while True:
        end = min(start + CHUNK, n)
        core_lo = 0 if start == 0 else start + OVERLAP // 2
        core_hi = n if end == n else end - OVERLAP // 2
        found.update(
            b for b in (start + x for x in _pelt(z[start:end], pen)) if core_lo <= b < core_hi
        )
        if end == n:
            break
        start = end - OVERLAP
    return sorted(found)


def _window(z: np.ndarray, lo: int, hi: int, at: int) -> tuple[int, int, float]:
    """The indices within [lo, hi) whose single split of z[lo:hi] gains within WINDOW_MARGIN of
    the best split, and the best gain."""
    seg = z[lo:hi]
    m = seg.size
    csum = np.concatenate([[0.0], np.cumsum(seg)])
    total = csum[-1]
    k = np.arange(MIN_SIZE, m - MIN_SIZE + 1)
    if k.size == 0:
        return at, at, 0.0
    left = csum[k] / k
    right = (total - csum[k]) / (m - k)
    gain = k * (m - k) / m * np.square(left - right)
    best = float(gain.max())
    near = lo + k[gain >= best - WINDOW_MARGIN]
    near = near[np.abs(near - at) <= LOCAL]
    return int(min(near.min(), at)), int(max(near.max(), at)), best


def _without_spikes(y: np.ndarray, breaks: list[int], min_effect: float) -> list[int]:
    """Breaks less the pairs that fence a short excursion (at most ``MIN_SIZE`` commits)
    with the same level on both sides of it: a spike the filter did not catch, not a change."""
    kept: list[int] = []
    i = 0
    while i < len(breaks):
        b = breaks[i]
        if i + 1 < len(breaks) and breaks[i + 1] - b <= MIN_SIZE:
            e = breaks[i + 1]
            before, after = y[max(0, b - LOCAL) : b], y[e : e + LOCAL]
            same = (
                before.size
                and after.size
                and abs(float(np.median(after) - np.median(before))) < math.log1p(min_effect)
            )
            if same:
                i += 2
                continue
        kept.append(b)
        i += 1
    return kept


def suspects(
    values: Sequence[float],
    intervals: Sequence[tuple[float, float]] | None = None,
    *,
    penalty: float = PENALTY,
    min_effect: float = MIN_EFFECT,
) -> list[Suspect]:
    """The suspected changes of one series (positive values in commit order), with each
    point's 95% interval where known."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2 * MIN_SIZE or not np.all(np.isfinite(x)) or np.any(x <= 0):
        return []
    y = np.log(x)
    within = None
    if intervals is not None:
        ci = np.asarray(intervals, dtype=np.float64)
        ok = np.all(ci > 0, axis=1)
        within = np.where(
            ok, (np.log(np.where(ok, ci[:, 1], 1)) - np.log(np.where(ok, ci[:, 0], 1))) / 3.92, 0.0
        )
    noise = noise_of(y)
    if noise.long_run <= 0:
        return []
    z = cleaned(y, within, noise) / noise.long_run
    breaks = _without_spikes(y, _breaks(z, penalty * math.log(max(z.size, 3))), min_effect)
    found = []
    edges = [0, *breaks, z.size]
    for i, b in enumerate(breaks):
        lo, hi = max(edges[i], b - LOCAL), min(edges[i + 2], b + LOCAL)
        before, after = y[lo:b], y[b:hi]
        ratio = math.exp(float(np.median(after) - np.median(before)))
        if abs(math.log(ratio)) < math.log1p(min_effect):
            continue
        w_lo, w_hi, score = _window(z, lo, hi, b)
        found.append(Suspect(b, ratio, w_lo, w_hi, score))
    return found
