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

from step7bench.analysis.censored import look_sizes, spending_levels
from step7bench.analysis.claims import Judge, Look, arm_for
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
