"""The cost metrics a speedup or a claim is judged on, named once for every layer.

Each metric has a name and the trials table's ledger column it reads (`device_hours` reads
`device_s`). The harness checks a claims file against these names when it loads it; the
analysis (`step7bench.analysis.metrics`) describes each one (label, unit, pretraining column).
A claim may name a metric or its column.
"""

from __future__ import annotations

METRIC_COLUMNS: dict[str, str] = {
    "steps": "steps",
    "examples_forward": "examples_forward",
    "examples_backward": "examples_backward",
    "tokens_forward": "tokens_forward",
    "tokens_backward": "tokens_backward",
    "flops": "flops_total",
    "wall_s": "wall_s",
    "device_hours": "device_s",
    "energy_j": "energy_j",
}
"""Metric name -> the trials table's ledger column it reads, in report order."""

PRETRAIN_COLUMNS: dict[str, str] = {
    "steps": "steps_pretrain",
    "examples_forward": "examples_pretrain",
    "flops": "flops_pretrain",
    "wall_s": "wall_pretrain_s",
    "device_hours": "device_pretrain_s",
    "energy_j": "energy_pretrain_j",
}
"""Metric name -> the ledger column of what pretraining cost in it, for the metrics that count
pretraining (the all-in accounting)."""


def metric_keys() -> list[str]:
    """Every name a claim may give a metric by: the metric names, then the columns that differ."""
    return [*METRIC_COLUMNS, *(column for name, column in METRIC_COLUMNS.items() if column != name)]
