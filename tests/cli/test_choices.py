"""The CLI's copies of choices and defaults (step7bench/cli/choices.py, kept light so that `--help`
imports nothing heavy) equal their sources of truth, which these tests may import."""

from __future__ import annotations

import pytest

from step7bench.cli import choices
from step7bench.errors import UserError


def test_workload_and_preset_names_match_the_workloads():
    from step7bench.workloads import PRESET_NAMES, workload_names

    assert choices.PRESET_NAMES == tuple(PRESET_NAMES)
    assert sorted(choices.WORKLOAD_NAMES) == sorted(workload_names())


def test_device_choices_are_the_ones_the_engine_knows():
    from step7bench.engine import resolve_device

    for name in choices.DEVICE_CHOICES:
        try:
            resolve_device(name)
        except UserError as exc:  # cuda on a machine without a GPU: known, but not available
            assert "unknown" not in str(exc)
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu")


def test_gate_formats_and_thresholds_match_the_gate():
    from step7bench.analysis import gate
    from step7bench.report.gate_formats import GATE_FORMATS

    assert choices.GATE_FORMATS == tuple(GATE_FORMATS)
    assert (choices.DEFAULT_TOLERANCE, choices.DEFAULT_DRIFT_TOLERANCE, choices.DEFAULT_FACTOR,
            choices.DEFAULT_ALPHA) == (gate.DEFAULT_TOLERANCE, gate.DEFAULT_DRIFT_TOLERANCE, gate.DEFAULT_FACTOR,
                                       gate.DEFAULT_ALPHA)


def test_report_defaults_match_the_analysis():
    from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS
    from step7bench.analysis.stats import DEFAULT_CONFIDENCE

    assert choices.DEFAULT_DOWNSTREAM_TASKS == DEFAULT_DOWNSTREAM_TASKS
    assert choices.DEFAULT_CONFIDENCE == DEFAULT_CONFIDENCE


def test_export_choices_and_database_name_match_the_harness():
    from step7bench.harness.export import EXPORT_FORMATS, EXPORT_TABLES
    from step7bench.harness.store import DATABASE_NAME

    assert choices.EXPORT_FORMATS == tuple(EXPORT_FORMATS)
    assert choices.EXPORT_TABLES == tuple(EXPORT_TABLES)
    assert choices.DATABASE_NAME == DATABASE_NAME
