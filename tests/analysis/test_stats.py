"""The statistics: per-seed speedups with infinite costs, aggregates, intervals, verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step7bench.analysis.metrics import get_metric
from step7bench.analysis.speedups import CostTable, estimate
from step7bench.analysis.stats import (INCONCLUSIVE, REFUTED, SUPPORTED, Interval, median, median_rows,
                                       olympic_mean, paired_bootstrap, percentile_interval, ratio_of_medians,
                                       seed_speedups, verdict)
from synthetic import PlantedArm, synthetic_trials
from step7bench.seeding import numpy_rng

INF = np.inf


def test_seed_speedups_handle_every_combination_of_missed_targets():
    baseline = [100.0, 100.0, INF, INF]
    arm = [50.0, INF, 80.0, INF]
    assert seed_speedups(baseline, arm).tolist() == [2.0, 0.0, INF, 1.0]


@pytest.mark.parametrize("baseline, arm", [([1.0, 2.0], [1.0]), ([0.0], [1.0]), ([1.0], [np.nan]), ([1.0], [-2.0])])
def test_seed_speedups_refuse_bad_costs(baseline, arm):
    with pytest.raises(ValueError):
        seed_speedups(baseline, arm)


def test_median_and_olympic_mean():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median([0.0, INF]) == INF
    assert olympic_mean([1.0, 2.0, 3.0, 100.0]) == 2.5
    assert olympic_mean([1.0, 3.0]) == 2.0
    assert median_rows(np.array([[1.0, INF, INF], [0.0, 0.0, 1.0]])).tolist() == [INF, 0.0]


def test_percentile_interval_takes_order_statistics_and_reports_undefined_resamples():
    values = np.arange(1, 2001, dtype=float)
    assert percentile_interval(values) == Interval(50.0, 1950.0, 0.0)
    with_undefined = np.concatenate([values, [np.nan] * 2000])
    assert percentile_interval(with_undefined).undefined_share == 0.5
    assert percentile_interval(np.full(4, INF)) == Interval(INF, INF, 0.0)


def test_verdict_rules():
    assert verdict(Interval(1.3, 1.6), 1.2) == SUPPORTED
    assert verdict(Interval(1.2, 1.6), 1.2) == SUPPORTED  # lower bound >= claim
    assert verdict(Interval(1.3, 1.6), 3.0) == REFUTED
    assert verdict(Interval(1.3, 1.6), 1.5) == INCONCLUSIVE


def test_ratio_of_medians_marks_only_uninformative_resamples_undefined():
    stack = np.array([[2.0], [0.0], [INF], [3.0]])
    alone = np.array([[2.0], [0.0], [INF], [INF]])
    ratio = ratio_of_medians(stack, alone)
    assert ratio[0] == 1.0 and np.isnan(ratio[1]) and np.isnan(ratio[2]) and ratio[3] == 0.0


# -- properties of the interval code ---------------------------------------------------------

costs = st.lists(st.one_of(st.floats(0.5, 1e4), st.just(INF)), min_size=1, max_size=8)


def _interval(baseline, arm, seed=0):
    speedups = seed_speedups(baseline, arm)
    return paired_bootstrap(median_rows, [speedups], numpy_rng(seed, "test"), resamples=300)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), baseline=costs)
def test_interval_is_never_nan(data, baseline):
    arm = data.draw(st.lists(st.one_of(st.floats(0.5, 1e4), st.just(INF)), min_size=len(baseline),
                             max_size=len(baseline)))
    interval = _interval(baseline, arm)
    assert not np.isnan(interval.low) and not np.isnan(interval.high)
    assert 0 <= interval.low <= interval.high


@settings(max_examples=40, deadline=None)
@given(data=st.data(), baseline=costs, shrink=st.floats(0.1, 1.0))
def test_interval_is_monotone_in_the_arm_costs(data, baseline, shrink):
    """A cheaper arm on every seed never gets a lower interval."""
    arm = data.draw(st.lists(st.floats(0.5, 1e4), min_size=len(baseline), max_size=len(baseline)))
    slower, faster = _interval(baseline, arm), _interval(baseline, [cost * shrink for cost in arm])
    assert faster.low >= slower.low and faster.high >= slower.high


@settings(max_examples=10, deadline=None)
@given(n_seeds=st.integers(1, 8), shuffle_seed=st.integers(0, 2**16))
def test_interval_does_not_depend_on_the_order_seeds_were_stored(n_seeds, shuffle_seed):
    """Estimates sort pairs by seed before resampling; any stored order gives the same interval."""
    trials = synthetic_trials([PlantedArm("fast", 1.5)], seeds=range(n_seeds))
    shuffled = trials.sample(frac=1.0, random_state=shuffle_seed)
    steps = get_metric("steps")
    assert (estimate(CostTable(trials), "synthetic", "fast", steps).interval
            == estimate(CostTable(shuffled), "synthetic", "fast", steps).interval)
