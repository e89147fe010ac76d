"""The censored-data statistics: per-seed bounds, the interval on the mean log speedup and its
coverage shown by simulation (with and without missed targets), false verdicts, error spending
over adaptive looks, and the log-rank comparison of a technique with its random control."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from step7bench.analysis.censored import (CensoredEstimate, claim_verdict, combine_bounds, log_mean_interval,
                                          log_ratio_bounds, logrank_compare, look_sizes, sequential_decision,
                                          spending_levels)
from step7bench.analysis.stats import INCONCLUSIVE, REFUTED, SUPPORTED

INF = math.inf

# ---------------------------------------------------------------------------------------------
# Simulated paired trials. Per seed, a difficulty shared by both arms (log-normal, sd TAU), and
# each arm's own log-normal noise of variance sigma^2 / 2, so that the seed's log speedup
# d = log(cost_ref / cost_arm) ~ Normal(mu, sigma^2). Budgets as the harness sets them: the
# baseline's at its own 90th percentile (about 10% of baselines miss: the target is one the
# baseline reaches on >= 90% of calibration seeds), the arm's at 1.33 x the baseline's median
# (AlgoPerf's headroom of about a third).

TAU = 0.1
BASELINE_QUANTILE = 0.9
ARM_HEADROOM = 1.33
MUS = (math.log(0.7), 0.0, math.log(1.4))
SIGMAS = (0.05, 0.15, 0.3)
SEED_COUNTS = (2, 3, 5, 8)


def simulated_bounds(rng: np.random.Generator, mu: float, sigma: float, seeds: int, reps: int,
                     censored: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """(low, high) of shape (reps, seeds) from `log_ratio_bounds`, and the share of trials that
    missed their target. Uncensored: budgets large enough that no trial misses."""
    difficulty = rng.normal(0.0, TAU, (reps, seeds))
    log_ref = difficulty + rng.normal(0.0, sigma / math.sqrt(2), (reps, seeds))
    log_arm = difficulty - mu + rng.normal(0.0, sigma / math.sqrt(2), (reps, seeds))
    ref_budget = stats.norm.ppf(BASELINE_QUANTILE) * math.hypot(TAU, sigma / math.sqrt(2)) if censored else INF
    arm_budget = math.log(ARM_HEADROOM) if censored else INF
    ref_cost = np.where(log_ref <= ref_budget, np.exp(log_ref), INF)
    arm_cost = np.where(log_arm <= arm_budget, np.exp(log_arm), INF)
    low, high = log_ratio_bounds(ref_cost.ravel(), arm_cost.ravel(), np.exp(np.minimum(log_ref, ref_budget)).ravel(),
                                 np.exp(np.minimum(log_arm, arm_budget)).ravel())
    missed = (np.isinf(ref_cost).sum() + np.isinf(arm_cost).sum()) / (2 * reps * seeds)
    return low.reshape(reps, seeds), high.reshape(reps, seeds), float(missed)


@functools.cache
def simulated_intervals(mu: float, sigma: float, seeds: int, reps: int,
                        censored: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """(ci_low, ci_high, missed share) of `reps` simulated experiments; fixed seed per cell, cached
    so that the coverage and the verdict tests share one simulation (pass arguments positionally:
    the cache keys keyword and positional calls apart)."""
    rng = np.random.default_rng([seeds, round(1000 * sigma), round(1000 * mu) + 1000, int(censored), reps])
    low, high, missed = simulated_bounds(rng, mu, sigma, seeds, reps, censored)
    estimates = [log_mean_interval(row_low, row_high) for row_low, row_high in zip(low, high)]
    return np.array([e.ci_low for e in estimates]), np.array([e.ci_high for e in estimates]), missed


def coverage(mu: float, sigma: float, seeds: int, reps: int, censored: bool) -> tuple[float, float]:
    ci_low, ci_high, missed = simulated_intervals(mu, sigma, seeds, reps, censored)
    return float(np.mean((ci_low <= mu) & (mu <= ci_high))), missed


def slack(rate: float, reps: int) -> float:
    """Two binomial standard errors: how far a simulated rate may stray above its true value."""
    return 2 * math.sqrt(rate * (1 - rate) / reps)


# ---------------------------------------------------------------------------------------------
# Per-seed bounds


def test_log_ratio_bounds_cover_every_combination_of_missed_targets():
    low, high = log_ratio_bounds([100.0, 100.0, INF, INF], [50.0, INF, 80.0, INF], [100.0, 100.0, 120.0, 120.0],
                                 [50.0, 160.0, 80.0, 160.0])
    assert low.tolist() == [math.log(2), -INF, math.log(120 / 80), -INF]
    assert high.tolist() == [math.log(2), math.log(100 / 160), INF, INF]


@pytest.mark.parametrize("ref, arm, ref_spent, arm_spent", [
    ([1.0, 2.0], [1.0], [1.0, 2.0], [1.0]),
    ([0.0], [1.0], [1.0], [1.0]),
    ([1.0], [math.nan], [1.0], [1.0]),
    ([INF], [1.0], [INF], [1.0]),
    ([1.0], [INF], [1.0], [-1.0]),
])
def test_log_ratio_bounds_refuse_bad_costs(ref, arm, ref_spent, arm_spent):
    with pytest.raises(ValueError):
        log_ratio_bounds(ref, arm, ref_spent, arm_spent)


def test_combine_bounds_is_interval_arithmetic():
    stacked = ([0.5, -INF, 0.2], [0.5, 0.1, 0.2])
    alone_a = ([0.2, 0.1, -INF], [0.2, 0.1, INF])
    alone_b = ([0.1, 0.0, 0.0], [0.1, 0.0, INF])
    low, high = combine_bounds([1, -1, -1], [stacked[0], alone_a[0], alone_b[0]],
                               [stacked[1], alone_a[1], alone_b[1]])
    assert low == pytest.approx([0.2, -INF, -INF])
    assert high == pytest.approx([0.2, 0.0, INF])


@pytest.mark.parametrize("coefficients", [[], [0.0], [math.inf]])
def test_combine_bounds_refuses_bad_coefficients(coefficients):
    with pytest.raises(ValueError):
        combine_bounds(coefficients, [[0.0]] * len(coefficients), [[0.0]] * len(coefficients))


finite = st.integers(-40, 40).map(lambda k: k / 8)
"""Log speedups on a grid of 1/8: shifts by grid steps are then exact in floating point."""


@st.composite
def seed_bounds(draw, min_seeds: int = 1, max_seeds: int = 8):
    """Per-seed bounds of every kind: exact, one-sided either way, two-sided, uninformative."""
    n = draw(st.integers(min_seeds, max_seeds))
    low, high = [], []
    for _ in range(n):
        kind = draw(st.sampled_from(["exact", "exact", "upper", "lower", "interval", "none"]))
        a, b = sorted([draw(finite), draw(finite)])
        low.append({"exact": a, "upper": -INF, "lower": a, "interval": a, "none": -INF}[kind])
        high.append({"exact": a, "upper": b, "lower": INF, "interval": b + 0.125, "none": INF}[kind])
    return np.array(low), np.array(high)


@given(seed_bounds(), st.floats(0.1, 3.0))
def test_combine_bounds_scales_and_negates(bounds, c):
    low, high = bounds
    scaled = combine_bounds([c], [low], [high])
    negated = combine_bounds([-c], [low], [high])
    assert np.array_equal(scaled[0], c * low) and np.array_equal(scaled[1], c * high)
    assert np.array_equal(negated[0], -c * high) and np.array_equal(negated[1], -c * low)


# ---------------------------------------------------------------------------------------------
# The estimator: special cases


def test_no_informative_seed_leaves_everything_undefined():
    estimate = log_mean_interval([-INF, -INF], [INF, INF])
    assert math.isnan(estimate.point) and (estimate.ci_low, estimate.ci_high) == (-INF, INF)
    assert estimate.n_uninformative == 2 and estimate.n_informative == 0 and estimate.method == "no information"


def test_one_exact_seed_gives_the_whole_line():
    estimate = log_mean_interval([0.3], [0.3])
    assert (estimate.point, estimate.ci_low, estimate.ci_high) == (0.3, -INF, INF)


def test_identical_exact_seeds_give_a_point_interval():
    estimate = log_mean_interval([0.2] * 3, [0.2] * 3)
    assert (estimate.point, estimate.ci_low, estimate.ci_high) == (0.2, 0.2, 0.2)
    # A miss that every tied value is consistent with keeps it a point; one that contradicts them does not.
    assert log_mean_interval([0.2, 0.2, -INF], [0.2, 0.2, 0.5]).ci_high == 0.2
    contradicted = log_mean_interval([0.2, 0.2, -INF], [0.2, 0.2, 0.1])
    assert contradicted.ci_low < contradicted.point < 0.2 < contradicted.ci_high


def test_uninformative_seeds_are_counted_and_left_out():
    estimate = log_mean_interval([0.1, 0.3, -INF], [0.1, 0.3, INF])
    assert estimate == dataclasses.replace(log_mean_interval([0.1, 0.3], [0.1, 0.3]), n_uninformative=1)


def test_every_arm_missing_bounds_the_speedup_from_above_only():
    many = log_mean_interval([-INF] * 8, [0.1, 0.2, 0.0, 0.3, 0.1, 0.2, 0.15, 0.05])
    assert (many.point, many.ci_low) == (-INF, -INF) and many.ci_high == pytest.approx(0.3)
    assert (many.speedup, many.speedup_low, many.speedup_high) == (0.0, 0.0, pytest.approx(math.exp(0.3)))
    assert many.n_upper_censored == 8 and many.method == "sign test"
    few = log_mean_interval([-INF] * 3, [0.1, 0.2, 0.0])
    assert (few.point, few.ci_low, few.ci_high) == (-INF, -INF, INF)


def test_every_reference_missing_bounds_the_speedup_from_below_only():
    estimate = log_mean_interval([0.1, 0.2, 0.0, 0.3, 0.1, 0.2, 0.15, 0.05], [INF] * 8)
    assert (estimate.point, estimate.ci_high, estimate.ci_low) == (INF, INF, 0.0)
    assert estimate.speedup_high == INF


def test_a_miss_moves_the_estimate_its_way():
    exact = log_mean_interval([0.1, 0.2, 0.3, 0.25], [0.1, 0.2, 0.3, 0.25])
    arm_missed = log_mean_interval([0.1, 0.2, 0.3, -INF], [0.1, 0.2, 0.3, 0.0])
    ref_missed = log_mean_interval([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, INF])
    assert arm_missed.point < exact.point < ref_missed.point
    assert arm_missed.method == ref_missed.method == "profile likelihood"
    assert (arm_missed.n_upper_censored, ref_missed.n_lower_censored) == (1, 1)


def test_confidence_one_gives_the_whole_line():
    estimate = log_mean_interval([0.1, 0.2, -INF], [0.1, 0.2, 0.5], confidence=1.0)
    assert (estimate.ci_low, estimate.ci_high) == (-INF, INF)


@pytest.mark.parametrize("low, high, confidence", [
    ([0.1], [0.0], 0.95), ([math.nan], [0.0], 0.95), ([INF], [INF], 0.95), ([0.0], [0.0, 1.0], 0.95),
    ([0.0], [0.0], 0.0), ([0.0], [0.0], 1.5)])
def test_bad_bounds_or_confidence_are_refused(low, high, confidence):
    with pytest.raises(ValueError):
        log_mean_interval(low, high, confidence)


# ---------------------------------------------------------------------------------------------
# The estimator: properties


@given(st.lists(finite, min_size=2, max_size=10).filter(lambda x: np.ptp(x) > 1e-3), st.floats(0.5, 0.999))
def test_uncensored_interval_is_the_paired_t_interval(values, confidence):
    x = np.array(values)
    estimate = log_mean_interval(x, x, confidence)
    expected = stats.t.interval(confidence, x.size - 1, loc=x.mean(), scale=stats.sem(x))
    assert (estimate.ci_low, estimate.ci_high) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert estimate.point == pytest.approx(x.mean()) and estimate.method == "t"


@settings(max_examples=60, deadline=None)
@given(seed_bounds(), finite)
def test_shifting_every_bound_shifts_the_estimate(bounds, delta):
    low, high = bounds
    before, after = log_mean_interval(low, high), log_mean_interval(low + delta, high + delta)
    for old, new in [(before.point, after.point), (before.ci_low, after.ci_low), (before.ci_high, after.ci_high)]:
        assert (math.isnan(old) and math.isnan(new)) or new == pytest.approx(old + delta, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(seed_bounds())
def test_mirroring_the_seeds_mirrors_the_estimate(bounds):
    """-d swaps what the arm and the reference know: upper and lower bounds trade places."""
    low, high = bounds
    estimate, mirrored = log_mean_interval(low, high), log_mean_interval(-high, -low)
    assert mirrored.ci_low == pytest.approx(-estimate.ci_high, abs=1e-6)
    assert mirrored.ci_high == pytest.approx(-estimate.ci_low, abs=1e-6)
    assert (math.isnan(estimate.point) and math.isnan(mirrored.point)) or \
        mirrored.point == pytest.approx(-estimate.point, abs=1e-6)
    assert (mirrored.n_upper_censored, mirrored.n_lower_censored) == (estimate.n_lower_censored,
                                                                      estimate.n_upper_censored)


@settings(max_examples=100, deadline=None)
@given(seed_bounds(), st.floats(0.5, 0.99))
def test_estimates_are_never_nan_bounds_and_hold_their_point(bounds, confidence):
    low, high = bounds
    estimate = log_mean_interval(low, high, confidence)
    assert not math.isnan(estimate.ci_low) and not math.isnan(estimate.ci_high)
    assert estimate.ci_low <= estimate.ci_high
    assert math.isnan(estimate.point) or estimate.ci_low <= estimate.point <= estimate.ci_high
    assert estimate.n_informative + estimate.n_uninformative == low.size


@settings(max_examples=40, deadline=None)
@given(seed_bounds(min_seeds=3), st.floats(0.5, 0.9), st.floats(0.01, 0.09))
def test_more_confidence_never_narrows_the_interval(bounds, confidence, more):
    low, high = bounds
    narrow, wide = log_mean_interval(low, high, confidence), log_mean_interval(low, high, confidence + more)
    assert wide.ci_low <= narrow.ci_low + 1e-9 and narrow.ci_high <= wide.ci_high + 1e-9


def test_speedup_scale_properties():
    estimate = CensoredEstimate(math.log(2.0), -INF, INF, 1, 0, 0, 0, 0, "t")
    assert (estimate.speedup, estimate.speedup_low, estimate.speedup_high) == (pytest.approx(2.0), 0.0, INF)


# ---------------------------------------------------------------------------------------------
# Coverage, shown by simulation. The fast subset covers the seed counts claims use (3, 5) where
# misses are common; the slow grid is every (mu, sigma, seeds) cell.

FAST_REPS, SLOW_REPS = 1000, 2000
FAST_CELLS = [(0.0, 0.3, 3), (0.0, 0.3, 5), (math.log(0.7), 0.15, 3), (math.log(0.7), 0.15, 5)]
"""No effect with noisy seeds (about 10% of trials miss), and a slowdown (about 40% miss, most of
them the arm's), at the seed counts claims are judged on."""


@pytest.mark.parametrize("seeds", SEED_COUNTS)
def test_coverage_without_misses(seeds):
    covered, missed = coverage(0.0, 0.15, seeds, SLOW_REPS, False)
    assert missed == 0 and covered >= 0.93


@pytest.mark.parametrize("mu, sigma, seeds", FAST_CELLS)
def test_coverage_with_misses(mu, sigma, seeds):
    covered, missed = coverage(mu, sigma, seeds, FAST_REPS, True)
    assert missed >= 0.05 and covered >= 0.93


@pytest.mark.slow
@pytest.mark.parametrize("censored", [False, True])
@pytest.mark.parametrize("mu", MUS)
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("seeds", SEED_COUNTS)
def test_coverage_grid(mu, sigma, seeds, censored):
    covered, _ = coverage(mu, sigma, seeds, SLOW_REPS, censored)
    assert covered >= 0.93


def false_verdicts(mu: float, sigma: float, seeds: int, reps: int, censored: bool) -> tuple[float, float]:
    """Shares of SUPPORTED (exp(ci_low) >= claim) and REFUTED (exp(ci_high) < claim) when the claim
    is the true speedup: errors that the interval's two tails each bound by 2.5%."""
    ci_low, ci_high, _ = simulated_intervals(mu, sigma, seeds, reps, censored)
    claim = math.exp(mu)
    return float(np.mean(np.exp(ci_low) >= claim)), float(np.mean(np.exp(ci_high) < claim))


@pytest.mark.parametrize("mu, sigma, seeds", FAST_CELLS)
def test_false_verdicts_when_the_claim_is_the_truth(mu, sigma, seeds):
    supported, refuted = false_verdicts(mu, sigma, seeds, FAST_REPS, True)
    assert max(supported, refuted) <= 0.025 + slack(0.025, FAST_REPS)


@pytest.mark.slow
@pytest.mark.parametrize("censored", [False, True])
@pytest.mark.parametrize("mu", MUS)
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("seeds", (3, 5))
def test_false_verdicts_grid(mu, sigma, seeds, censored):
    supported, refuted = false_verdicts(mu, sigma, seeds, SLOW_REPS, censored)
    assert max(supported, refuted) <= 0.025 + slack(0.025, SLOW_REPS)


def test_claim_verdict_rules():
    estimate = CensoredEstimate(0.0, math.log(1.2), math.log(1.5), 3, 0, 0, 0, 0, "t")
    assert claim_verdict(estimate, 1.1) == SUPPORTED
    assert claim_verdict(estimate, 1.6) == REFUTED
    assert claim_verdict(estimate, 1.3) == INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# Adaptive seeds with error spending


@pytest.mark.parametrize("shape", ["obrien-fleming", "pocock"])
@given(looks=st.integers(1, 12), alpha=st.floats(0.001, 0.08))
def test_spending_levels_sum_to_alpha_and_follow_their_shape(shape, looks, alpha):
    levels = spending_levels(looks, alpha, shape)
    assert len(levels) == looks and all(level >= 0 for level in levels)
    assert sum(levels) == pytest.approx(alpha)
    if shape == "obrien-fleming":
        assert levels == sorted(levels)  # spends late
    else:
        assert levels == sorted(levels, reverse=True)  # log(1 + (e - 1) t) is concave


def test_spending_levels_known_values():
    assert spending_levels(1) == [0.05]
    early = 2 * stats.norm.sf(stats.norm.isf(0.025) / math.sqrt(0.5))
    assert spending_levels(2) == pytest.approx([early, 0.05 - early])
    assert spending_levels(2, shape="pocock")[0] == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    with pytest.raises(ValueError):
        spending_levels(0)
    with pytest.raises(ValueError):
        spending_levels(3, shape="haybittle")


def test_look_sizes():
    assert look_sizes(3, 2, 9) == [3, 5, 7, 9]
    assert look_sizes(3, 2, 8) == [3, 5, 7, 8]
    assert look_sizes(5, 3, 5) == [5]
    with pytest.raises(ValueError):
        look_sizes(6, 2, 5)


def test_sequential_decision_stops_when_decisive_or_last():
    seeds = np.log([1.5, 1.52, 1.49, 1.51, 1.5])
    decisive = sequential_decision(seeds, seeds, claim=1.2, look=2, looks=4)
    assert decisive.verdict == SUPPORTED and decisive.stop
    assert decisive.confidence == pytest.approx(1 - spending_levels(4)[1])
    undecided = sequential_decision(seeds[:3], seeds[:3], claim=1.5, look=1, looks=4)
    assert undecided.verdict == INCONCLUSIVE and not undecided.stop
    assert sequential_decision(seeds, seeds, claim=1.5, look=4, looks=4).stop


def run_sequential(rng: np.random.Generator, mu: float, claim: float, reps: int,
                   shape: str = "obrien-fleming") -> dict[str, float]:
    """Share of `reps` adaptive experiments ending in each verdict: 3 seeds, then 2 more per look
    up to 9 (4 looks), stopping at the first decisive look; misses as in the coverage simulation."""
    sizes = look_sizes(3, 2, 9)
    low, high, _ = simulated_bounds(rng, mu, 0.15, sizes[-1], reps)
    outcomes = []
    for row_low, row_high in zip(low, high):
        for look, size in enumerate(sizes, start=1):
            decision = sequential_decision(row_low[:size], row_high[:size], claim, look, len(sizes), shape=shape)
            if decision.stop:
                outcomes.append(decision.verdict)
                break
    return {verdict: outcomes.count(verdict) / reps for verdict in (SUPPORTED, REFUTED, INCONCLUSIVE)}


@pytest.mark.parametrize("shape, reps", [("obrien-fleming", 300),
                                         pytest.param("obrien-fleming", 1000, marks=pytest.mark.slow),
                                         pytest.param("pocock", 1000, marks=pytest.mark.slow)])
def test_sequential_procedure_keeps_wrong_verdicts_rare(shape, reps):
    """Worst cases: the truth exactly at the claim (REFUTED is wrong) and just below it (SUPPORTED
    is wrong). Looking after every batch of seeds must keep each under alpha = 5%."""
    at_claim = run_sequential(np.random.default_rng(11), math.log(1.2), 1.2, reps, shape)
    below_claim = run_sequential(np.random.default_rng(12), math.log(1.2), 1.2 * 1.01, reps, shape)
    assert at_claim[REFUTED] <= 0.05 and below_claim[SUPPORTED] <= 0.05


def test_sequential_procedure_reaches_clear_verdicts():
    """A clear effect is decided: a 1.6x speedup claimed as 1.2x, or claimed as 2.5x."""
    assert run_sequential(np.random.default_rng(13), math.log(1.6), 1.2, 100)[SUPPORTED] >= 0.9
    assert run_sequential(np.random.default_rng(14), math.log(1.6), 2.5, 100)[REFUTED] >= 0.9


# ---------------------------------------------------------------------------------------------
# Log-rank: a technique against its random control


def test_logrank_sees_a_decisive_difference_in_the_right_direction():
    early, never = np.arange(1.0, 9.0) * 10, np.full(8, 100.0)
    p, direction = logrank_compare(early, np.ones(8, bool), never, np.zeros(8, bool))
    assert p < 0.05 and direction == 1
    p, direction = logrank_compare(never, np.zeros(8, bool), early, np.ones(8, bool))
    assert p < 0.05 and direction == -1


def test_logrank_identical_samples_show_nothing():
    times, reached = np.array([10.0, 20.0, 30.0, 40.0]), np.array([True, True, False, True])
    p, direction = logrank_compare(times, reached, times, reached)
    assert p == pytest.approx(1.0) and direction == 0
    assert logrank_compare(times, np.zeros(4, bool), times, np.zeros(4, bool)) == (1.0, 0)


def test_logrank_refuses_bad_samples():
    with pytest.raises(ValueError):
        logrank_compare([], [], [1.0], [True])
    with pytest.raises(ValueError):
        logrank_compare([1.0, -2.0], [True, True], [1.0], [True])
    with pytest.raises(ValueError):
        logrank_compare([1.0], [1], [1.0], [True])


trials = st.lists(st.tuples(st.integers(1, 20).map(float), st.booleans()), min_size=1, max_size=10)


@settings(deadline=None)
@given(trials, trials)
def test_logrank_swapping_arms_flips_the_direction_and_keeps_p(a, b):
    times_a, reached_a = np.array([t for t, _ in a]), np.array([r for _, r in a])
    times_b, reached_b = np.array([t for t, _ in b]), np.array([r for _, r in b])
    p, direction = logrank_compare(times_a, reached_a, times_b, reached_b)
    p_swapped, direction_swapped = logrank_compare(times_b, reached_b, times_a, reached_a)
    assert p_swapped == pytest.approx(p) and direction_swapped == -direction
    assert 0 <= p <= 1
