"""Tests of bench.measure.stats against values worked out by hand (arithmetic in comments)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.measure.stats import summarize

KEYS = {
    "n", "mean", "median", "p50", "p90", "p95", "p99", "min", "max", "stdev", "cv",
    "ci95_mean", "ci95_median", "outliers_low", "outliers_high", "outliers",
}  # fmt: skip


def test_summary_by_hand_with_one_high_outlier():
    s = summarize([1, 2, 3, 4, 100])
    assert set(s) == KEYS
    assert s["n"] == 5
    # mean = (1+2+3+4+100)/5 = 110/5 = 22
    assert s["mean"] == 22.0
    assert s["median"] == s["p50"] == 3.0
    assert (s["min"], s["max"]) == (1.0, 100.0)
    # linear interpolation: position p/100 * (n-1) = p/100 * 4 in the sorted samples
    # p90: pos 3.6 -> 4 + 0.6*(100-4) = 61.6; p95: pos 3.8 -> 4 + 0.8*96 = 80.8;
    # p99: pos 3.96 -> 4 + 0.96*96 = 96.16
    assert s["p90"] == pytest.approx(61.6)
    assert s["p95"] == pytest.approx(80.8)
    assert s["p99"] == pytest.approx(96.16)
    # deviations from 22: -21, -20, -19, -18, 78; squares 441+400+361+324+6084 = 7610
    # sample variance 7610/(5-1) = 1902.5; stdev = sqrt(1902.5) = 43.6176...
    assert s["stdev"] == pytest.approx(math.sqrt(1902.5))
    assert s["cv"] == pytest.approx(math.sqrt(1902.5) / 22)  # 1.98262...
    # Q1 at pos 1 -> 2, Q3 at pos 3 -> 4, IQR = 2; fences 2 - 3 = -1 and 4 + 3 = 7
    # -> only 100 lies outside, above
    assert (s["outliers_low"], s["outliers_high"], s["outliers"]) == (0, 1, 1)


def test_low_outlier_counted_apart():
    # sorted [-50, 10, 11, 12, 13]: Q1 = 10, Q3 = 12, IQR = 2, fences 7 and 15 -> -50 is low
    s = summarize([12, -50, 11, 13, 10])
    assert (s["outliers_low"], s["outliers_high"], s["outliers"]) == (1, 0, 1)
    assert s["median"] == 11.0


def test_two_samples():
    s = summarize([1.0, 3.0])
    # mean 2, deviations -1 and 1: variance (1+1)/(2-1) = 2, stdev sqrt(2), cv sqrt(2)/2
    assert s["stdev"] == pytest.approx(math.sqrt(2))
    assert s["cv"] == pytest.approx(math.sqrt(2) / 2)
    # p90 at pos 0.9 -> 1 + 0.9*(3-1) = 2.8
    assert s["p90"] == pytest.approx(2.8)


def test_single_sample_has_zero_spread_and_degenerate_intervals():
    s = summarize([5.0])
    assert s["n"] == 1
    assert s["stdev"] == 0.0 and s["cv"] == 0.0
    for key in ("mean", "median", "p50", "p90", "p95", "p99", "min", "max"):
        assert s[key] == 5.0
    # every resample of one value is that value
    assert s["ci95_mean"] == [5.0, 5.0]
    assert s["ci95_median"] == [5.0, 5.0]
    assert s["outliers"] == 0


def test_constant_samples_have_no_outliers():
    # IQR = 0, fences both at 2.0; nothing is strictly beyond them
    s = summarize([2.0] * 7)
    assert s["outliers"] == 0 and s["cv"] == 0.0
    assert s["ci95_median"] == [2.0, 2.0]


def test_empty_and_non_finite_input_raise():
    with pytest.raises(ValueError, match="empty"):
        summarize([])
    with pytest.raises(ValueError, match="NaN"):
        summarize([1.0, float("nan")])


def test_bootstrap_is_deterministic_for_a_seed():
    x = np.random.default_rng(1).lognormal(0.0, 0.1, size=40).tolist()
    a, b = summarize(x, seed=3), summarize(x, seed=3)
    assert a == b
    c = summarize(x, seed=4)
    assert c["ci95_mean"] != a["ci95_mean"]
    # only the intervals depend on the seed
    assert {k: v for k, v in c.items() if not k.startswith("ci95")} == {
        k: v for k, v in a.items() if not k.startswith("ci95")
    }


def test_intervals_contain_the_point_estimates():
    x = np.random.default_rng(2).lognormal(0.0, 0.15, size=30).tolist()
    s = summarize(x)
    lo, hi = s["ci95_mean"]
    assert lo < s["mean"] < hi
    lo, hi = s["ci95_median"]
    assert lo <= s["median"] <= hi
    # means of resamples can never leave the sample range
    assert s["min"] <= lo and hi <= s["max"]


def test_output_is_plain_json():
    s = summarize([0.010, 0.011, 0.012, 0.013])
    assert json.loads(json.dumps(s)) == s
    assert all(type(v) in (int, float, list) for v in s.values())


def test_quantile_bounds_need_enough_samples_and_cover_the_quantile():
    from bench.measure.stats import quantile_bounds

    rng = np.random.default_rng(3)
    # 0.99**298 = 0.0501 > 0.05: 298 samples bound no p99 from above; 299 do (their maximum)
    assert quantile_bounds(rng.random(298), 0.99)[1] is None
    sample = rng.random(299)
    assert quantile_bounds(sample, 0.99)[1] == sample.max()
    # uniform samples: the true p99 is 0.99; each one-sided 95% bound misses it in about 5%
    # of draws, never far more (binomial: 400 draws at 5% put 35 misses 3.4 sd out)
    misses_up = misses_down = 0
    for _ in range(400):
        low, high = quantile_bounds(rng.random(1000), 0.99)
        assert low is not None and high is not None and low <= high
        misses_up += high < 0.99
        misses_down += low > 0.99
    assert misses_up < 35 and misses_down < 35
