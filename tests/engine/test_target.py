"""Where checks go and when the target counts as reached (engine/target.py), alone and in a trial."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, strategies as st

from step7bench.engine import run_trial
from step7bench.engine.target import CheckRule, TargetWatch

TARGET = 1.0


def _feed(watch: TargetWatch, losses: dict[int, float], last_step: int):
    """Run the watch over a loss curve known at every step; return (crossing, checked steps)."""
    checked = []
    for step in range(1, last_step + 1):
        if watch.due(step):
            checked.append(step)
            crossing = watch.record(step, losses[step])
            if crossing is not None:
                return crossing, checked
    return None, checked


def test_a_lucky_dip_does_not_count_a_sustained_crossing_does():
    rule = CheckRule(every=10, fine_every=1, fine_band=math.inf, confirm_steps=4)
    dip = {step: 0.9 if step == 5 else 1.2 for step in range(1, 41)}
    assert _feed(TargetWatch(rule, TARGET), dip, 40)[0] is None
    sustained = {step: 0.9 if step >= 7 else 1.2 for step in range(1, 41)}
    crossing, checked = _feed(TargetWatch(rule, TARGET), sustained, 40)
    assert (crossing.step, crossing.resolution_steps) == (7, 1)
    assert checked[-1] == 11  # confirmed after the loss stayed down for 4 steps


def test_without_confirmation_the_first_check_at_the_target_counts():
    crossing, _ = _feed(TargetWatch(CheckRule(5, 5), TARGET), {s: 2.0 - s / 10 for s in range(1, 30)}, 29)
    assert crossing.step == 10 and crossing.resolution_steps == 5


def test_checks_grow_dense_as_the_loss_nears_the_target():
    rule = CheckRule(every=25, fine_every=2, fine_band=0.02)
    losses = {step: 2.0 * math.exp(-step / 100) + 0.5 for step in range(1, 400)}  # crosses 1.0 near step 139
    crossing, checked = _feed(TargetWatch(rule, TARGET), losses, 399)
    true_step = next(step for step in range(1, 400) if losses[step] <= TARGET)
    assert 0 <= crossing.step - true_step < 2 and crossing.resolution_steps <= 2
    assert checked[:2] == [25, 50]  # far from the target: the coarse schedule
    assert len(checked) < 40  # never every step


@given(every=st.integers(2, 50), fine=st.integers(1, 50), band=st.floats(0, 1),
       losses=st.lists(st.floats(0.2, 5.0), min_size=2, max_size=30))
def test_the_spacing_stays_between_fine_and_coarse(every, fine, band, losses):
    fine = min(fine, every)
    watch = TargetWatch(CheckRule(every, fine, band), TARGET)
    for loss in losses:
        step = watch.next_step
        if watch.record(step, loss) is not None:
            return
        assert fine <= watch.next_step - step <= every


def test_without_a_finite_target_checks_keep_the_coarse_schedule():
    """Transfer learning pretrains to a target of -inf: nothing to near, so no dense checks."""
    losses = {step: 2.0 * math.exp(-step / 50) for step in range(1, 201)}
    crossing, checked = _feed(TargetWatch(CheckRule(every=25, fine_every=1, fine_band=math.inf), -math.inf),
                              losses, 200)
    assert crossing is None and checked == list(range(25, 201, 25))


def test_the_feedback_schedule_is_the_coarse_one_whatever_the_measuring():
    watch = TargetWatch(CheckRule(every=25, fine_every=1, fine_band=math.inf), TARGET)
    assert watch.due(1) and not watch.feedback_due(1) and watch.feedback_due(50)


@pytest.mark.parametrize("bad", [dict(every=10, fine_every=0), dict(every=10, fine_every=11),
                                 dict(every=-1, fine_every=1), dict(every=10, fine_every=2, confirm_steps=-1)])
def test_impossible_rules_are_refused(bad):
    with pytest.raises(ValueError):
        CheckRule(**bad)


def test_a_trial_is_charged_to_the_crossing_not_to_its_confirmation(digits_micro):
    hparams = dataclasses.replace(digits_micro.hparams, eval_every=10, eval_every_fine=1,
                                  eval_fine_band=math.inf, confirm_steps=5)
    result = run_trial(digits_micro, seed=0, device="cpu", hparams=hparams)
    assert result.status == "reached", result.error
    assert result.ledger.steps == result.steps_to_target and result.target_resolution_steps == 1
    assert result.curve[-1].step == result.steps_to_target + 5  # trained on to confirm, uncharged
    at_crossing = next(point for point in result.curve if point.step == result.steps_to_target)
    assert result.ledger.flops_total == at_crossing.ledger["flops_total"]
    assert all(point.val_loss <= result.target_val_loss for point in result.curve
               if point.step >= result.steps_to_target)


def test_denser_checks_do_not_change_what_the_techniques_are_told(digits_micro):
    """Feedback (on_eval) comes from the coarse schedule only, so the trajectory is the same."""
    coarse = dataclasses.replace(digits_micro.hparams, eval_every=10)
    dense = dataclasses.replace(coarse, eval_every_fine=1, eval_fine_band=math.inf)
    runs = [run_trial(digits_micro, seed=1, device="cpu", target_val_loss=0.0, hparams=h,
                      budget=dataclasses.replace(digits_micro.budget, max_steps=40)) for h in (coarse, dense)]
    assert {p.step: p.val_loss for p in runs[0].curve}.items() <= {p.step: p.val_loss for p in runs[1].curve}.items()
    assert len(runs[1].curve) == 40
