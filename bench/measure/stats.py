"""Statistics of timing samples: summaries, bootstrap intervals and two-sample tests.

Pure numpy, no framework imports, so every reading command (compare, report, gate) can use it.
Percentiles use numpy's default linear interpolation, so a number here can be reproduced with
``numpy.percentile`` by hand. Bootstraps draw from a ``numpy.random.Generator`` seeded by the
caller: the same samples and seed always give the same interval, which keeps result files and
gate verdicts reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Alternative = Literal["greater", "less", "two-sided"]

_TUKEY_K = 1.5  # fence distance in IQRs; the conventional box-plot choice


def _as_array(samples: Sequence[float], name: str = "samples") -> np.ndarray:
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no statistics without at least one sample")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    return arr


def _boot_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def _boot_medians(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Medians of ``n_boot`` resamples of ``x``, equal to ``np.median`` of each resample.

    Sorting the drawn indices of the sorted sample gives each resample's order statistics,
    which is about twice as fast as ``np.median`` on the gathered values; the gate's
    simulation tests run thousands of these.
    """
    n = x.size
    idx = np.sort(_boot_indices(rng, n, n_boot), axis=1)
    xs = np.sort(x)
    mid = n // 2
    if n % 2:
        return xs[idx[:, mid]]
    return 0.5 * (xs[idx[:, mid - 1]] + xs[idx[:, mid]])


def summarize(
    samples: Sequence[float], *, seed: int = 0, n_boot: int = 2000
) -> dict[str, float | int | list[float] | None]:
    """Summary statistics of one cell's samples, as plain JSON-ready Python numbers.

    ``stdev`` is the sample standard deviation (ddof=1), 0.0 for a single sample; ``cv`` is
    stdev / mean (None when the mean is 0, where it has no meaning). The 95% intervals are
    percentile bootstraps so they need no normality assumption: step times are skewed.
    Outliers are counted, never dropped: a slow tail is part of what a benchmark measures.
    """
    x = _as_array(samples)
    n = int(x.size)
    mean = float(x.mean())
    stdev = float(x.std(ddof=1)) if n >= 2 else 0.0
    p25, p50, p75, p90, p95, p99 = (float(v) for v in np.percentile(x, [25, 50, 75, 90, 95, 99]))
    iqr = p75 - p25
    low_fence, high_fence = p25 - _TUKEY_K * iqr, p75 + _TUKEY_K * iqr
    outliers_low = int(np.count_nonzero(x < low_fence))
    outliers_high = int(np.count_nonzero(x > high_fence))

    rng = np.random.default_rng(seed)
    resampled = x[_boot_indices(rng, n, n_boot)]
    ci_mean = np.percentile(resampled.mean(axis=1), [2.5, 97.5])
    ci_median = np.percentile(np.median(resampled, axis=1), [2.5, 97.5])

    return {
        "n": n,
        "mean": mean,
        "median": p50,
        "p50": p50,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "min": float(x.min()),
        "max": float(x.max()),
        "stdev": stdev,
        "cv": stdev / mean if mean != 0 else None,  # null, not NaN: records are strict JSON
        "ci95_mean": [float(ci_mean[0]), float(ci_mean[1])],
        "ci95_median": [float(ci_median[0]), float(ci_median[1])],
        "outliers_low": outliers_low,
        "outliers_high": outliers_high,
        "outliers": outliers_low + outliers_high,
    }


def ratio_of_medians_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Candidate median / baseline median and its percentile-bootstrap interval.

    The two sides are resampled independently (they are separate runs), and a ratio rather
    than a difference makes one threshold fit cells whose step times differ by orders of
    magnitude. Medians resist the slow outliers that shared machines produce. The baseline
    must be positive: ratios are for times, rates and sizes.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    b = _as_array(baseline, "baseline")
    c = _as_array(candidate, "candidate")
    if np.any(b <= 0):
        raise ValueError("baseline samples must be positive for a ratio of medians")
    rng = np.random.default_rng(seed)
    ratios = _boot_medians(c, rng, n_boot) / _boot_medians(b, rng, n_boot)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(np.median(c) / np.median(b)), float(lo), float(hi)


def _average_ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their mean rank, and the size of every tie group."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    bounds = np.flatnonzero(np.r_[starts_group, True])
    sizes = np.diff(bounds)
    # a group occupying 0-based positions s..s+t-1 shares ranks s+1..s+t, whose mean is s+(t+1)/2
    mean_rank = bounds[:-1] + (sizes + 1) / 2.0
    ranks = np.empty(values.size)
    ranks[order] = mean_rank[group]
    return ranks, sizes


