"""Verdicts on the seed document's claims, and whether its speedups multiply.

A claim names a set of techniques, a claimed factor and the metric it is judged on. It is
judged per workload on the arm that runs exactly those techniques, twice: at the technique's
*tuned* settings (the grid's winner on calibration seeds: the strongest honest version of the
technique, and the headline) and *as specified* by the seed document. It is judged *all-in*
(pretraining counted: nothing off the clock) where the metric has a pretraining counterpart;
where the arm pretrained, the finetune-only figure (the seed's way of counting) is given beside
it. Every claim also carries its arm's steps, FLOPs and device-hours speedups.

Trust. A claim is judged on its primary metric only where the instrument can be trusted there:
the A/A arm holds 1 on that metric and workload, and the positive controls on that workload
found their known speedups. Otherwise the verdict is marked untrusted and the verdict on FLOPs
(a count, deterministic) is given beside it.

Activity. A verdict whose technique's mechanism never fired (no gradient reused, no example
skipped) is labelled inactive: it says nothing about the idea, only about this setting.

Multiplicativity (the seed multiplies per-technique speedups into 17.5x): each row of its
cumulative table is a stack measured directly, and its interaction is, per seed,

    log interaction = log stacked speedup - sum of the log speedups of its techniques alone

over the seeds the stack and every alone arm share, censored seeds carried as bounds
(`analysis.censored.combine_bounds`), aggregated like a speedup. 1 means the speedups multiply;
below 1, the stack gives less than the product (as DeepSpeed Data Efficiency, 2022, found for
curriculum + random-LTD).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from step7bench.analysis.censored import CensoredEstimate, combine_bounds, log_mean_interval
from step7bench.analysis.metrics import Accounting, Metric, get_metric, supports
from step7bench.analysis.speedups import AA_ARM, BASELINE_ARM, CostTable, SpeedupEstimate, estimate
from step7bench.analysis.stats import DEFAULT_CONFIDENCE, NOT_MEASURED, Interval, Verdict, verdict
from step7bench.harness.claims import Claim

NOT_ARMS = (BASELINE_ARM, AA_ARM)
ROW_METRICS = ("steps", "flops", "device_hours")
"""Every claim row shows these beside its primary metric."""
FALLBACK_METRIC = "flops"
"""The metric an untrusted claim is also judged on: a count, the same on any run of a seed."""
TUNED, AS_SPECIFIED = "tuned", "as_specified"


@dataclass(frozen=True)
class Activity:
    """What a technique's mechanism did in an arm's trials (from each trial's `activity` figure)."""

    technique: str
    fired: bool
    summary: str


@dataclass(frozen=True)
class Look:
    """Which seeds and what confidence a claim is judged with: every seed at the nominal
    confidence, or, in an adaptive design, the seeds of the look that decided it at that look's
    spending level."""

    confidence: float = DEFAULT_CONFIDENCE
    max_pair_seeds: int | None = None


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
    finetune_only: SpeedupEstimate | None = None
    finetune_verdict: Verdict | None = None
    as_specified: SpeedupEstimate | None = None
    as_specified_verdict: Verdict | None = None
    by_metric: Mapping[str, SpeedupEstimate | None] = field(default_factory=dict)
    trusted: bool = True
    untrusted_reason: str = ""
    fallback_verdict: Verdict | None = None  # on FALLBACK_METRIC, given when untrusted
    activity: tuple[Activity, ...] = ()
    as_specified_activity: tuple[Activity, ...] = ()
    confidence: float = DEFAULT_CONFIDENCE
    source: str = ""  # where the claim is made (the section of the seed document)

    @property
    def inactive(self) -> list[Activity]:
        """The techniques whose mechanism never fired in the tuned arm."""
        return [entry for entry in self.activity if not entry.fired]

    @property
    def as_specified_inactive(self) -> list[Activity]:
        """The techniques whose mechanism never fired at the seed document's settings."""
        return [entry for entry in self.as_specified_activity if not entry.fired]

    @property
    def seeds_used(self) -> int:
        return self.measured.n_seeds if self.measured else 0


@dataclass(frozen=True)
class CumulativeRow:
    """A row of the seed's cumulative table on one workload: its stack measured directly, the
    product of its techniques' speedups alone and the interaction, both on the seeds the stack and
    every alone arm share. None where a factor is censored so that nothing can be said."""

    name: str
    workload: str
    techniques: tuple[str, ...]
    claimed: float
    measured: SpeedupEstimate | None
    product_alone: float | None
    interaction: float | None
    interaction_interval: Interval | None


def arm_for(table: CostTable, workload: str, techniques: Sequence[str], variant: str = TUNED) -> str | None:
    """The arm of `workload` that runs exactly `techniques` (in any order) at `variant`'s settings,
    controls and positive controls excluded."""
    wanted = set(techniques)
    for arm in table.arms(workload):
        if (arm not in NOT_ARMS and table.kind(workload, arm) not in ("control", "positive_control")
                and table.variant(workload, arm) == variant and set(table.techniques(workload, arm)) == wanted):
            return arm
    return None


@dataclass(frozen=True)
class Judge:
    """What every claim is judged with: the costs, which (workload, metric) pairs the instrument
    can be trusted on, each arm's mechanism activity, and each claim's look."""

    table: CostTable
    trusted: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (workload, metric) -> "" or why not
    activity: Mapping[tuple[str, str], tuple[Activity, ...]] = field(default_factory=dict)
    looks: Mapping[tuple[str, str], Look] = field(default_factory=dict)  # (claim name, workload) -> look

    def claims(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        """Every claim on every workload, in the claims' order, workloads sorted."""
        return [self.claim(workload, claim) for claim in claims for workload in self.table.workloads]

    def claim(self, workload: str, claim: Claim) -> ClaimResult:
        table, metric = self.table, get_metric(claim.metric)
        look = self.looks.get((claim.name, workload), Look())
        accounting: Accounting = "all_in" if supports(metric, "all_in") else "finetune"
        arm = arm_for(table, workload, claim.techniques)
        measured = self._estimate(workload, arm, metric, accounting, look)
        finetune = (self._estimate(workload, arm, metric, "finetune", look)
                    if arm and accounting == "all_in" and table.pretrained(workload, arm, metric) else None)
        stated_arm = arm_for(table, workload, claim.techniques, AS_SPECIFIED)
        as_specified = self._estimate(workload, stated_arm, metric, accounting, look)
        reason = self.trusted.get((workload, metric.name), "")
        fallback = get_metric(FALLBACK_METRIC)
        fallback_estimate = self._estimate(workload, arm, fallback, _accounting(fallback), look) if reason else None
        return ClaimResult(
            name=claim.name, kind=claim.kind, workload=workload, techniques=tuple(claim.techniques),
            claimed=float(claim.claimed), metric=metric.name, accounting=accounting, measured=measured,
            verdict=_verdict(measured, claim.claimed), finetune_only=finetune,
            finetune_verdict=_verdict(finetune, claim.claimed) if finetune else None,
            as_specified=as_specified, as_specified_verdict=_verdict(as_specified, claim.claimed) if as_specified
            else None,
            by_metric={name: self._estimate(workload, arm, get_metric(name), _accounting(get_metric(name)), look)
                       for name in ROW_METRICS},
            trusted=not reason, untrusted_reason=reason,
            fallback_verdict=_verdict(fallback_estimate, claim.claimed) if reason else None,
            activity=self.activity.get((workload, arm), ()) if arm else (),
            as_specified_activity=self.activity.get((workload, stated_arm), ()) if stated_arm else (),
            confidence=look.confidence,
            source=claim.source)

    def _estimate(self, workload: str, arm: str | None, metric: Metric, accounting: Accounting,
                  look: Look) -> SpeedupEstimate | None:
        if arm is None or metric not in self.table.metrics(workload):
            return None
        return estimate(self.table, workload, arm, metric, accounting, look.confidence,
                        max_pair_seeds=look.max_pair_seeds)

    def cumulative(self, claims: Sequence[Claim]) -> list[CumulativeRow]:
        """The seed's cumulative rows (claims of kind ``cumulative``, in file order) on every workload."""
        return [self._cumulative_row(workload, claim)
                for workload in self.table.workloads for claim in claims if claim.kind == "cumulative"]

    def _cumulative_row(self, workload: str, claim: Claim) -> CumulativeRow:
        judged = self.claim(workload, claim)
        alone = [arm_for(self.table, workload, [technique]) for technique in claim.techniques]
        stack = arm_for(self.table, workload, claim.techniques)
        product = interaction = None
        if judged.measured is not None and stack is not None and None not in alone:
            product, interaction = _interaction(self.table, workload, stack, alone, get_metric(judged.metric),
                                                judged.accounting, judged.confidence)
        return CumulativeRow(claim.name, workload, judged.techniques, judged.claimed, judged.measured, product,
                             None if interaction is None else interaction.speedup,
                             None if interaction is None else Interval(interaction.speedup_low,
                                                                       interaction.speedup_high))


def _accounting(metric: Metric) -> Accounting:
    return "all_in" if supports(metric, "all_in") else "finetune"


def _verdict(found: SpeedupEstimate | None, claimed: float) -> Verdict:
    if found is None or found.estimate.n_informative == 0:
        return NOT_MEASURED
    return verdict(found.interval, claimed)


def _interaction(table: CostTable, workload: str, stack: str, alone: Sequence[str], metric: Metric,
                 accounting: Accounting, confidence: float) -> tuple[float | None, CensoredEstimate | None]:
    """The product of the alone speedups and the interaction, on the seeds all arms share."""
    bounds = []  # a list, not a dict: a one-technique row's stack *is* its alone arm
    for arm in (stack, *alone):
        pairs = table.pair(workload, arm, metric, accounting)
        low, high = pairs.log_bounds()
        bounds.append({int(seed): (lo, hi) for seed, lo, hi in zip(pairs.baseline_seeds, low, high)})
    common = sorted(set.intersection(*(set(seeds) for seeds in bounds)))
    if not common:
        return None, None
    lows = [np.array([side[seed][0] for seed in common]) for side in bounds]
    highs = [np.array([side[seed][1] for seed in common]) for side in bounds]
    alone_points = [log_mean_interval(low, high, confidence).point for low, high in zip(lows[1:], highs[1:])]
    product = math.exp(sum(alone_points)) if all(math.isfinite(p) for p in alone_points) else None
    low, high = combine_bounds([1.0] + [-1.0] * len(alone), lows, highs)
    found = log_mean_interval(low, high, confidence)
    return product, (found if found.n_informative else None)


def trial_activity(trials: pd.DataFrame) -> dict[tuple[str, str], tuple[Activity, ...]]:
    """Per (workload, arm), what each technique's mechanism did: fired if it fired in any trial;
    the summary of a trial where it fired, else of the first trial."""
    activity: dict[tuple[str, str], tuple[Activity, ...]] = {}
    for (workload, arm), group in trials[trials["status"] != "failed"].groupby(["workload", "arm"], sort=False):
        stats = [json.loads(text) if isinstance(text, str) else {} for text in group["technique_stats"]]
        entries = []
        for technique in group["techniques"].iloc[0]:
            reports = [s.get(technique, {}).get("activity") for s in stats]
            reports = [r for r in reports if isinstance(r, dict)]
            if reports:
                fired = [r for r in reports if r.get("fired")]
                entries.append(Activity(technique, bool(fired), str((fired or reports)[0].get("summary", ""))))
        activity[(workload, arm)] = tuple(entries)
    return activity
