"""Calibration: the arithmetic of targets, the sustained best and the crossing replay, the targets
file round trip, and a micro calibration with a tuned technique and the weakened reference."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, strategies as st

import harness_fakes
from harness_fakes import mini_suite_text
from step7bench.engine.target import CheckRule
from step7bench.harness.calibrate import (Calibrated, TargetRecord, TuningRecord, calibrate, crossing_step,
                                          reach_warning, sustained_best, target_from, write_targets)
from step7bench.harness.registry import Registry
from step7bench.harness.suite import load_calibration, load_suite
from step7bench.techniques import technique_specs
from step7bench.workloads import builtin_workloads


def test_the_target_is_the_median_raised_by_the_margin():
    assert target_from([0.5, 0.3, 0.4], 0.05) == (pytest.approx(0.42), 0.4)


@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=9), st.floats(0.0, 0.5))
def test_the_target_is_at_least_half_the_seeds_best(losses, margin):
    target, _ = target_from(losses, margin)
    assert sum(loss <= target for loss in losses) >= len(losses) / 2


def test_an_empty_list_is_refused():
    with pytest.raises(ValueError, match="best_val_losses"):
        target_from([], 0.1)


def test_the_sustained_best_ignores_a_dip_shorter_than_the_confirmation():
    curve = [(1, 3.0), (2, 1.0), (3, 3.0), (4, 2.0), (5, 2.0), (6, 2.0), (7, 2.5)]
    assert sustained_best(curve, 0) == 1.0
    assert sustained_best(curve, 2) == 2.0  # steps 4-6 hold 2.0; the dip to 1.0 lasts one step
    assert sustained_best(curve, 10) == math.inf  # no window fits in the curve


@given(st.lists(st.floats(0.1, 5.0), min_size=3, max_size=40), st.integers(0, 5))
def test_a_target_at_the_sustained_best_is_reached_by_the_replay(losses, confirm):
    curve = list(enumerate(losses, start=1))
    best = sustained_best(curve, confirm)
    rule = CheckRule(every=10, fine_every=1, fine_band=math.inf, confirm_steps=confirm)
    if math.isfinite(best):
        assert crossing_step(curve, rule, best) is not None
        assert crossing_step(curve, rule, best * 0.999) is None


def test_a_reach_rate_under_ninety_percent_is_a_warning():
    assert reach_warning("digits/small", 1.0, 5) is None
    assert "reaches its target on 80% of 5 calibration seeds" in reach_warning("digits/small", 0.8, 5)


def test_a_targets_file_round_trips_and_records_how(tmp_path):
    record = TargetRecord(workload="digits", preset="micro", target_val_loss=0.42, median_best_val_loss=0.4,
                          margin=0.05, calibration_seeds=[20000, 20001], best_val_losses=[0.4, float("inf")],
                          statuses=["ran the full budget", "diverged"], max_steps=300, max_seconds=30.0,
                          hardware_class="cpu-x-2c", git_commit="abc", calibrated_at="2025-01-01",
                          check_rule={"every": 10, "fine_every": 1, "fine_band": math.inf, "confirm_steps": 5},
                          reach_rate=0.5, baseline_steps_to_target=[120, None],
                          weak_reference={"technique": "lr_scale", "speedup": 1.8, "per_seed": [1.8, None]})
    tuning = TuningRecord(workload="digits", preset="micro", technique="curriculum", metric="steps",
                          winner={"full_at": 0.2}, grid=[{"settings": {"full_at": 0.2}, "median_cost": 100.0,
                                                          "reached": 2, "of": 2}],
                          seeds=[20000, 20001], tuning_cost={"steps": 200.0})
    path = tmp_path / "targets.toml"
    write_targets(path, Calibrated([record], [tuning], []), "step7bench calibrate --suite x")
    loaded = load_calibration(path)
    assert loaded.targets == {"digits/micro": 0.42}
    assert loaded.tuned == {"digits/micro": {"curriculum": {"full_at": 0.2}}}
    assert loaded.records["digits/micro"]["weak_reference"]["speedup"] == 1.8
    text = path.read_text()
    assert "best_val_losses = [0.4, inf]" in text and "times (1 + 0.05)" in text
    assert text.startswith("# Written by `step7bench calibrate --suite x`")


def test_a_micro_calibration_sets_targets_measures_the_weak_reference_and_tunes(tmp_path, monkeypatch):
    specs = harness_fakes.fake_specs()
    specs["curriculum"] = dataclasses.replace(specs["curriculum"], grid=({"full_at": 0.2}, {"full_at": 0.5}))
    specs["lr_scale"] = technique_specs()["lr_scale"]
    registry = Registry(specs, builtin_workloads())
    path = tmp_path / "cal.toml"
    path.write_text(mini_suite_text(techniques='["curriculum"]', arms='["baseline", "alone", "positive_controls"]')
                    .replace("target_val_loss = 2.2\n", "max_seconds = 30.0\n")
                    .replace("max_steps = 21", "max_steps = 60"))
    suite = load_suite(str(path), registry=registry, require_targets=False)
    lines = []
    calibrated = calibrate(suite, device="cpu", seeds=2, tuning_metric="steps", report=lines.append)
    (record,) = calibrated.targets
    assert record.calibration_seeds == [20000, 20001] and len(record.best_val_losses) == 2
    assert record.target_val_loss == pytest.approx(record.median_best_val_loss * 1.02)
    assert record.reach_rate >= 0.5 and all(isinstance(s, int) for s in record.baseline_steps_to_target if s)
    assert record.weak_reference["of"] == 2
    (tuning,) = calibrated.tunings
    assert tuning.technique == "curriculum" and tuning.winner in ({"full_at": 0.2}, {"full_at": 0.5})
    assert [point["settings"] for point in tuning.grid] == [{"full_at": 0.2}, {"full_at": 0.5}]
    assert tuning.tuning_cost["steps"] > 0
    assert any("lr_scale seed 20001" in line for line in lines)


class _BaselinesOnly:
    """A deadline that lets only the baseline's runs start (the weakened references come too late)."""

    def allows(self, trial):
        return trial.arm.name == "baseline"

    def finished(self, trial, seconds):
        pass


def test_a_deadline_that_cuts_the_weakened_reference_still_writes_the_targets(tmp_path):
    path = tmp_path / "cut.toml"
    path.write_text(mini_suite_text(techniques='["curriculum"]', arms='["baseline", "positive_controls"]')
                    .replace("target_val_loss = 2.2\n", ""))
    suite = load_suite(str(path), registry=Registry(harness_fakes.fake_specs(), builtin_workloads()),
                       require_targets=False)
    calibrated = calibrate(suite, device="cpu", seeds=2, tune=False, deadline=_BaselinesOnly(), report=print)
    (record,) = calibrated.targets
    assert math.isfinite(record.target_val_loss) and record.weak_reference == {}
    assert any("lr_scale" in warning and "left out" in warning for warning in calibrated.warnings)


def test_a_suite_without_the_positive_controls_runs_no_weakened_reference(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(mini_suite_text(techniques='["curriculum"]', arms='["baseline"]')
                    .replace("target_val_loss = 2.2\n", ""))
    suite = load_suite(str(path), registry=Registry(harness_fakes.fake_specs(), builtin_workloads()),
                       require_targets=False)
    lines = []
    calibrated = calibrate(suite, device="cpu", seeds=2, tune=False, report=lines.append)
    assert calibrated.targets[0].weak_reference == {} and not any("lr_scale" in w for w in calibrated.warnings)
    assert lines and not any("lr_scale" in line for line in lines)
