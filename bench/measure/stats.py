"""Statistics of timing samples: summaries, bootstrap intervals and two-sample tests.

Pure numpy, no framework imports, so every reading command (compare, report, gate) can use it.
Percentiles use numpy's default linear interpolation, so a number here can be reproduced with
``numpy.percentile`` by hand. Bootstraps draw from a ``numpy.random.Generator`` seeded by the
caller: the same samples and seed always give the same interval, which keeps result files and
gate verdicts reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

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


def summarize(
    samples: Sequence[float], *, seed: int = 0, n_boot: int = 2000
) -> dict[str, float | int | list[float]]:
    """Summary statistics of one cell's samples, as plain JSON-ready Python numbers.

    ``stdev`` is the sample standard deviation (ddof=1), 0.0 for a single sample; ``cv`` is
    stdev / mean (NaN when the mean is 0, where it has no meaning). The 95% intervals are
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
        "cv": stdev / mean if mean != 0 else float("nan"),
        "ci95_mean": [float(ci_mean[0]), float(ci_mean[1])],
        "ci95_median": [float(ci_median[0]), float(ci_median[1])],
        "outliers_low": outliers_low,
        "outliers_high": outliers_high,
        "outliers": outliers_low + outliers_high,
    }
