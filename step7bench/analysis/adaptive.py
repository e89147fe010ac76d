"""Adaptive seeds (`run --adaptive`): which claims a look decides, and which arms need more seeds.

A fixed design spends the same seeds on every arm, decided or not. The adaptive one starts with
the suite's seeds and, at each look, adds a batch of seeds only to the arms that undecided claims
depend on (the claim's arm and the baseline it is paired with), until every verdict is decisive or
the suite's `max_seeds` is reached. Each look judges at its own confidence, 1 minus its share of
alpha under a Lan-DeMets spending function (`analysis.censored.spending_levels`); by the union
bound the chance of any wrong verdict over all looks stays under alpha (measured by simulation in
tests/analysis/test_censored.py). A claim decided at a look keeps that look's verdict: later seeds
added for other claims do not reopen it, and the report judges it with that look's seeds and
confidence (`Results.looks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from step7bench.analysis.censored import look_sizes, spending_levels
from step7bench.analysis.claims import ClaimResult, Judge, Look, arm_for
from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS
from step7bench.analysis.results import Results
from step7bench.analysis.speedups import BASELINE_ARM, CostTable
from step7bench.analysis.stats import INCONCLUSIVE
from step7bench.harness.claims import Claim


@dataclass(frozen=True)
class Design:
    """The looks' seed counts and the error spending, fixed before the first look."""

    initial: int
    batch: int
    max_seeds: int
    alpha: float = 0.05
    shape: str = "obrien-fleming"
    decided_at: Mapping[str, int] = field(default_factory=dict)  # "claim|workload" -> the look (1-based)

    @property
    def sizes(self) -> list[int]:
        return look_sizes(self.initial, self.batch, self.max_seeds)

    def look(self, number: int) -> Look:
        """Look `number` (1-based): its seeds and its confidence."""
        levels = spending_levels(len(self.sizes), self.alpha, self.shape)
        return Look(1 - levels[number - 1], self.sizes[number - 1])

    def record(self) -> dict[str, Any]:
        """What the run stores (the runs table's `adaptive` column), read back by `Results.looks`."""
        return {"initial": self.initial, "batch": self.batch, "max_seeds": self.max_seeds, "alpha": self.alpha,
                "shape": self.shape, "decided_at": dict(self.decided_at)}


def claim_key(name: str, workload: str) -> str:
    return f"{name}|{workload}"


def next_look(results: Results, claims: Sequence[Claim], design: Design, number: int) -> tuple[Design, dict]:
    """Judge the claims still open at look `number`; returns the design with the newly decided ones
    recorded, and the seeds the next look needs per (workload/preset, arm): empty when every claim
    is decided or this was the last look. A claim with no arm to judge is decided as not measured."""
    table = CostTable(results.trials, DEFAULT_DOWNSTREAM_TASKS)
    look = design.look(number)
    decided = dict(design.decided_at)
    needs: dict[tuple[str, str], int] = {}
    last = number == len(design.sizes)
    presets = dict(zip(results.trials["workload"], results.trials["preset"]))
    for claim in claims:
        for workload in table.workloads:
            key = claim_key(claim.name, workload)
            if key in decided:
                continue
            result = Judge(table, looks={(claim.name, workload): look}).claim(workload, claim)
            if last or result.verdict != INCONCLUSIVE:
                decided[key] = number
                continue
            arm = arm_for(table, workload, claim.techniques)
            for needed in (arm, BASELINE_ARM):
                needs[(f"{workload}/{presets[workload]}", needed)] = design.sizes[number]
    return Design(design.initial, design.batch, design.max_seeds, design.alpha, design.shape, decided), needs


@dataclass(frozen=True)
class Savings:
    """The device time of the arms an adaptive design could extend (each claim's arm and the
    baseline): what it spent, measured (each trial's elapsed time times its ranks, evaluation and
    start-up included), against a fixed design running every one of them at `max_seeds` from the
    start: an *estimate*, each arm's mean trial times `max_seeds`. The fixed design is at least as
    decisive: every verdict at `max_seeds` seeds and the whole alpha at one look."""

    max_seeds: int
    trials: int
    trials_fixed: int
    device_hours: float
    device_hours_fixed: float

    @property
    def saved_hours(self) -> float:
        return self.device_hours_fixed - self.device_hours


def savings(results: Results, claims: Sequence[ClaimResult]) -> Savings | None:
    """Savings of the latest adaptive design in `results`; None without one."""
    max_seeds = results.adaptive.get("max_seeds")
    if not max_seeds:
        return None
    arms = {(result.workload, result.measured.arm) for result in claims if result.measured is not None}
    arms |= {(workload, BASELINE_ARM) for workload, _ in arms}
    trials = results.trials
    device_s = _elapsed_s(trials) * trials["world_size"].fillna(1)
    spent = fixed = 0.0
    trials_spent = trials_fixed = 0
    for workload, arm in sorted(arms):
        mine = device_s[(trials["workload"] == workload) & (trials["arm"] == arm)]
        spent, trials_spent = spent + float(mine.sum()), trials_spent + len(mine)
        runs_fixed = max(max_seeds, len(mine))
        fixed, trials_fixed = fixed + float(mine.mean()) * runs_fixed, trials_fixed + runs_fixed
    return Savings(max_seeds, trials_spent, trials_fixed, spent / 3600, fixed / 3600)


def _elapsed_s(trials: pd.DataFrame) -> pd.Series:
    started = pd.to_datetime(trials["started_at"], format="ISO8601", utc=True)
    finished = pd.to_datetime(trials["finished_at"], format="ISO8601", utc=True)
    return (finished - started).dt.total_seconds()
