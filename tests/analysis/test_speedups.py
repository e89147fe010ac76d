"""Speedups recovered from synthetic trial tables with planted effects."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from step7bench.analysis.metrics import costs_to_target, get_metric
from step7bench.analysis.speedups import CostTable, all_estimates, estimate
from synthetic import PlantedArm, synthetic_trials
from step7bench.harness.suite import AA_SEED_OFFSET

SEEDS = range(20)


W = "synthetic"  # the workload of every synthetic table here


@pytest.fixture(scope="module")
def trials():
    return synthetic_trials([PlantedArm("fast", 1.5), PlantedArm("transfer", 4.0, pretrain_steps=800),
                             PlantedArm("flaky", 2.0, missed=tuple(range(12)))], seeds=SEEDS)


COVERAGE_REPLICATES = 20


@functools.cache
def _replicate(random_seed: int) -> CostTable:
    return CostTable(synthetic_trials([PlantedArm("fast", 1.5)], seeds=range(12), random_seed=random_seed))


def _coverage(arm: str, metric: str, truth: float) -> float:
    """Share of independent synthetic data sets whose interval holds the planted `truth`."""
    holds = [estimate(_replicate(replicate), W, arm, get_metric(metric)).interval.holds(truth)
             for replicate in range(COVERAGE_REPLICATES)]
    return sum(holds) / len(holds)


@pytest.fixture(scope="module")
def table(trials):
    return CostTable(trials)


@pytest.mark.parametrize("metric", ["steps", "wall_s"])
def test_a_planted_one_and_a_half_times_effect_is_recovered(table, metric):
    found = estimate(table, W, "fast", get_metric(metric))
    assert found.point == pytest.approx(1.5, rel=0.1) and found.median == pytest.approx(1.5, rel=0.1)
    assert found.n_seeds == len(SEEDS) and found.interval.low < found.point < found.interval.high
    # A 95% interval must hold the truth on most data sets, not on one lucky draw (the simulation
    # tests of analysis.censored measure coverage properly; 20 data sets can only catch a gross miss).
    assert _coverage("fast", metric, 1.5) >= 0.85


def test_the_aa_arm_holds_one_and_pairs_each_seed_with_the_baseline_seed_it_repeats(table):
    assert _coverage("aa", "steps", 1.0) >= 0.85
    pairs = table.pair(W, "aa", get_metric("steps"))
    assert pairs.seeds.tolist() == [seed + AA_SEED_OFFSET for seed in SEEDS]
    assert pairs.baseline_seeds.tolist() == list(SEEDS)


@pytest.mark.parametrize("arm", ["aa", "baseline"])
def test_a_failed_aa_or_baseline_trial_drops_its_pair_and_keeps_the_others_aligned(trials, arm):
    broken = trials.copy()
    failed_seed = 3 + (AA_SEED_OFFSET if arm == "aa" else 0)
    broken.loc[(broken["arm"] == arm) & (broken["seed"] == failed_seed), "status"] = "failed"
    pairs = CostTable(broken).pair(W, "aa", get_metric("steps"))
    kept = [seed for seed in SEEDS if seed != 3]
    assert pairs.baseline_seeds.tolist() == kept and pairs.seeds.tolist() == [s + AA_SEED_OFFSET for s in kept]
    assert pairs.n_failed == 1


def test_missed_targets_are_censored_bounds_never_zero(trials, table):
    steps = get_metric("steps")
    flaky = trials[trials["arm"] == "flaky"]
    assert np.isinf(costs_to_target(flaky, steps)).sum() == 12
    found = estimate(table, W, "flaky", steps)
    assert found.per_seed.count(0.0) == 12 and found.n_arm_missed == 12  # the gate's per-seed codes
    assert found.censored and found.estimate.n_upper_censored == 12 and found.estimate.n_exact == 8
    # A miss bounds its seed's speedup by what the trial spent: the interval is below the planted 2x
    # (12 of 20 seeds never got there) but it is a finite, positive bound, not a zero.
    missed_bounds = [high for high, per_seed in zip(found.per_seed_high, found.per_seed) if per_seed == 0.0]
    assert all(0 < bound < np.inf for bound in missed_bounds)
    assert 0 < found.interval.high < 2.0


def test_pretraining_is_counted_finetune_only_all_in_and_amortized(table):
    flops = get_metric("flops")
    finetune = estimate(table, W, "transfer", flops, "finetune")
    all_in = estimate(table, W, "transfer", flops, "all_in")
    amortized = estimate(table, W, "transfer", flops, "amortized")  # over 10 downstream tasks
    assert finetune.point == pytest.approx(4.0, rel=0.1)
    assert all_in.point < amortized.point < finetune.point
    # 400 baseline steps vs 100 finetune + 800 pretraining steps: the all-in "speedup" is a slowdown.
    assert all_in.point < 1


def test_a_failed_trial_leaves_its_seed_out_and_is_counted(trials):
    broken = trials.copy()
    broken.loc[(broken["arm"] == "fast") & (broken["seed"] == 3), "status"] = "failed"
    found = estimate(CostTable(broken), W, "fast", get_metric("steps"))
    assert 3 not in found.seeds and found.n_failed == 1 and found.n_seeds == len(SEEDS) - 1


def test_every_arm_metric_and_accounting_is_estimated_once(table):
    keys = [(e.arm, e.metric, e.accounting) for e in all_estimates(table)]
    assert {arm for arm, _, _ in keys} == {"aa", "fast", "transfer", "flaky"}
    assert len(keys) == len(set(keys))
    # Metrics without a pretraining counterpart have no all-in figure.
    assert {metric for _, metric, accounting in keys if accounting == "all_in"} == {
        "steps", "examples_forward", "flops", "wall_s", "device_hours", "energy_j"}


def test_a_metric_the_workload_does_not_spend_is_left_out(trials):
    classifier = trials.assign(tokens_forward=0, tokens_backward=0)
    names = {metric.name for metric in CostTable(classifier).metrics(W)}
    assert "tokens_forward" not in names and "steps" in names


def test_estimates_are_reproducible_and_narrow_with_less_confidence(trials, table):
    steps = get_metric("steps")
    assert estimate(table, W, "fast", steps) == estimate(CostTable(trials), W, "fast", steps)
    narrower = estimate(table, W, "fast", steps, confidence=0.8)
    wide = estimate(table, W, "fast", steps)
    assert wide.interval.low < narrower.interval.low <= narrower.point == wide.point <= narrower.interval.high \
        < wide.interval.high


def test_an_adaptive_look_takes_only_its_first_seeds(table):
    found = estimate(table, W, "fast", get_metric("steps"), max_pair_seeds=5)
    assert found.seeds == (0, 1, 2, 3, 4)
