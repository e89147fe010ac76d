"""Every built-in technique declares how it is judged "as specified" and tuned (TechniqueSpec's
`as_specified`, `grid`, `grid_source`), every declared setting builds, and every technique and
control says in its stats whether its mechanism fired (`activity`)."""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from step7bench.engine import run_trial
from step7bench.techniques import technique_specs
from step7bench.techniques._common import percent
from step7bench.techniques.registry import MAX_GRID_POINTS
from step7bench.workloads import get_workload
from step7bench.workloads.base import ExampleDataset

SPECS = technique_specs()
WORKLOADS = ("digits", "grammar-lm")
# Need no grid: they change memory (accumulation; ZeRO-1 sharding), not what a step computes.
UNTUNED = frozenset({"gradient_accumulation", "distributed"})
TUNED = sorted(name for name, spec in SPECS.items()
               if not spec.is_control and not spec.positive_control and name not in UNTUNED)
# The activity of the arms the report labels; positive controls are instruments, not claims.
LABELLED = sorted(name for name, spec in SPECS.items() if not spec.positive_control)


@functools.cache
def _workload(name: str):
    return get_workload(name, "micro")


def _applies(spec, workload_name: str) -> bool:
    return _workload(workload_name).task in spec.tasks


def test_the_techniques_that_change_the_arithmetic_are_all_tuned():
    # distributed is not: its one setting (ZeRO-1 or not) changes memory, not what a step computes.
    assert set(TUNED) == {"curriculum", "active_learning", "augmentation", "transfer", "gradient_caching",
                          "difficulty_prediction", "dynamic_lr"}


@pytest.mark.parametrize("name", TUNED)
def test_a_tuned_technique_declares_a_small_grid_of_its_settings_with_a_source(name):
    spec = SPECS[name]
    assert 1 <= len(spec.grid) <= MAX_GRID_POINTS
    assert all(point and set(point) <= set(spec.defaults) for point in spec.grid)
    assert len({tuple(sorted(point.items())) for point in spec.grid}) == len(spec.grid), "no point twice"
    assert spec.as_specified and set(spec.as_specified) <= set(spec.defaults)
    assert len(spec.grid_source) > 40, "a grid says where its points come from"


@pytest.mark.parametrize("name", TUNED)
def test_a_control_takes_every_tuned_setting_of_its_technique(name):
    # the harness copies the technique's settings to its control for every key they share
    spec = SPECS[name]
    if spec.control is not None:
        control = SPECS[spec.control]
        assert not control.grid and not control.as_specified
        assert all(set(point) <= set(control.defaults) for point in spec.grid)


@pytest.mark.parametrize(("name", "workload_name"), [(name, workload) for name in TUNED for workload in WORKLOADS])
def test_every_declared_setting_builds_a_plugin(name, workload_name):
    spec = SPECS[name]
    if not _applies(spec, workload_name):
        pytest.skip(f"{name} does not apply to {workload_name}")
    workload = _workload(workload_name)
    for settings in (spec.as_specified, *spec.grid):
        assert spec.plugin(workload, settings).name == name
        if spec.control is not None:
            shared = {key: value for key, value in settings.items() if key in SPECS[spec.control].defaults}
            assert SPECS[spec.control].plugin(workload, shared).name == spec.control


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEP7BENCH_CACHE", str(tmp_path))  # transfer's pretraining stays in the test


@pytest.mark.parametrize(("name", "workload_name"), [(name, workload) for name in LABELLED
                                                     for workload in WORKLOADS])
def test_every_technique_and_control_reports_its_activity(name, workload_name):
    spec = SPECS[name]
    if not _applies(spec, workload_name):
        pytest.skip(f"{name} does not apply to {workload_name}")
    workload = _workload(workload_name)
    config = {"pretrain_steps": 2} if name == "transfer" else {}
    head = ExampleDataset(workload.train.inputs[:128], workload.train.targets[:128])
    result = run_trial(workload, 0, [spec.plugin(workload, config)], device="cpu", target_val_loss=-math.inf,
                       train=head, budget=dataclasses.replace(workload.budget, max_steps=4, max_seconds=math.inf))
    assert result.error is None
    entry = result.technique_stats[name]["activity"]
    assert set(entry) == {"fired", "summary", "value"}
    assert isinstance(entry["fired"], bool) and isinstance(entry["value"], float) and entry["summary"]


@given(st.floats(0.0, 1.0))
def test_a_percentage_never_reads_as_none_or_all_unless_it_is(share):
    text = percent(share)
    assert text.endswith("%")
    assert (text == "0%") == (share == 0.0)
    assert (text == "100%") == (share == 1.0)


def test_percentages_at_known_points():
    assert [percent(x) for x in (0.0, 0.0004, 0.004, 0.05, 0.2, 0.5, 0.996, 1.0)] == [
        "0%", "<0.1%", "0.4%", "5.0%", "20%", "50%", ">99%", "100%"]
