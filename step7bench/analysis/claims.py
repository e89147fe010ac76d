"""Verdicts on the seed document's claims, and whether its speedups multiply.

A claim names a set of techniques, a claimed factor and the metric it is judged on. It is
judged on the arm that runs exactly those techniques, per workload, *all-in* (pretraining
counted: nothing off the clock) where the metric has a pretraining counterpart; where the arm
pretrained, the finetune-only figure (the seed's way of counting) is given beside it.

Multiplicativity (the seed multiplies per-technique speedups into 17.5x): each row of its
cumulative table is a stack measured directly, and its interaction is

    interaction = median stacked speedup / product of the median speedups of its techniques alone

with a bootstrap interval that resamples seeds jointly over the stack and every alone arm
(the arms share seeds). 1 means the speedups multiply; below 1, the stack gives less than the
product (as DeepSpeed Data Efficiency, 2022, found for curriculum + random-LTD).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS, Accounting, Metric, get_metric, supports
from step7bench.analysis.speedups import (AA_ARM, BASELINE_ARM, BootstrapSettings, SpeedupEstimate, estimate,
                                          paired_costs)
from step7bench.analysis.stats import (NOT_MEASURED, Interval, Verdict, paired_bootstrap, ratio_of_medians,
                                       verdict)

NOT_ARMS = (BASELINE_ARM, AA_ARM)


class Claim(Protocol):
    """What the harness's claims loader gives (`step7bench.harness.claims.Claim`)."""

    name: str
    techniques: list[str]
    claimed: float
    metric: str
    kind: str  # technique | cumulative | target


@dataclass(frozen=True)
class ClaimResult:
    """One claim judged on one workload. `measured` is None (verdict NOT MEASURED) when the suite
    has no arm with exactly the claim's techniques."""

    name: str
    kind: str
    workload: str
    techniques: tuple[str, ...]
    claimed: float
    metric: str
    accounting: Accounting
    measured: SpeedupEstimate | None
    verdict: Verdict
    finetune_only: SpeedupEstimate | None
    finetune_verdict: Verdict | None


@dataclass(frozen=True)
class CumulativeRow:
    """A row of the seed's cumulative table on one workload: its stack measured directly, the
    product of its techniques measured alone, and their ratio (the interaction)."""

    name: str
    workload: str
    techniques: tuple[str, ...]
    claimed: float
    measured: SpeedupEstimate | None
    product_alone: float | None
    interaction: float | None
    interaction_interval: Interval | None


def arm_for(trials: pd.DataFrame, techniques: Sequence[str]) -> str | None:
    """The arm of one workload that runs exactly `techniques` (in any order), controls excluded."""
    wanted = set(techniques)
    for arm, kind, joined in trials[["arm", "arm_kind", "techniques"]].drop_duplicates().itertuples(index=False):
        if arm not in NOT_ARMS and kind != "control" and set(str(joined).split("+")) == wanted:
            return str(arm)
    return None


def judge_claims(trials: pd.DataFrame, claims: Sequence[Claim], settings: BootstrapSettings = BootstrapSettings(),
                 downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> list[ClaimResult]:
    """Every claim on every workload, in the claims' order, workloads sorted."""
    return [_judge(workload_trials, claim, settings, downstream_tasks)
            for claim in claims for _, workload_trials in trials.groupby("workload", sort=True)]


def _judge(trials: pd.DataFrame, claim: Claim, settings: BootstrapSettings, downstream_tasks: int) -> ClaimResult:
    metric = get_metric(claim.metric)
    accounting: Accounting = "all_in" if supports(metric, "all_in") else "finetune"
    arm = arm_for(trials, claim.techniques)
    measured = estimate(trials, arm, metric, accounting, settings, downstream_tasks) if arm else None
    finetune = None
    if arm and accounting == "all_in" and _pretrained(trials, arm, metric):
        finetune = estimate(trials, arm, metric, "finetune", settings, downstream_tasks)
    return ClaimResult(
        name=claim.name, kind=claim.kind, workload=str(trials["workload"].iloc[0]),
        techniques=tuple(claim.techniques), claimed=float(claim.claimed), metric=metric.name,
        accounting=accounting, measured=measured,
        verdict=verdict(measured.interval, claim.claimed) if measured else NOT_MEASURED,
        finetune_only=finetune, finetune_verdict=verdict(finetune.interval, claim.claimed) if finetune else None)


def _pretrained(trials: pd.DataFrame, arm: str, metric: Metric) -> bool:
    return bool((trials.loc[trials["arm"] == arm, metric.pretrain_column].astype(float) > 0).any())


def cumulative_table(trials: pd.DataFrame, claims: Sequence[Claim], settings: BootstrapSettings = BootstrapSettings(),
                     downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> list[CumulativeRow]:
    """The seed's cumulative rows (claims of kind ``cumulative``, in file order) on every workload."""
    rows = []
    for _, workload_trials in trials.groupby("workload", sort=True):
        for claim in (c for c in claims if c.kind == "cumulative"):
            rows.append(_cumulative_row(workload_trials, claim, settings, downstream_tasks))
    return rows


def _cumulative_row(trials: pd.DataFrame, claim: Claim, settings: BootstrapSettings,
                    downstream_tasks: int) -> CumulativeRow:
    judged = _judge(trials, claim, settings, downstream_tasks)
    alone = [arm_for(trials, [technique]) for technique in claim.techniques]
    stack = arm_for(trials, claim.techniques)
    product = interaction = interval = None
    if judged.measured is not None and stack is not None and None not in alone:
        metric = get_metric(judged.metric)
        alone_estimates = [estimate(trials, arm, metric, judged.accounting, settings, downstream_tasks)
                           for arm in alone]
        if None not in alone_estimates:
            product = math.prod(e.median for e in alone_estimates)
            interaction, interval = _interaction(trials, stack, alone, metric, judged.accounting, settings,
                                                 downstream_tasks)
    return CumulativeRow(claim.name, judged.workload, judged.techniques, judged.claimed, judged.measured,
                         product, interaction, interval)


def _interaction(trials: pd.DataFrame, stack: str, alone: Sequence[str], metric: Metric, accounting: Accounting,
                 settings: BootstrapSettings, downstream_tasks: int) -> tuple[float | None, Interval | None]:
    """Point estimate and joint bootstrap interval of the interaction on the seeds all arms share."""
    per_arm = []
    for arm in (stack, *alone):
        pairs = paired_costs(trials, arm, metric, accounting, downstream_tasks)
        per_arm.append(pd.Series(pairs.speedups(), index=pairs.seeds))
    common = per_arm[0].index
    for series in per_arm[1:]:
        common = common.intersection(series.index)
    if common.empty:
        return None, None
    columns = [series.loc[common.sort_values()].to_numpy() for series in per_arm]
    point = float(ratio_of_medians(*(column[None, :] for column in columns))[0])
    workload = str(trials["workload"].iloc[0])
    interval = paired_bootstrap(ratio_of_medians, columns, settings.rng(workload, "interaction", stack, metric.name,
                                                                         accounting),
                                settings.resamples, settings.confidence)
    return (None if np.isnan(point) else point), interval
