"""Statistics of the regression gate: the two-sample tools in measure.stats and gate.decide.

The simulations are the gate's contract with CI users (issue 7): on pure noise it must not
fail a build more often than alpha, and a real 25% slowdown must be caught. Run with -s to see
the measured rates.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bench.gate.decision import Decision, GatePolicy, Verdict, decide, decide_many
from bench.measure.stats import holm, mann_whitney_u, ratio_of_medians_ci


def lognormal(rng: np.random.Generator, n: int, cv: float, median: float = 0.010) -> np.ndarray:
    """Step times with a given coefficient of variation: CV^2 = exp(sigma^2) - 1."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return median * rng.lognormal(0.0, sigma, size=n)


# ---------------------------------------------------------------- ratio of medians


def test_ratio_of_medians_by_hand():
    # medians 2 and 4 -> ratio 2; every resample keeps the ratio within min(c)/max(b) = 2/3
    # and max(c)/min(b) = 6
    ratio, lo, hi = ratio_of_medians_ci([1, 2, 3], [2, 4, 6])
    assert ratio == 2.0
    assert 2 / 3 <= lo <= ratio <= hi <= 6.0


def test_ratio_interval_is_seeded_and_narrows_with_confidence():
    rng = np.random.default_rng(0)
    b, c = lognormal(rng, 20, 0.1), lognormal(rng, 20, 0.1)
    assert ratio_of_medians_ci(b, c, seed=5) == ratio_of_medians_ci(b, c, seed=5)
    _, lo95, hi95 = ratio_of_medians_ci(b, c, confidence=0.95)
    _, lo80, hi80 = ratio_of_medians_ci(b, c, confidence=0.80)
    assert lo95 <= lo80 and hi80 <= hi95


def test_ratio_of_single_samples_is_exact():
    assert ratio_of_medians_ci([2.0], [3.0]) == (1.5, 1.5, 1.5)


