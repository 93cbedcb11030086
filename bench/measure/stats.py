"""Statistics of timing samples: summaries, bootstrap intervals and two-sample tests.

Pure numpy, no framework imports, so every reading command (compare, report, gate) can use it.
Percentiles use numpy's default linear interpolation, so a number here can be reproduced with
``numpy.percentile`` by hand. Bootstraps draw from a ``numpy.random.Generator`` seeded by the
caller: the same samples and seed always give the same interval, which keeps result files and
gate verdicts reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
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


# Up to this many samples, resamples are drawn index by index (the intervals bench has always
# given, bit for bit); beyond it, a resample's order statistics are drawn directly from their
# exact distribution (``_boot_quantiles_drawn``): the same interval in distribution, in
# O(n_boot) time and memory, where drawing 2000 x 100,000 indices takes a minute.
RESAMPLE_MAX = 10_000
_Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal

# Resample indices are drawn this many at a time (8 MiB of int64), so memory stays bounded for
# any sample count: 100,000 samples x 2000 resamples would otherwise be a 1.6 GB index array.
# numpy's Generator yields the same stream in blocks as in one call, so the intervals are
# exactly those of one big draw.
_BOOT_BLOCK = 1 << 20


def _boot_blocks(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    """The ``n_boot x n`` resample indices, in blocks of whole rows of at most ``_BOOT_BLOCK``."""
    rows = max(1, _BOOT_BLOCK // n)
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n))


def _boot_stat(
    x: np.ndarray, rng: np.random.Generator, n_boot: int, stat: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """``stat`` (a row-wise reduction) of each of ``n_boot`` resamples of ``x``."""
    return np.concatenate([stat(x[idx]) for idx in _boot_blocks(rng, x.size, n_boot)])


def _boot_quantiles_drawn(
    x: np.ndarray, q: float, rng: np.random.Generator, n_boot: int
) -> np.ndarray:
    """The ``q``-th percentile (numpy's linear rule) of ``n_boot`` resamples of ``x``, drawn
    from its exact bootstrap distribution without drawing the resamples: O(n_boot) for any n.

    A resample is n indices ``floor(n * V)`` with V uniform, so its (k+1)-th smallest index is
    ``floor(n * V_(k+1))``, and the (k+1)-th smallest of n uniforms is Beta(k+1, n-k). The next
    one up is the smallest of the n-k-1 uniforms above it: ``V + (1 - V) * Beta(1, n-k-1)``.
    The percentile interpolates between the two order statistics at ``h = (n - 1) q / 100``.
    """
    n = x.size
    xs = np.sort(x)
    h = (n - 1) * q / 100.0
    k = min(math.floor(h), n - 1)
    frac = h - k
    v = rng.beta(k + 1, n - k, size=n_boot)
    low = xs[np.minimum((n * v).astype(np.int64), n - 1)]
    if frac == 0.0 or k + 1 >= n:
        return low
    v_next = v + (1.0 - v) * rng.beta(1, n - k - 1, size=n_boot)
    high = xs[np.minimum((n * v_next).astype(np.int64), n - 1)]
    return low + frac * (high - low)


def _boot_quantiles(x: np.ndarray, q: float, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """The ``q``-th percentile of ``n_boot`` resamples of ``x``, by the rule of ``RESAMPLE_MAX``."""
    if x.size > RESAMPLE_MAX:
        return _boot_quantiles_drawn(x, q, rng, n_boot)
    if q == 50.0:
        return _boot_medians(x, rng, n_boot)
    return _boot_stat(x, rng, n_boot, lambda r: np.percentile(r, q, axis=1))


def _boot_medians(x: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Medians of ``n_boot`` resamples of ``x``, equal to ``np.median`` of each resample.

    The middle order statistics of the drawn indices into the sorted sample are the
    resample's: partitioning the indices is cheaper than ``np.median`` on the gathered values,
    and linear in the sample count; the gate's simulation tests run thousands of these.
    """
    n = x.size
    xs = np.sort(x)
    mid = n // 2
    middle = [mid] if n % 2 else [mid - 1, mid]
    out = []
    for idx in _boot_blocks(rng, n, n_boot):
        idx = np.partition(idx, middle, axis=1)
        out.append(xs[idx[:, mid]] if n % 2 else 0.5 * (xs[idx[:, mid - 1]] + xs[idx[:, mid]]))
    return np.concatenate(out)


def summarize(
    samples: Sequence[float], *, seed: int = 0, n_boot: int = 2000
) -> dict[str, float | int | list[float] | None]:
    """Summary statistics of one cell's samples, as plain JSON-ready Python numbers.

    ``stdev`` is the sample standard deviation (ddof=1), 0.0 for a single sample; ``cv`` is
    stdev / mean (None when the mean is 0, where it has no meaning). The 95% intervals are
    percentile bootstraps so they need no normality assumption: step times are skewed.
    Outliers are counted, never dropped: a slow tail is part of what a benchmark measures.
    Memory is bounded for any sample count; above ``RESAMPLE_MAX`` samples the mean's interval
    is the bootstrap's normal limit, mean +- 1.96 stdev / sqrt(n).
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
    if n <= RESAMPLE_MAX:
        # Mean and median of the same resamples, a block of rows at a time.
        both = _boot_stat(
            x, rng, n_boot, lambda r: np.stack([r.mean(axis=1), np.median(r, axis=1)]).T
        )
        ci_mean = np.percentile(both[:, 0], [2.5, 97.5])
        ci_median = np.percentile(both[:, 1], [2.5, 97.5])
    else:
        # So many samples that the bootstrap of the mean is its normal limit; the median's
        # order statistics are drawn exactly (see RESAMPLE_MAX).
        half = _Z95 * stdev / math.sqrt(n)
        ci_mean = np.array([mean - half, mean + half])
        ci_median = np.percentile(_boot_quantiles_drawn(x, 50.0, rng, n_boot), [2.5, 97.5])

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


def binomial_cdf(n: int, p: float) -> np.ndarray:
    """P(X <= k) for k = 0..n, X ~ Binomial(n, p) (0 < p < 1), exact from log-factorials: the
    order statistics' coverage without scipy (which only the tests install)."""
    k = np.arange(n + 1)
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    log_pmf = (
        log_fact[n] - log_fact[k] - log_fact[n - k] + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    cdf = np.cumsum(np.exp(log_pmf - log_pmf.max()))
    return cdf / cdf[-1]


def quantile_bounds(
    samples: Sequence[float], q: float, *, confidence: float = 0.95
) -> tuple[float | None, float | None]:
    """One-sided distribution-free bounds of the ``q``-quantile (0 < q < 1): (lower, upper),
    each holding with probability ``confidence`` whatever the distribution, from order
    statistics and the binomial count of samples below the quantile. None where the samples
    are too few: a 95% upper bound of a p99 needs at least 299 samples (0.99**299 < 0.05), so a
    brief measurement's p99 bounds nothing however low it is."""
    x = np.sort(_as_array(samples))
    n = int(x.size)
    cdf = binomial_cdf(n, q)  # P(at most k samples lie below the quantile)
    # The quantile lies at or below the j-th smallest sample unless j or more lie below it.
    upper_j = np.flatnonzero(cdf[:n] >= confidence)
    upper = float(x[upper_j[0]]) if upper_j.size else None
    # It lies at or above the i-th smallest unless fewer than i lie below it.
    lower_i = np.flatnonzero(1.0 - cdf[:n] >= confidence)
    lower = float(x[lower_i[-1]]) if lower_i.size else None
    return lower, upper


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
    ratios = _boot_quantiles(c, 50.0, rng, n_boot) / _boot_quantiles(b, 50.0, rng, n_boot)
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
    c_boot = _boot_quantiles(c, q, rng, n_boot)
    b_boot = _boot_quantiles(b, q, rng, n_boot)
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(c_boot / b_boot, [tail, 100.0 - tail])
    return float(np.percentile(c, q) / np.percentile(b, q)), float(lo), float(hi)
