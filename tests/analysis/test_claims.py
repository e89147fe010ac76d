"""Verdicts on claims (tuned and as specified, trusted or not, active or not), the cumulative table
with its interaction, the controls, the A/A check and the positive controls."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from step7bench.analysis.checks import (BEATS, LOSES, TIES, PositiveControl, aa_checks, control_comparisons,
                                        positive_controls)
from step7bench.analysis.results import trust
from step7bench.analysis.claims import Activity, Judge, arm_for, trial_activity
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.speedups import CostTable
from step7bench.analysis.stats import INCONCLUSIVE, NOT_MEASURED, REFUTED, SUPPORTED
from step7bench.harness.claims import Claim
from synthetic import PlantedArm, synthetic_trials

CONFIDENCE = 0.95


def technique_claim(name: str, techniques: list[str], claimed: float, metric: str,
                    kind: str = "technique") -> Claim:
    """A claim as the claims file gives it, a technique claim unless told."""
    return Claim(name, techniques, claimed, metric, kind)


@pytest.fixture(scope="module")
def trials():
    arms = [
        PlantedArm("a", 1.5), PlantedArm("b", 2.0), PlantedArm("a_random", 1.5, "control"),
        PlantedArm("b_random", 1.0, "control"),
        PlantedArm("a@as_specified", 0.8, "as_specified", techniques=("a",)),
        # The stack gives less than the product 1.5 x 2 = 3: an interaction of 2/3.
        PlantedArm("a+b", 2.0, "cumulative"),
        PlantedArm("t", 4.0, pretrain_steps=2000),
    ]
    frame = synthetic_trials(arms, seeds=range(12), arm_noise=0.02, measurement_noise=0.02)
    frame["variant"] = np.where(frame["arm_kind"] == "as_specified", "as_specified", "tuned")
    return frame


@pytest.fixture(scope="module")
def table(trials):
    return CostTable(trials)


def test_a_clear_effect_supports_a_smaller_claim_and_refutes_a_larger_one(table):
    claims = [technique_claim("a supported", ["a"], 1.2, "steps"), technique_claim("a refuted", ["a"], 3.0, "steps"),
              technique_claim("a borderline", ["a"], 1.5, "flops"), technique_claim("absent", ["zzz"], 2.0, "steps")]
    verdicts = {result.name: result.verdict for result in Judge(table).claims(claims)}
    assert verdicts == {"a supported": SUPPORTED, "a refuted": REFUTED, "a borderline": INCONCLUSIVE,
                        "absent": NOT_MEASURED}


def test_a_claim_is_judged_tuned_and_as_specified_and_shows_steps_flops_and_device_time(table):
    (result,) = Judge(table).claims([technique_claim("a 1.2x", ["a"], 1.2, "device_s")])
    assert result.measured.arm == "a" and result.verdict == SUPPORTED
    assert result.as_specified.arm == "a@as_specified" and result.as_specified_verdict == REFUTED
    assert set(result.by_metric) == {"steps", "flops", "device_hours"}
    assert result.by_metric["steps"].point == pytest.approx(1.5, rel=0.05)
    assert result.seeds_used == 12 and result.trusted


def test_a_claim_on_a_pretraining_arm_is_judged_all_in_with_finetune_only_beside_it(table):
    (result,) = Judge(table).claims([technique_claim("transfer 3x", ["t"], 3.0, "device_s")])
    assert result.metric == "device_hours" and result.accounting == "all_in"
    assert result.verdict == REFUTED  # 2000 pretraining steps outweigh the 4x
    assert result.finetune_verdict == SUPPORTED and result.finetune_only.point == pytest.approx(4.0, rel=0.05)


def test_an_untrusted_metric_marks_the_verdict_and_gives_the_flops_verdict_beside_it(table):
    judge = Judge(table, trusted={("synthetic", "device_hours"): "the A/A check does not hold 1 on device_hours"})
    (result,) = judge.claims([technique_claim("a 1.2x", ["a"], 1.2, "device_s")])
    assert not result.trusted and "A/A" in result.untrusted_reason
    assert result.fallback_verdict == SUPPORTED  # on FLOPs


def test_a_mechanism_that_never_fired_is_labelled_inactive(table, trials):
    stats = json.dumps({"a": {"activity": {"fired": False, "summary": "0% of steps reused a gradient", "value": 0.0}}})
    quiet = trials.assign(technique_stats=np.where(trials["arm"] == "a", stats, "{}"))
    activity = trial_activity(quiet)
    assert activity[("synthetic", "a")] == (Activity("a", False, "0% of steps reused a gradient"),)
    (result,) = Judge(table, activity=activity).claims([technique_claim("a", ["a"], 1.2, "steps")])
    assert [entry.summary for entry in result.inactive] == ["0% of steps reused a gradient"]
    assert result.as_specified_inactive == []  # the stated settings' arm reported no activity here


def test_a_mechanism_that_never_fired_at_the_stated_settings_marks_that_verdict_alone(table, trials):
    stats = json.dumps({"a": {"activity": {"fired": False, "summary": "0% of steps reused a gradient", "value": 0.0}}})
    fired = json.dumps({"a": {"activity": {"fired": True, "summary": "9% of steps reused a gradient", "value": 0.09}}})
    quiet = trials.assign(technique_stats=np.select([trials["arm"] == "a@as_specified", trials["arm"] == "a"],
                                                    [stats, fired], "{}"))
    (result,) = Judge(table, activity=trial_activity(quiet)).claims([technique_claim("a", ["a"], 1.2, "steps")])
    assert result.inactive == [] and [a.summary for a in result.as_specified_inactive] == ["0% of steps reused a gradient"]


def test_arms_are_found_by_their_set_of_techniques_and_variant_never_a_control(table):
    assert arm_for(table, "synthetic", ["b", "a"]) == "a+b"
    assert arm_for(table, "synthetic", ["a"], "as_specified") == "a@as_specified"
    assert arm_for(table, "synthetic", ["a_random"]) is None


def test_cumulative_rows_measure_each_stack_and_its_interaction(table):
    claims = [technique_claim("a", ["a"], 1.4, "steps", "cumulative"),
              technique_claim("a then b", ["a", "b"], 2.8, "steps", "cumulative"),
              technique_claim("not cumulative", ["b"], 2.0, "steps")]
    first, second = Judge(table).cumulative(claims)
    assert first.interaction == pytest.approx(1.0) and first.interaction_interval.holds(1.0)
    assert second.measured.point == pytest.approx(2.0, rel=0.05)
    assert second.product_alone == pytest.approx(3.0, rel=0.05)
    assert second.interaction == pytest.approx(2 / 3, rel=0.05)
    assert second.interaction_interval.high < 1  # the speedups do not multiply, and the interval says so


def test_controls_tell_an_idea_from_a_change_of_dataset_size(table):
    outcomes = {(c.technique, c.metric): c.outcome for c in control_comparisons(table, CONFIDENCE)}
    assert outcomes[("b", "steps")] == BEATS
    assert outcomes[("a", "steps")] == TIES  # its control saves as much: no credit for the idea
    assert ("t", "steps") not in outcomes  # no control arm ran


def test_reached_four_of_five_against_none_is_decisive_for_the_control():
    trials = synthetic_trials([PlantedArm("c", 1.2), PlantedArm("c_random", 1.0, "control", missed=tuple(range(5)))],
                              seeds=range(5))
    (steps,) = [c for c in control_comparisons(CostTable(trials), CONFIDENCE) if c.metric == "steps"]
    assert steps.outcome == BEATS and steps.p_value < 0.05
    swapped = synthetic_trials([PlantedArm("c", 1.0, missed=tuple(range(5))), PlantedArm("c_random", 1.2, "control")],
                               seeds=range(5))
    assert [c.outcome for c in control_comparisons(CostTable(swapped), CONFIDENCE) if c.metric == "steps"] == [LOSES]


def test_the_control_test_is_at_the_level_of_the_intervals_beside_it():
    trials = synthetic_trials([PlantedArm("c", 1.2), PlantedArm("c_random", 1.0, "control", missed=tuple(range(5)))],
                              seeds=range(5))
    (steps,) = [c for c in control_comparisons(CostTable(trials), 0.9) if c.metric == "steps"]
    assert steps.alpha == pytest.approx(0.1)
    (strict,) = [c for c in control_comparisons(CostTable(trials), 1 - steps.p_value / 2) if c.metric == "steps"]
    assert steps.outcome == BEATS and strict.outcome == TIES  # p between the two levels


def test_the_aa_check_covers_every_metric_the_workload_spends(table):
    checks = aa_checks(table, CONFIDENCE)
    assert {check.metric for check in checks} >= {"steps", "flops", "wall_s", "energy_j"}
    assert all(check.holds_one for check in checks if check.metric == "steps")


def test_the_product_alone_and_the_interaction_are_taken_on_the_same_seeds():
    arms = [PlantedArm("a", 1.5), PlantedArm("b", 2.0), PlantedArm("a+b", 2.0, "cumulative")]
    trials = synthetic_trials(arms, seeds=range(12), arm_noise=0.2, measurement_noise=0.02)
    # Alone arm `a` failed on seeds 0-3: the alone arms' means must leave those seeds out too.
    trials.loc[(trials["arm"] == "a") & (trials["seed"] < 4), "status"] = "failed"
    table = CostTable(trials)
    (row,) = Judge(table).cumulative([technique_claim("a then b", ["a", "b"], 2.8, "steps", "cumulative")])
    shared = list(range(4, 12))

    def geometric_mean_on(arm, seeds):
        pairs = table.pair("synthetic", arm, get_metric("steps"))
        return math.exp(np.mean([np.log(s) for seed, s in zip(pairs.seeds, pairs.speedups()) if seed in seeds]))

    assert row.product_alone == pytest.approx(geometric_mean_on("a", shared) * geometric_mean_on("b", shared))
    assert row.interaction == pytest.approx(geometric_mean_on("a+b", shared) / row.product_alone)
    assert row.product_alone != pytest.approx(  # on each arm's own seeds it would differ
        geometric_mean_on("a", range(12)) * geometric_mean_on("b", range(12)))


def _positive_control_trials(handover: int = 100, lr_scale_speedup: float = 0.5):
    trials = synthetic_trials([PlantedArm("warm_start", 1.0, "positive_control"),
                               PlantedArm("lr_scale", lr_scale_speedup, "positive_control"),
                               PlantedArm("baseline@weak_target", 1.0, "positive_control", techniques=())],
                              seeds=range(5), arm_noise=0.05)
    baseline = trials[trials["arm"] == "baseline"].set_index("seed")
    warm = trials["arm"] == "warm_start"
    # The warm start repeats the baseline's run; its first `handover` steps become pretraining.
    for column in ("steps", "steps_to_target"):
        trials.loc[warm, column] = trials.loc[warm, "seed"].map(baseline[column]).to_numpy()
    trials.loc[warm, "steps_pretrain"] = handover
    trials.loc[warm, "steps"] = trials.loc[warm, "steps"] - handover
    trials.loc[warm, "technique_stats"] = json.dumps({"warm_start": {"handover_step": handover}})
    return trials


def test_the_warm_start_control_holds_when_it_shows_t_over_t_minus_k():
    trials = _positive_control_trials()
    warm, weak = positive_controls(CostTable(trials), trials, {"synthetic": 2.0}, CONFIDENCE)
    assert warm.holds and "exact on every seed" in warm.detail
    steps = trials[trials["arm"] == "baseline"]["steps_to_target"].to_numpy(dtype=float)
    assert warm.expected == pytest.approx(math.exp(np.mean(np.log(steps / (steps - 100)))))
    assert weak.holds and weak.expected == 2.0  # the baseline is about 2x faster than its LR/4 self


def test_a_positive_control_that_does_not_see_its_effect_fails():
    trials = _positive_control_trials(lr_scale_speedup=1.0)  # the "weakened" reference is not weaker
    _, weak = positive_controls(CostTable(trials), trials, {"synthetic": 2.0}, CONFIDENCE)
    assert not weak.holds
    broken = _positive_control_trials()
    broken.loc[broken["arm"] == "warm_start", "steps"] += 7  # the accounting lost track of 7 steps
    warm, _ = positive_controls(CostTable(broken), broken, {}, CONFIDENCE)
    assert not warm.holds


def test_a_failed_positive_control_marks_every_metric_of_its_workload_even_without_an_a_a_check(table):
    failed = [PositiveControl(name, "synthetic", "steps", 2.0, None, False, "")
              for name in ("warm start", "weakened reference")]
    held = PositiveControl("warm start", "other", "steps", 1.5, None, True, "")
    reasons = trust([], [*failed, held], table.metrics)
    assert {metric for workload, metric in reasons} == {m.name for m in table.metrics("synthetic")}
    assert all(workload == "synthetic" for workload, _ in reasons)
    assert reasons[("synthetic", "device_hours")] == "the warm start and weakened reference positive control(s) failed"
