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

import numpy as np

from step7bench.analysis.metrics import Accounting, Metric, get_metric, supports
from step7bench.analysis.speedups import AA_ARM, BASELINE_ARM, BootstrapSettings, CostTable, SpeedupEstimate, estimate
from step7bench.analysis.stats import (NOT_MEASURED, Interval, Verdict, median, paired_bootstrap,
                                       ratio_of_medians, verdict)
from step7bench.harness.claims import Claim

NOT_ARMS = (BASELINE_ARM, AA_ARM)


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
    product of its techniques measured alone, and their ratio (the interaction). The product and
    the interaction are taken on the seeds the stack and every alone arm share (`measured` is on
    every seed of the stack), so `interaction` is the stack's median over `product_alone` there."""

    name: str
    workload: str
    techniques: tuple[str, ...]
    claimed: float
    measured: SpeedupEstimate | None
    product_alone: float | None
    interaction: float | None
    interaction_interval: Interval | None


def arm_for(table: CostTable, workload: str, techniques: Sequence[str]) -> str | None:
    """The arm of `workload` that runs exactly `techniques` (in any order), controls excluded."""
    wanted = set(techniques)
    for arm in table.arms(workload):
        if (arm not in NOT_ARMS and table.kind(workload, arm) != "control"
                and set(table.techniques(workload, arm)) == wanted):
            return arm
    return None


def judge_claims(table: CostTable, claims: Sequence[Claim],
                 settings: BootstrapSettings = BootstrapSettings()) -> list[ClaimResult]:
    """Every claim on every workload, in the claims' order, workloads sorted."""
    return [_judge(table, workload, claim, settings) for claim in claims for workload in table.workloads]


def _judge(table: CostTable, workload: str, claim: Claim, settings: BootstrapSettings) -> ClaimResult:
    metric = get_metric(claim.metric)
    accounting: Accounting = "all_in" if supports(metric, "all_in") else "finetune"
    arm = arm_for(table, workload, claim.techniques)
    measured = estimate(table, workload, arm, metric, accounting, settings) if arm else None
    finetune = None
    if arm and accounting == "all_in" and table.pretrained(workload, arm, metric):
        finetune = estimate(table, workload, arm, metric, "finetune", settings)
    return ClaimResult(
        name=claim.name, kind=claim.kind, workload=workload, techniques=tuple(claim.techniques),
        claimed=float(claim.claimed), metric=metric.name, accounting=accounting, measured=measured,
        verdict=verdict(measured.interval, claim.claimed) if measured else NOT_MEASURED,
        finetune_only=finetune, finetune_verdict=verdict(finetune.interval, claim.claimed) if finetune else None)


def cumulative_table(table: CostTable, claims: Sequence[Claim],
                     settings: BootstrapSettings = BootstrapSettings()) -> list[CumulativeRow]:
    """The seed's cumulative rows (claims of kind ``cumulative``, in file order) on every workload."""
    return [_cumulative_row(table, workload, claim, settings)
            for workload in table.workloads for claim in claims if claim.kind == "cumulative"]


def _cumulative_row(table: CostTable, workload: str, claim: Claim, settings: BootstrapSettings) -> CumulativeRow:
    judged = _judge(table, workload, claim, settings)
    alone = [arm_for(table, workload, [technique]) for technique in claim.techniques]
    stack = arm_for(table, workload, claim.techniques)
    interaction = Interaction(None, None, None)
    if judged.measured is not None and stack is not None and None not in alone:
        interaction = _interaction(table, workload, stack, alone, get_metric(judged.metric), judged.accounting,
                                   settings)
    return CumulativeRow(claim.name, workload, judged.techniques, judged.claimed, judged.measured,
                         interaction.product_alone, interaction.point, interaction.interval)


@dataclass(frozen=True)
class Interaction:
    """The product of the alone arms' median speedups and the interaction, both on the seeds the
    stack and every alone arm share, so that `point` is the stack's median over `product_alone`
    on those same seeds. All None when the arms share no seed."""

    product_alone: float | None
    point: float | None
    interval: Interval | None


def _interaction(table: CostTable, workload: str, stack: str, alone: Sequence[str], metric: Metric,
                 accounting: Accounting, settings: BootstrapSettings) -> Interaction:
    """Product, point estimate and joint bootstrap interval of the interaction on the seeds all arms share."""
    per_arm = []  # a list, not a dict: a one-technique row's stack *is* its alone arm
    for arm in (stack, *alone):
        pairs = table.pair(workload, arm, metric, accounting)
        per_arm.append(dict(zip(pairs.seeds.tolist(), pairs.speedups())))
    common = sorted(set.intersection(*(set(speedups) for speedups in per_arm)))
    if not common:
        return Interaction(None, None, None)
    columns = [np.array([speedups[seed] for seed in common]) for speedups in per_arm]
    with np.errstate(invalid="ignore"):  # 0 * inf: undefined, kept as NaN
        product = math.prod(median(column) for column in columns[1:])
    point = float(ratio_of_medians(*(column[None, :] for column in columns))[0])
    rng = settings.rng(workload, "interaction", stack, metric.name, accounting)
    interval = paired_bootstrap(ratio_of_medians, columns, rng, settings.resamples, settings.confidence)
    return Interaction(None if np.isnan(product) else product, None if np.isnan(point) else point, interval)
