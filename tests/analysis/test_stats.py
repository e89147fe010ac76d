"""The statistics every estimate shares: per-seed numbers with missed targets, the median,
intervals and verdicts, and the properties an estimate's interval must have whatever the data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step7bench.analysis.censored import log_mean_interval, log_ratio_bounds
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.speedups import CostTable, estimate
from step7bench.analysis.stats import INCONCLUSIVE, REFUTED, SUPPORTED, Interval, median, seed_speedups, verdict
from synthetic import PlantedArm, synthetic_trials

INF = np.inf


def test_seed_speedups_handle_every_combination_of_missed_targets():
    baseline = [100.0, 100.0, INF, INF]
    arm = [50.0, INF, 80.0, INF]
    assert seed_speedups(baseline, arm).tolist() == [2.0, 0.0, INF, 1.0]


@pytest.mark.parametrize("baseline, arm", [([1.0, 2.0], [1.0]), ([0.0], [1.0]), ([1.0], [np.nan]), ([1.0], [-2.0])])
def test_seed_speedups_refuse_bad_costs(baseline, arm):
    with pytest.raises(ValueError):
        seed_speedups(baseline, arm)


def test_median():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median([0.0, INF]) == INF


def test_verdict_rules():
    assert verdict(Interval(1.3, 1.6), 1.2) == SUPPORTED
    assert verdict(Interval(1.2, 1.6), 1.2) == SUPPORTED  # lower bound >= claim
    assert verdict(Interval(1.3, 1.6), 3.0) == REFUTED
    assert verdict(Interval(1.3, 1.6), 1.5) == INCONCLUSIVE


costs = st.lists(st.floats(1.0, 1e4), min_size=2, max_size=8)


def _interval(baseline, arm) -> Interval:
    """The interval of the speedup of `arm` over `baseline`, a miss (inf) censored at twice the
    baseline's largest cost (what a missed trial of a headroom budget spends)."""
    base, arm = np.asarray(baseline, float), np.asarray(arm, float)
    spent = np.full(base.shape, 2.0 * base.max())
    found = log_mean_interval(*log_ratio_bounds(base, arm, np.where(np.isinf(base), spent, base),
                                                 np.where(np.isinf(arm), spent, arm)))
    return Interval(found.speedup_low, found.speedup_high)


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
    assert faster.low >= slower.low * (1 - 1e-9) and faster.high >= slower.high * (1 - 1e-9)


@settings(max_examples=10, deadline=None)
@given(n_seeds=st.integers(1, 8), shuffle_seed=st.integers(0, 2**16))
def test_interval_does_not_depend_on_the_order_seeds_were_stored(n_seeds, shuffle_seed):
    trials = synthetic_trials([PlantedArm("fast", 1.5)], seeds=range(n_seeds))
    shuffled = trials.sample(frac=1.0, random_state=shuffle_seed)
    steps = get_metric("steps")
    assert (estimate(CostTable(trials), "synthetic", "fast", steps).interval
            == estimate(CostTable(shuffled), "synthetic", "fast", steps).interval)
