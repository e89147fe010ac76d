"""Dynamic LR scheduling: the seed's example, the plateau rule, torch's schedules behind one
`.step(loss=...)`, and the schedule stage through the engine."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from step7bench.engine import run_trial
from step7bench.techniques import get_technique
from step7bench.engine.stages import warmup_cosine_factor
from step7bench.techniques.dynamic_lr_scheduler import (PlateauState, create_dynamic_scheduler, is_improvement,
                                                        linear_warmup_factor, next_plateau_state,
                                                        restart_period_steps, smoothed)
from step7bench.workloads.base import Budget

RULE = {"patience": 2, "increase_factor": 1.1, "decrease_factor": 0.5, "min_lr_factor": 1e-3,
        "max_lr_factor": 10.0, "threshold": 1e-4}


def _optimizer(lr: float = 0.1, groups: int = 1) -> torch.optim.Optimizer:
    params = [{"params": [nn.Parameter(torch.zeros(2))], "lr": lr * (i + 1)} for i in range(groups)]
    return torch.optim.AdamW(params)


# -- the seed's example ---------------------------------------------------------------------


def test_seed_example_runs_in_a_users_loop():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    inputs, targets = torch.randn(64, 4), torch.randint(0, 3, (64,))
    num_epochs = 12

    # The seed's block, import path changed; its "# ... training ..." is one epoch of full-batch steps.
    from step7bench.techniques.dynamic_lr_scheduler import create_dynamic_scheduler

    # Create scheduler
    scheduler = create_dynamic_scheduler(
        optimizer,
        scheduler_type='dynamic',  # or 'cosine_restart', 'one_cycle'
        patience=5,
        increase_factor=1.1,
        decrease_factor=0.5
    )

    # Training loop
    for epoch in range(num_epochs):
        loss = criterion(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        avg_loss = loss.item()
        scheduler.step(loss=avg_loss)

    # Full-batch loss falls every epoch at this rate, so every epoch after the first raises it.
    assert scheduler.increases == num_epochs - 1
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 1.1 ** (num_epochs - 1))


# -- the plateau rule -----------------------------------------------------------------------


def test_first_loss_only_sets_the_reference():
    state = next_plateau_state(PlateauState(), 2.0, **RULE)
    assert state == PlateauState(best_loss=2.0, bad_steps=0, lr_factor=1.0)


def test_improvement_raises_and_plateau_cuts_after_patience():
    state = next_plateau_state(PlateauState(best_loss=2.0), 1.0, **RULE)
    assert state.lr_factor == pytest.approx(1.1) and state.best_loss == 1.0
    for _ in range(RULE["patience"]):  # tolerated
        state = next_plateau_state(state, 1.0, **RULE)
    assert state.lr_factor == pytest.approx(1.1) and state.bad_steps == RULE["patience"]
    state = next_plateau_state(state, 1.0, **RULE)  # one more: cut, count restarts
    assert state.lr_factor == pytest.approx(0.55) and state.bad_steps == 0


def test_non_finite_loss_never_improves():
    state = next_plateau_state(PlateauState(), math.nan, **RULE)
    assert state == PlateauState()
    state = next_plateau_state(PlateauState(best_loss=1.0), math.nan, **RULE)
    assert state.bad_steps == 1 and state.lr_factor == 1.0


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), max_size=200))
def test_rate_stays_between_floor_and_cap(losses):
    state = PlateauState()
    for loss in losses:
        state = next_plateau_state(state, loss, **RULE)
        assert RULE["min_lr_factor"] <= state.lr_factor <= RULE["max_lr_factor"]
        assert 0 <= state.bad_steps <= RULE["patience"]


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=1, max_size=100))
def test_best_loss_is_never_above_the_minimum_seen(losses):
    state = PlateauState()
    for loss in losses:
        state = next_plateau_state(state, loss, **RULE)
    assert state.best_loss >= min(losses) and state.best_loss <= losses[0]


@given(st.floats(0.0, 1e6), st.floats(0.0, 1e6), st.floats(0.0, 0.5))
def test_improvement_is_strict_and_relative(loss, best, threshold):
    assert is_improvement(loss, best, threshold) == (loss < best * (1 - threshold))


@given(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(0.0, 0.999))
def test_smoothed_lies_between_past_and_present(previous, value, weight):
    low, high = sorted((previous, value))
    assert low - 1e-9 <= smoothed(previous, value, weight) <= high + 1e-9
    assert smoothed(None, value, weight) == value


@given(st.integers(1, 1000), st.integers(0, 2000))
def test_warmup_factor_rises_linearly_to_one(warmup_steps, step):
    factor = linear_warmup_factor(step, warmup_steps)
    assert 0 < factor <= 1
    assert factor == 1 or factor == pytest.approx((step + 1) / warmup_steps)


@given(st.integers(1, 100_000), st.integers(1, 50))
def test_restart_cycles_cover_the_budget(steps, cycles):
    period = restart_period_steps(steps, cycles)
    assert period * cycles >= steps
    assert period == 1 or (period - 1) * cycles < steps


# -- the factory ----------------------------------------------------------------------------


def test_dynamic_moves_every_group_by_one_factor():
    optimizer = _optimizer(lr=0.1, groups=2)
    scheduler = create_dynamic_scheduler(optimizer, patience=0, max_lr_factor=2.0, min_lr_factor=0.25)
    for loss in (3.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0):
        scheduler.step(loss=torch.tensor(loss))
    # two raises (1.21), then a cut at every non-improving step down to the floor (0.25)
    assert (scheduler.increases, scheduler.decreases) == (2, 3)
    assert scheduler.get_last_lr() == pytest.approx([0.1 * 0.25, 0.2 * 0.25])


def test_dynamic_needs_the_loss():
    with pytest.raises(ValueError, match="loss"):
        create_dynamic_scheduler(_optimizer()).step()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.floats(0.0, 0.5), st.floats(1.0, 1.5), st.floats(1.0, 4.0), st.integers(0, 5))
def test_on_the_envelope_an_improving_loss_still_decays_the_rate_to_zero_at_the_horizon(
        total_steps, warmup_share, increase_factor, max_lr_factor, patience):
    warmup_steps = int(warmup_share * total_steps)
    optimizer = _optimizer(lr=0.1, groups=2)
    scheduler = create_dynamic_scheduler(optimizer, patience=patience, increase_factor=increase_factor,
                                         min_lr_factor=1.0 / max_lr_factor, max_lr_factor=max_lr_factor,
                                         total_steps=total_steps, warmup_steps=warmup_steps)
    assert scheduler.get_last_lr() == pytest.approx([0.1 * warmup_cosine_factor(0, warmup_steps, total_steps),
                                                     0.2 * warmup_cosine_factor(0, warmup_steps, total_steps)])
    for step in range(1, total_steps + 1):
        scheduler.step(loss=10.0 / step)  # improves on every step
        multiplier = scheduler.state.lr_factor
        assert 1.0 / max_lr_factor <= multiplier <= max_lr_factor
        envelope = warmup_cosine_factor(step, warmup_steps, total_steps)
        assert scheduler.get_last_lr() == pytest.approx([0.1 * envelope * multiplier, 0.2 * envelope * multiplier])
        if step <= warmup_steps:
            assert multiplier == 1.0  # the rule is idle during warm-up
    assert scheduler.get_last_lr() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert scheduler.lowest_lr_factor >= 1.0 / max_lr_factor and scheduler.highest_lr_factor <= max_lr_factor


def test_during_warm_up_the_rule_needs_no_loss():
    optimizer = _optimizer(lr=0.1)
    scheduler = create_dynamic_scheduler(optimizer, total_steps=10, warmup_steps=2)
    scheduler.step()  # the first warm-up step
    scheduler.step()  # the second
    with pytest.raises(ValueError, match="loss"):
        scheduler.step()
    assert scheduler.increases == scheduler.decreases == 0


def test_cosine_restart_is_torchs_with_documented_defaults():
    ours, theirs = _optimizer(), _optimizer()
    scheduler = create_dynamic_scheduler(ours, "cosine_restart")
    reference = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(theirs, T_0=10)
    for _ in range(25):
        scheduler.step(loss=1.0)
        reference.step()
        assert scheduler.get_last_lr() == pytest.approx(reference.get_last_lr())


def test_one_cycle_holds_its_last_rate_past_total_steps():
    optimizer = _optimizer(lr=0.1)
    scheduler = create_dynamic_scheduler(optimizer, "one_cycle", total_steps=10)
    rates = []
    for _ in range(15):
        optimizer.step()
        scheduler.step(loss=1.0)
        rates.append(scheduler.get_last_lr()[0])
    assert max(rates) == pytest.approx(0.1)  # peaks at the group's own rate by default
    assert rates[-6:] == [rates[-6]] * 6


@pytest.mark.parametrize(("arguments", "named"), [
    ({"scheduler_type": "step"}, "scheduler_type"),
    ({"increase_factor": 0.9}, "increase_factor"),
    ({"decrease_factor": 1.5}, "decrease_factor"),
    ({"decrease_factor": 0.0}, "decrease_factor"),
    ({"patience": -1}, "patience"),
    ({"max_lr_factor": 0.5}, "max_lr_factor"),
    ({"min_lr_factor": 0.0}, "min_lr_factor"),
    ({"threshold": -0.1}, "threshold"),
    ({"T_0": 5}, "T_0"),
    ({"total_steps": 0}, "total_steps"),
    ({"warmup_steps": -1, "total_steps": 10}, "warmup_steps"),
    ({"warmup_steps": 5}, "total_steps"),
    ({"scheduler_type": "one_cycle"}, "total_steps"),
])
def test_bad_arguments_name_themselves(arguments, named):
    with pytest.raises(ValueError, match=named):
        create_dynamic_scheduler(_optimizer(), **arguments)


# -- the engine plug-in ---------------------------------------------------------------------


def _short_warmup(workload, warmup_steps=2):
    workload.preset = dataclasses.replace(
        workload.preset, hparams=dataclasses.replace(workload.hparams, warmup_steps=warmup_steps))
    return workload


@pytest.mark.parametrize("scheduler_type", ["dynamic", "cosine_restart", "one_cycle"])
def test_plugin_trains_through_the_engine(digits_micro, scheduler_type):
    workload = _short_warmup(digits_micro)
    plugin = get_technique("dynamic_lr").plugin(workload, {"scheduler_type": scheduler_type, "patience": 1})
    result = run_trial(workload, 0, [plugin], device="cpu", budget=Budget(8, math.inf))
    assert result.status == "missed", result.error
    assert result.ledger.steps == 8
    stats = result.technique_stats["dynamic_lr"]
    assert 0 <= stats["lr_final_factor"] <= stats["lr_peak_factor"] and stats["lr_peak_factor"] > 0
    if scheduler_type == "dynamic":
        # the rule ran after warm-up, and its loss reads were booked as overhead; the rate rode
        # on the baseline's cosine, decayed to zero at the end of the budget
        assert stats["lr_increases"] + stats["lr_decreases"] > 0
        assert result.ledger.wall_overhead_s > 0
        assert stats["lr_final_factor"] == pytest.approx(0.0, abs=1e-12)
    else:
        assert stats["lr_final_factor"] > 0


def test_plugin_rides_on_the_baselines_schedule_within_its_bound(digits_micro):
    workload = _short_warmup(digits_micro, warmup_steps=5)
    plugin = get_technique("dynamic_lr").plugin(workload, {"patience": 0, "increase_factor": 1.5})
    result = run_trial(workload, 0, [plugin], device="cpu", budget=Budget(60, math.inf), target_val_loss=0.0)
    stats = result.technique_stats["dynamic_lr"]
    assert result.status == "missed", result.error
    assert stats["lr_multiplier_max"] <= 2.0 and stats["lr_multiplier_min"] >= 0.5
    assert stats["lr_peak_factor"] <= 2.0 and stats["lr_final_factor"] == pytest.approx(0.0, abs=1e-12)
    assert stats["activity"]["fired"] is True
    assert stats["activity"]["summary"] == (f"LR multiplier ranged {stats['lr_multiplier_min']:.2f}-"
                                            f"{stats['lr_multiplier_max']:.2f}x the tuned rate")


@pytest.mark.parametrize(("config", "fired"), [({"increase_factor": 1.0, "patience": 10_000}, False),
                                               ({"patience": 0, "increase_factor": 1.1}, True)])
def test_activity_fires_only_when_the_multiplier_leaves_one(digits_micro, config, fired):
    workload = _short_warmup(digits_micro)
    result = run_trial(workload, 0, [get_technique("dynamic_lr").plugin(workload, config)], device="cpu",
                       budget=Budget(12, math.inf))
    entry = result.technique_stats["dynamic_lr"]["activity"]
    assert entry["fired"] is fired and entry["value"] >= 1.0
    if not fired:
        assert entry["value"] == 1.0 and entry["summary"] == "LR multiplier ranged 1.00-1.00x the tuned rate"


def test_plugin_keeps_the_presets_warmup(digits_micro):
    plugin = get_technique("dynamic_lr").plugin(digits_micro)
    result = run_trial(digits_micro, 0, [plugin], device="cpu", budget=Budget(3, math.inf))
    stats = result.technique_stats["dynamic_lr"]
    assert stats["lr_final_factor"] == pytest.approx(linear_warmup_factor(3, digits_micro.hparams.warmup_steps))


@pytest.mark.parametrize(("config", "named"), [
    ({"scheduler_type": "plateau"}, "scheduler_type"),
    ({"increase_factor": 0.5}, "increase_factor"),
    ({"loss_smoothing": 1.0}, "loss_smoothing"),
    ({"cycles": 0}, "cycles"),
    ({"warmup": 3}, "warmup"),
])
def test_plugin_rejects_bad_config(digits_micro, config, named):
    with pytest.raises(ValueError, match=named):
        get_technique("dynamic_lr").plugin(digits_micro, config)
