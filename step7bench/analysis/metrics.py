"""Cost to target on every metric, and how pretraining is counted.

A trial's cost is its ledger total at the moment it first reached the validation target. A
trial that missed the target or diverged has infinite cost on every metric: it is kept, never
dropped (AlgoPerf, Dahl et al. 2023). A trial that *failed* (raised) measured nothing; it is
not a cost, and `costs_to_target` refuses it (pairing code leaves failed trials out and
counts them).

Pretraining (transfer learning) is counted three ways, named by `Accounting`:

- ``finetune``: the plain ledger total, as the seed document counts transfer learning;
- ``all_in``: plus everything pretraining spent (nothing off the clock);
- ``amortized``: plus pretraining divided by a stated number of downstream tasks that share
  one pretrained model.

Only metrics whose pretraining counterpart the ledger records have the last two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from step7bench.metric_names import METRIC_COLUMNS, PRETRAIN_COLUMNS

Accounting = Literal["finetune", "all_in", "amortized"]
ACCOUNTINGS: tuple[Accounting, ...] = ("finetune", "all_in", "amortized")

DEFAULT_DOWNSTREAM_TASKS = 10
"""Downstream tasks one pretrained model is assumed to serve in the amortized accounting;
a report states it next to every amortized figure."""


@dataclass(frozen=True)
class Metric:
    """One kind of cost. `column` is the trials table's ledger column; the cost in `unit` is
    `column * scale` (+ `pretrain_column * scale` when pretraining is counted).

    `deterministic` metrics are identical for a seed on the CPU (counts of steps, examples,
    tokens and FLOPs), so a gate can compare them exactly; the others are noisy measurements.
    """

    name: str
    column: str
    label: str
    unit: str
    deterministic: bool
    pretrain_column: str | None = None
    scale: float = 1.0


_DESCRIPTIONS: dict[str, tuple[str, str, bool, float]] = {
    # name: (label, unit, deterministic, scale)
    "steps": ("optimizer steps", "steps", True, 1.0),
    "examples_forward": ("examples through forward", "examples", True, 1.0),
    "examples_backward": ("examples through backward", "examples", True, 1.0),
    "tokens_forward": ("tokens through forward", "tokens", True, 1.0),
    "tokens_backward": ("tokens through backward", "tokens", True, 1.0),
    "flops": ("FLOPs (forward + backward + overhead)", "FLOP", True, 1.0),
    "wall_s": ("wall-clock (training + overhead)", "s", False, 1.0),
    "device_hours": ("device-hours", "device-h", False, 1 / 3600),
    "energy_j": ("energy", "J", False, 1.0),
}



def _described(name: str, column: str) -> Metric:
    label, unit, deterministic, scale = _DESCRIPTIONS[name]
    return Metric(name, column, label, unit, deterministic, PRETRAIN_COLUMNS.get(name), scale)


METRICS: tuple[Metric, ...] = tuple(_described(name, column) for name, column in METRIC_COLUMNS.items())
"""Every metric of `step7bench.metric_names`, described (a name without a description fails at import)."""

_BY_KEY = {key: metric for metric in METRICS for key in (metric.name, metric.column)}


def get_metric(name: str) -> Metric:
    """The metric called `name`; its ledger column name (e.g. ``device_s``) is accepted too."""
    if name not in _BY_KEY:
        raise ValueError(f"metric: unknown metric {name!r} (choose from {', '.join(m.name for m in METRICS)})")
    return _BY_KEY[name]


def supports(metric: Metric, accounting: Accounting) -> bool:
    """Whether `metric` can be counted under `accounting` (all-in needs a pretraining column)."""
    return accounting == "finetune" or metric.pretrain_column is not None


def spent(trials: pd.DataFrame, metric: Metric, accounting: Accounting = "finetune",
          downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> pd.Series:
    """What each trial spent in `metric.unit` when it stopped, whether it reached the target or
    not: a missed trial's cost to target is known to exceed it (right-censored there). A trial
    that spent nothing is given the smallest positive number, so its bound says nothing."""
    return _ledger_cost(trials, metric, accounting, downstream_tasks).clip(lower=np.finfo(float).tiny)


def _ledger_cost(trials: pd.DataFrame, metric: Metric, accounting: Accounting, downstream_tasks: int) -> pd.Series:
    if not supports(metric, accounting):
        raise ValueError(f"accounting: {metric.name} has no pretraining counterpart for {accounting!r}")
    if downstream_tasks < 1:
        raise ValueError(f"downstream_tasks: must be >= 1, got {downstream_tasks}")
    cost = trials[metric.column].astype(float)
    if accounting != "finetune":
        pretrain = trials[metric.pretrain_column].astype(float)
        cost = cost + (pretrain if accounting == "all_in" else pretrain / downstream_tasks)
    return cost * metric.scale


def costs_to_target(trials: pd.DataFrame, metric: Metric, accounting: Accounting = "finetune",
                    downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> pd.Series:
    """Each trial's cost to target in `metric.unit`, indexed like `trials`; inf where the target was
    missed or the trial diverged.

    Raises ValueError for a failed trial (it measured nothing) or an accounting the metric lacks.
    """
    if (trials["status"] == "failed").any():
        raise ValueError("trials: failed trials have no cost; leave them out first")
    cost = _ledger_cost(trials, metric, accounting, downstream_tasks)
    return cost.where(trials["status"] == "reached", np.inf)