def test_ratio_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        ratio_of_medians_ci([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        ratio_of_medians_ci([1.0], [])
    with pytest.raises(ValueError, match="confidence"):
        ratio_of_medians_ci([1.0], [1.0], confidence=1.0)


# ---------------------------------------------------------------- Mann-Whitney U


def test_mann_whitney_by_hand():
    # x = [19, 22, 16, 29, 24], y = [20, 11, 17, 12] (scipy's documentation example)
    # U of x = pairs with x > y: 19 beats 11,12,17 (3); 22 (4); 16 beats 11,12 (2); 29 (4); 24 (4)
    # -> U = 17 of 5*4 = 20, mean 10. Under H0 each of C(9,4) = 126 orderings is equally
    # likely; P(U >= 17) = P(U <= 3) by symmetry = (1 + 1 + 2 + 3)/126 = 7/126
    # (U = 0, 1, 2, 3 are made by 1, 1, 2, 3 partitions of u into at most 4 parts <= 5)
    x, y = [19, 22, 16, 29, 24], [20, 11, 17, 12]
    u, p = mann_whitney_u(x, y, "greater")
    assert u == 17.0
    assert p == pytest.approx(7 / 126)
    assert mann_whitney_u(x, y, "two-sided")[1] == pytest.approx(14 / 126)  # 0.1111
    # "less" is P(U <= 17) = 1 - P(U >= 18) = 1 - (1 + 1 + 2)/126 = 122/126
    assert mann_whitney_u(x, y, "less")[1] == pytest.approx(122 / 126)


def test_mann_whitney_all_tied_carries_no_evidence():
    # every value equal: variance of U is 0, so p = 1 whatever the direction
    assert mann_whitney_u([1.0] * 10, [1.0] * 12, "greater") == (60.0, 1.0)


@pytest.mark.parametrize("method", ["auto", "exact", "asymptotic"])
def test_mann_whitney_matches_scipy(method):
    rng = np.random.default_rng(42)
    checked = 0
    for trial in range(300):
        n1, n2 = (int(v) for v in rng.integers(1, 31, size=2))
        if method == "exact":  # exact counts grow as C(n1+n2, n1); keep the sizes modest
            n1, n2 = min(n1, 12), n2
        x, y = rng.normal(0.0, 1.0, n1), rng.normal(0.4, 1.0, n2)
        if trial % 3 == 0:  # coarse rounding makes ties, which exercise the tie correction
            x, y = np.round(x), np.round(y)
        for alternative in ("greater", "less", "two-sided"):
            expected = scipy_stats.mannwhitneyu(x, y, alternative=alternative, method=method)
            u, p = mann_whitney_u(x, y, alternative, method=method)
            assert u == expected.statistic
            assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-14)
            checked += 1
    assert checked == 900


def test_mann_whitney_rejects_unknown_alternative():
    with pytest.raises(ValueError, match="alternative"):
        mann_whitney_u([1, 2], [3, 4], "bigger")  # type: ignore[arg-type]


# ---------------------------------------------------------------- Holm


def test_holm_by_hand():
    # m = 4; sorted 0.005, 0.01, 0.03, 0.04 scaled by 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06, back in input order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.5*2 = 1.0, 0.6*1 = 0.6 -> running max 1.0, 1.0; and never above 1
    assert holm([0.6, 0.5]) == [1.0, 1.0]
    assert holm([0.9, 0.8, 0.7]) == [1.0, 1.0, 1.0]
    # one hypothesis needs no correction; ties keep equal adjusted values (0.02*2 = 0.04)
    assert holm([0.2]) == [0.2]
    assert holm([0.02, 0.02]) == pytest.approx([0.04, 0.04])
    assert holm([]) == []


def test_holm_rejects_non_probabilities():
    with pytest.raises(ValueError):
        holm([0.5, 1.5])
    with pytest.raises(ValueError):
        holm([float("nan")])


# ---------------------------------------------------------------- decide: each verdict

BASE = np.linspace(0.98, 1.02, 15)  # a quiet baseline: median 1.0, spread +-2%


def test_regressed_and_improved_when_clear():
    slow = decide(BASE, BASE * 1.5, GatePolicy())
    assert slow.verdict is Verdict.REGRESSED
    assert slow.ratio == pytest.approx(1.5)
    assert slow.ci_lo > 1.1 and slow.p_value < 0.01
    assert (slow.n_baseline, slow.n_candidate) == (15, 15)
    assert slow.median_baseline == pytest.approx(1.0)
    assert decide(BASE, BASE * 0.5, GatePolicy()).verdict is Verdict.IMPROVED


def test_higher_is_better_flips_the_direction():
    throughput = GatePolicy(higher_is_better=True)
    dropped = decide(BASE, BASE * 0.5, throughput)
    assert dropped.verdict is Verdict.REGRESSED
    assert dropped.ratio == pytest.approx(0.5)  # reported as measured, not flipped
    assert decide(BASE, BASE * 1.5, throughput).verdict is Verdict.IMPROVED


def test_no_change_when_interval_inside_the_band():
    same = decide(BASE, BASE[::-1], GatePolicy())
    assert same.verdict is Verdict.NO_CHANGE
    assert same.ratio == 1.0
    # a real but small 3% slowdown is significant yet within tolerance: still no change
    small = decide(BASE, BASE * 1.03, GatePolicy())
    assert small.p_value < 0.01
    assert small.verdict is Verdict.NO_CHANGE


def test_inconclusive_when_interval_straddles_the_threshold():
    # spread +-10% around a ratio of exactly 1 + T: the interval must cross 1.10
    wide = np.linspace(0.9, 1.1, 15)
    d = decide(wide, wide * 1.10, GatePolicy())
    assert d.ci_lo < 1.10 < d.ci_hi
    assert d.verdict is Verdict.INCONCLUSIVE


def test_inconclusive_when_large_but_not_significant():
    # the interval is wholly above 1.10, but an adjusted p of 0.5 (many cells) is not enough
    d = decide(BASE, BASE * 1.5, GatePolicy(), p_adjust=0.5)
    assert d.ci_lo > 1.10
    assert d.p_value == 0.5
    assert d.verdict is Verdict.INCONCLUSIVE
    assert "not significant" in d.reason


def test_insufficient_data_never_fails():
    d = decide(BASE[:9], BASE[:9] * 3.0, GatePolicy())  # 9 < min_samples = 10
    assert d.verdict is Verdict.INSUFFICIENT_DATA
    assert d.p_value is None and d.ratio == pytest.approx(3.0)
    empty = decide(BASE, [], GatePolicy())
    assert empty.verdict is Verdict.INSUFFICIENT_DATA
    assert (empty.n_candidate, empty.median_candidate, empty.ratio) == (0, None, None)


def test_policy_is_validated():
    with pytest.raises(ValueError, match="threshold"):
        GatePolicy(threshold=0.0)
    with pytest.raises(ValueError, match="alpha"):
        GatePolicy(alpha=1.5)


# ---------------------------------------------------------------- decide_many: Holm across cells


def test_decide_many_adjusts_p_values_with_holm():
    rng = np.random.default_rng(3)
    pairs = {f"cell{i}": (lognormal(rng, 12, 0.05), lognormal(rng, 12, 0.05)) for i in range(4)}
    pairs["slow"] = (BASE, BASE * 1.5)
    pairs["few"] = (BASE[:3], BASE[:3])
    got = decide_many(pairs, GatePolicy())
    assert list(got) == list(pairs)  # input order kept
    assert got["few"].verdict is Verdict.INSUFFICIENT_DATA
    # the five tested cells form the family: each p is Holm over the five raw p-values of
    # its direction ("worse" for this cell's slowdown)
    raw_worse = [mann_whitney_u(c, b, "greater")[1] for k, (b, c) in pairs.items() if k != "few"]
    assert got["slow"].p_value == pytest.approx(holm(raw_worse)[4])
    assert got["slow"].verdict is Verdict.REGRESSED


def test_holm_turns_a_lone_small_regression_inconclusive_among_many_cells():
    # 10 vs 10 fully separated: U = 100, z = (100 - 50 - 0.5)/sqrt(10*10*21/12) = 3.742,
    # p = 9.1e-5. Alone that is far below alpha = 0.01; among 120 cells Holm scales the
    # smallest p by 120 -> 0.011 >= 0.01, so the regression can no longer be confirmed.
    base = np.linspace(0.98, 1.02, 10)
    alone = decide(base, base * 1.5, GatePolicy())
    assert alone.p_value == pytest.approx(9.1e-5, rel=0.02)
    assert alone.verdict is Verdict.REGRESSED
    pairs = {f"quiet{i}": (base, base[::-1]) for i in range(119)}
    pairs["slow"] = (base, base * 1.5)
    got = decide_many(pairs, GatePolicy())
    assert got["slow"].p_value == pytest.approx(120 * alone.p_value)
    assert got["slow"].verdict is Verdict.INCONCLUSIVE
    # a looser per-cell alpha for that one cell restores the verdict
    relaxed = decide_many(pairs, GatePolicy(), overrides={"slow": GatePolicy(alpha=0.05)})
    assert relaxed["slow"].verdict is Verdict.REGRESSED


# ---------------------------------------------------------------- simulations (issue 7)

TRIALS = 1000


def _simulate_no_change(cv: float, seed: int) -> tuple[Counter[Verdict], float]:
    """Verdict counts on pure noise, and how often the rank test alone would fire."""
    rng = np.random.default_rng(seed)
    policy = GatePolicy()
    verdicts: Counter[Verdict] = Counter()
    test_alone = 0
    for _ in range(TRIALS):
        n_b, n_c = (int(v) for v in rng.integers(10, 31, size=2))  # 10..30 per side
        b, c = lognormal(rng, n_b, cv), lognormal(rng, n_c, cv)
        d: Decision = decide(b, c, policy)
        verdicts[d.verdict] += 1
        test_alone += mann_whitney_u(c, b, "greater")[1] < policy.alpha
    return verdicts, test_alone / TRIALS


@pytest.mark.parametrize("cv", [0.05, 0.10, 0.15])
def test_false_alarm_rate_on_noise_is_at_most_alpha(cv):
    verdicts, test_alone = _simulate_no_change(cv, seed=int(cv * 100))
    rate = verdicts[Verdict.REGRESSED] / TRIALS
    shares = ", ".join(f"{v.value} {n / TRIALS:.1%}" for v, n in sorted(verdicts.items()))
    print(
        f"\nno change, CV {cv:.0%}, 10-30 per side, {TRIALS} trials: false-alarm rate "
        f"{rate:.3%} (rank test alone {test_alone:.1%}); {shares}"
    )
    assert rate <= GatePolicy().alpha


def test_false_alarm_rate_across_ten_cells_is_at_most_alpha():
    # family-wise: the chance that ANY of 10 unchanged cells is REGRESSED
    rng = np.random.default_rng(7)
    trials, alarms = 100, 0
    for _ in range(trials):
        pairs = {f"c{i}": (lognormal(rng, 15, 0.10), lognormal(rng, 15, 0.10)) for i in range(10)}
        verdicts = decide_many(pairs, GatePolicy())
        alarms += any(d.verdict is Verdict.REGRESSED for d in verdicts.values())
    print(
        f"\nno change, 10 cells x {trials} gates, CV 10%: "
        f"any-cell false alarm {alarms / trials:.1%}"
    )
    assert alarms / trials <= GatePolicy().alpha


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_detects_a_25_percent_slowdown(higher_is_better):
    rng = np.random.default_rng(11)
    policy = GatePolicy(higher_is_better=higher_is_better)
    verdicts: Counter[Verdict] = Counter()
    for _ in range(TRIALS):
        b = lognormal(rng, 15, 0.05)
        c = lognormal(rng, 15, 0.05) * 1.25  # 25% longer steps
        if higher_is_better:  # the same runs seen as throughput (steps per second)
            b, c = 1.0 / b, 1.0 / c
        verdicts[decide(b, c, policy).verdict] += 1
    rate = verdicts[Verdict.REGRESSED] / TRIALS
    metric = "throughput" if higher_is_better else "step time"
    print(f"\n25% slowdown, CV 5%, 15 per side, {metric}: detected in {rate:.1%} of {TRIALS}")
    assert rate >= 0.95
