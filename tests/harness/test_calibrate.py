"""Targets from baseline runs: the arithmetic, and the file round trip with its record."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from step7bench.harness.calibrate import TargetRecord, target_from, write_targets
from step7bench.harness.suite import load_targets


def test_the_target_is_the_median_raised_by_the_margin():
    assert target_from([0.5, 0.3, 0.4], 0.05) == (pytest.approx(0.42), 0.4)


@given(st.lists(st.floats(0.01, 10.0), min_size=1, max_size=9), st.floats(0.0, 0.5))
def test_the_target_is_at_least_half_the_seeds_best(losses, margin):
    target, _ = target_from(losses, margin)
    assert sum(loss <= target for loss in losses) >= len(losses) / 2


def test_an_empty_list_is_refused():
    with pytest.raises(ValueError, match="best_val_losses"):
        target_from([], 0.1)


def test_a_targets_file_round_trips_and_records_how(tmp_path):
    record = TargetRecord(workload="digits", preset="micro", target_val_loss=0.42, median_best_val_loss=0.4,
                          margin=0.05, calibration_seeds=[20000, 20001], best_val_losses=[0.4, float("inf")],
                          statuses=["ran the full budget", "diverged"], max_steps=300, max_seconds=30.0,
                          hardware_class="cpu-x-2c", git_commit="abc", calibrated_at="2025-01-01")
    path = tmp_path / "targets.toml"
    write_targets(path, [record], "step7bench calibrate --suite x")
    assert load_targets(path) == {"digits/micro": 0.42}
    text = path.read_text()
    assert "best_val_losses = [0.4, inf]" in text and "times (1 + 0.05)" in text
    assert text.startswith("# Validation targets written by `step7bench calibrate --suite x`")
