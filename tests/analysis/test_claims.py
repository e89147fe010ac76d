"""Verdicts on claims, the cumulative table with its interaction, controls and the A/A check."""

from __future__ import annotations

import math

import pytest

from step7bench.analysis.checks import BEATS, TIES, aa_checks, control_comparisons
from step7bench.analysis.claims import arm_for, cumulative_table, judge_claims
from step7bench.analysis.speedups import BootstrapSettings, CostTable
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.stats import INCONCLUSIVE, NOT_MEASURED, REFUTED, SUPPORTED, median
from synthetic import PlantedArm, synthetic_trials
from step7bench.harness.claims import Claim

FAST = BootstrapSettings(resamples=500)


def technique_claim(name: str, techniques: list[str], claimed: float, metric: str,
                    kind: str = "technique") -> Claim:
    """A claim as the claims file gives it, a technique claim unless told."""
    return Claim(name, techniques, claimed, metric, kind)


@pytest.fixture(scope="module")
def table():
    arms = [
        PlantedArm("a", 1.5), PlantedArm("b", 2.0), PlantedArm("a_random", 1.5, "control"),
        PlantedArm("b_random", 1.0, "control"),
        # The stack gives less than the product 1.5 x 2 = 3: an interaction of 2/3.
        PlantedArm("a+b", 2.0, "cumulative"),
        PlantedArm("t", 4.0, pretrain_steps=2000),
    ]
    return CostTable(synthetic_trials(arms, seeds=range(12), arm_noise=0.02, measurement_noise=0.02))


def test_a_clear_effect_supports_a_smaller_claim_and_refutes_a_larger_one(table):
    claims = [technique_claim("a supported", ["a"], 1.2, "steps"), technique_claim("a refuted", ["a"], 3.0, "steps"),
              technique_claim("a borderline", ["a"], 1.5, "flops"), technique_claim("absent", ["zzz"], 2.0, "steps")]
    verdicts = {result.name: result.verdict for result in judge_claims(table, claims, FAST)}
    assert verdicts == {"a supported": SUPPORTED, "a refuted": REFUTED, "a borderline": INCONCLUSIVE,
                        "absent": NOT_MEASURED}


def test_a_claim_on_a_pretraining_arm_is_judged_all_in_with_finetune_only_beside_it(table):
    (result,) = judge_claims(table, [technique_claim("transfer 3x", ["t"], 3.0, "device_s")], FAST)
    assert result.metric == "device_hours" and result.accounting == "all_in"
    assert result.verdict == REFUTED  # 2000 pretraining steps outweigh the 4x
    assert result.finetune_verdict == SUPPORTED and result.finetune_only.median == pytest.approx(4.0, rel=0.05)


def test_arms_are_found_by_their_set_of_techniques_never_a_control(table):
    assert arm_for(table, "synthetic", ["b", "a"]) == "a+b"
    assert arm_for(table, "synthetic", ["a_random"]) is None


def test_cumulative_rows_measure_each_stack_and_its_interaction(table):
    claims = [technique_claim("a", ["a"], 1.4, "steps", "cumulative"), technique_claim("a then b", ["a", "b"], 2.8, "steps", "cumulative"),
              technique_claim("not cumulative", ["b"], 2.0, "steps")]
    first, second = cumulative_table(table, claims, FAST)
    assert first.interaction == pytest.approx(1.0) and first.interaction_interval.holds(1.0)
    assert second.measured.median == pytest.approx(2.0, rel=0.05)
    assert second.product_alone == pytest.approx(3.0, rel=0.05)
    assert second.interaction == pytest.approx(2 / 3, rel=0.05)
    assert second.interaction_interval.high < 1  # the speedups do not multiply, and the interval says so


def test_controls_tell_an_idea_from_a_change_of_dataset_size(table):
    outcomes = {(c.technique, c.metric): c.outcome
                for c in control_comparisons(table, FAST)}
    assert outcomes[("b", "steps")] == BEATS
    assert outcomes[("a", "steps")] == TIES  # its control saves as much: no credit for the idea
    assert ("t", "steps") not in outcomes  # no control arm ran


def test_the_aa_check_covers_every_metric_the_workload_spends(table):
    checks = aa_checks(table, FAST)
    assert {check.metric for check in checks} >= {"steps", "flops", "wall_s", "energy_j"}
    assert all(check.holds_one for check in checks if check.metric == "steps")


def test_the_product_alone_and_the_interaction_are_taken_on_the_same_seeds():
    arms = [PlantedArm("a", 1.5), PlantedArm("b", 2.0), PlantedArm("a+b", 2.0, "cumulative")]
    trials = synthetic_trials(arms, seeds=range(12), arm_noise=0.2, measurement_noise=0.02)
    # Alone arm `a` failed on seeds 0-3: the alone-arm medians must leave those seeds out too.
    trials.loc[(trials["arm"] == "a") & (trials["seed"] < 4), "status"] = "failed"
    table = CostTable(trials)
    (row,) = cumulative_table(table, [technique_claim("a then b", ["a", "b"], 2.8, "steps", "cumulative")], FAST)
    shared = list(range(4, 12))

    def median_on_shared(arm):
        pairs = table.pair("synthetic", arm, get_metric("steps"))
        return median([s for seed, s in zip(pairs.seeds, pairs.speedups()) if seed in shared])

    assert row.product_alone == pytest.approx(median_on_shared("a") * median_on_shared("b"))
    assert row.interaction == pytest.approx(median_on_shared("a+b") / row.product_alone)
    assert row.product_alone != pytest.approx(math.prod(  # on each arm's own seeds it would differ
        median(table.pair("synthetic", arm, get_metric("steps")).speedups()) for arm in ("a", "b")))
