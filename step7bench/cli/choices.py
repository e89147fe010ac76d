"""Choices and defaults the parser shows in its help, restated here so that building the parser
imports nothing heavy.

Their sources of truth live in modules that import torch, scipy or pandas (named beside each);
tests/cli/test_choices.py asserts every value here equals its source, so a change there that is
not made here fails a test instead of showing a stale help text.
"""

from __future__ import annotations

DEVICE_CHOICES = ("auto", "cpu", "cuda")  # step7bench.engine.loop.resolve_device
PRESET_NAMES = ("micro", "small", "large")  # step7bench.workloads.base.PRESET_NAMES
WORKLOAD_NAMES = ("code-lm", "digits", "grammar-lm")  # step7bench.workloads.workload_names()
GATE_FORMATS = ("text", "markdown", "json", "junit")  # step7bench.report.gate_formats.GATE_FORMATS
EXPORT_FORMATS = ("csv", "parquet", "json")  # step7bench.harness.export.EXPORT_FORMATS
EXPORT_TABLES = ("trials", "curves")  # step7bench.harness.export.EXPORT_TABLES
DATABASE_NAME = "results.sqlite"  # step7bench.harness.store.DATABASE_NAME
EXPORT_DESTINATIONS = ("file", "mlflow")  # step7bench.cli.export's own
COMPARE_FORMATS = ("text", "markdown")  # step7bench.cli.compare's own

# step7bench.analysis.gate
DEFAULT_TOLERANCE = 1e-3
DEFAULT_DRIFT_TOLERANCE = 0.15
DEFAULT_FACTOR = 1.1
DEFAULT_ALPHA = 0.05

DEFAULT_DOWNSTREAM_TASKS = 10  # step7bench.analysis.metrics.DEFAULT_DOWNSTREAM_TASKS
DEFAULT_CONFIDENCE = 0.95  # step7bench.analysis.stats.DEFAULT_CONFIDENCE