def _u_counts(n1: int, n2: int) -> list[int]:
    """How many of the C(n1+n2, n1) orderings give U = 0, 1, ..., n1*n2 (no ties).

    These are the coefficients of the Gaussian binomial [n1+n2 choose m]_q, built as
    prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i) with m = min(n1, n2), n = max(n1, n2); after step i
    the running product is [n+i choose i]_q, so every division is exact. Python integers keep
    the counts exact for any size.
    """
    m, n = min(n1, n2), max(n1, n2)
    size = m * n + 1
    c = [0] * size
    c[0] = 1
    for i in range(1, m + 1):
        k = n + i
        for j in range(size - 1, k - 1, -1):  # times (1 - q^k), high powers first
            c[j] -= c[j - k]
        for j in range(i, size):  # divided by (1 - q^i): a running sum with stride i
            c[j] += c[j - i]
    return c


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_u(
    x: Sequence[float],
    y: Sequence[float],
    alternative: Alternative = "greater",
    *,
    method: Literal["auto", "exact", "asymptotic"] = "auto",
) -> tuple[float, float]:
    """Mann-Whitney U test; returns (U of ``x``, p-value), matching ``scipy.stats.mannwhitneyu``.

    "greater" asks whether ``x`` tends to be larger than ``y`` (a slower candidate when x holds
    candidate step times). Ranks make no assumption about the shape of the timing
    distribution, and one slow outlier moves U by at most one rank. "auto" uses the exact
    null distribution when one side has at most 8 samples and there are no ties, otherwise
    the normal approximation with tie and continuity corrections, as scipy does.
    """
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"alternative must be greater, less or two-sided, got {alternative!r}")
    if method not in ("auto", "exact", "asymptotic"):
        raise ValueError(f"method must be auto, exact or asymptotic, got {method!r}")
    a = _as_array(x, "x")
    b = _as_array(y, "y")
    n1, n2 = a.size, b.size
    ranks, ties = _average_ranks(np.concatenate([a, b]))
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u2 = n1 * n2 - u1
    # every alternative reduces to an upper-tail probability of one statistic
    u = {"greater": u1, "less": u2, "two-sided": max(u1, u2)}[alternative]
    factor = 2.0 if alternative == "two-sided" else 1.0

    has_ties = bool(np.any(ties > 1))
    if method == "auto":
        method = "asymptotic" if (n1 > 8 and n2 > 8) or has_ties else "exact"
    if method == "exact":
        counts = _u_counts(n1, n2)
        # U is a half-integer only under ties, where no exact null distribution applies;
        # rounding down keeps p conservative (and equal to scipy's)
        upper = sum(counts[math.floor(u) :])
        p = upper / math.comb(n1 + n2, n1)
    else:
        n = n1 + n2
        tie_term = float(np.sum(ties.astype(np.float64) ** 3 - ties))
        var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
        if var <= 0:  # every value tied: the samples carry no evidence either way
            return u1, 1.0
        # the continuity correction moves U half a step toward the mean
        p = _normal_sf((u - n1 * n2 / 2.0 - 0.5) / math.sqrt(var))
    return u1, min(1.0, factor * p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Comparing each adjusted value with alpha keeps the chance of any false rejection across
    all cells at most alpha, under any dependence between cells, while rejecting more than
    plain Bonferroni. The i-th smallest p (0-based) is scaled by m - i, then made monotone by
    a running maximum and capped at 1.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("pvalues must be one-dimensional")
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


def ratio_of_quantiles_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    q: float,
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Candidate / baseline ``q``-th percentile (0-100) and its percentile-bootstrap interval.

    For tails (p99 latency) where the median says nothing. With few samples a high percentile
    is close to the maximum and its interval is wide: that width is the honest answer to "is
    this tail really different". Same resampling scheme as ``ratio_of_medians_ci``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must lie in [0, 100], got {q}")
    b = _as_array(baseline, "baseline")
    c = _as_array(candidate, "candidate")
    if np.any(b <= 0):
        raise ValueError("baseline samples must be positive for a ratio of percentiles")
    rng = np.random.default_rng(seed)
    c_boot = np.percentile(c[_boot_indices(rng, c.size, n_boot)], q, axis=1)
    b_boot = np.percentile(b[_boot_indices(rng, b.size, n_boot)], q, axis=1)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(c_boot / b_boot, [tail, 100.0 - tail])
    return float(np.percentile(c, q) / np.percentile(b, q)), float(lo), float(hi)
