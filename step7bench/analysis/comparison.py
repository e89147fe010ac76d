"""Two results folders side by side: per workload, arm, metric and accounting, the median speedup
in A, in B, and the change B/A, marked by the gate's own rule.

The rule is the gate's, reused rather than restated: A's analysis is written as a baseline
(`gate.baseline_dict`) and B's estimates are compared with it (`gate.compare_estimates`), so on
one hardware class deterministic metrics change past `tolerance` (median or any seed) and noisy
ones only when `factor` and a Mann-Whitney test agree; across hardware classes deterministic
metrics use the drift-tolerant rule and noisy ones are not compared. The accountings are the
gate's (`finetune`, `all_in`; amortized is all-in scaled). Unlike the gate, nothing here fails:
an arm only one side has is shown as such, not as a regression.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from step7bench.analysis.gate import (GATED_ACCOUNTINGS, IMPROVED, REGRESSED, UNCHANGED, GateRow, Thresholds,
                                      baseline_dict, compare_estimates)
from step7bench.analysis.results import Analysis, analyze, load_results
from step7bench.analysis.speedups import SpeedupEstimate

ONLY_IN_A, ONLY_IN_B = "A only", "B only"
MARKS = (REGRESSED, IMPROVED, UNCHANGED, ONLY_IN_A, ONLY_IN_B)
"""A row's mark: the gate's -, + or ~ for a row both sides have, else which side has it."""


@dataclass(frozen=True)
class ComparisonRow:
    """One (workload, arm, metric, accounting): median speedups over each side's own baseline
    (None where that side lacks the arm), `change` = B / A, and the gate's `p_value` for a noisy
    metric tested."""

    workload: str
    arm: str
    metric: str
    accounting: str
    deterministic: bool
    speedup_a: float | None
    speedup_b: float | None
    change: float | None
    p_value: float | None
    mark: str
    reason: str

    @property
    def changed(self) -> bool:
        return self.mark != UNCHANGED


@dataclass(frozen=True)
class Comparison:
    """Every row, and the hardware class of each side (which decides the rule used)."""

    rows: list[ComparisonRow]
    class_a: str
    class_b: str

    @property
    def same_hardware(self) -> bool:
        return self.class_a == self.class_b

    @property
    def changed_rows(self) -> list[ComparisonRow]:
        return [row for row in self.rows if row.changed]

    def counts(self) -> dict[str, int]:
        return {mark: sum(row.mark == mark for row in self.rows) for mark in MARKS}


def compare_analyses(a: Analysis, b: Analysis, thresholds: Thresholds = Thresholds()) -> Comparison:
    """B against A by the gate's rule (see the module docstring)."""
    outcome = compare_estimates(baseline_dict(a), b.estimates, b.results.hardware_class, thresholds)
    rows = [_compared_row(row) for row in outcome.rows]
    seen = {_key(row) for row in rows}
    rows += [_only_in_b(estimate) for estimate in _gated(b.estimates) if _key(estimate) not in seen]
    return Comparison(rows, outcome.baseline_class, outcome.results_class)


def compare_folders(folder_a: Path, folder_b: Path, thresholds: Thresholds = Thresholds()) -> Comparison:
    """`compare_analyses` of two results folders (no claims judged)."""
    a = analyze(load_results(folder_a), claims=[])
    b = analyze(load_results(folder_b), claims=[])
    return compare_analyses(a, b, thresholds)


def _key(row: GateRow | ComparisonRow | SpeedupEstimate) -> tuple[str, str, str, str]:
    return row.workload, row.arm, row.metric, row.accounting


def _gated(estimates: Iterable[SpeedupEstimate]) -> list[SpeedupEstimate]:
    return [estimate for estimate in estimates if estimate.accounting in GATED_ACCOUNTINGS]


def _compared_row(row: GateRow) -> ComparisonRow:
    missing = row.current_median is None  # the gate's "missing from the results": B lacks the arm
    return ComparisonRow(*_key(row), deterministic=row.deterministic, speedup_a=row.baseline_median,
                         speedup_b=row.current_median, change=row.ratio, p_value=row.p_value,
                         mark=ONLY_IN_A if missing else row.mark, reason="not in B" if missing else row.reason)


def _only_in_b(estimate: SpeedupEstimate) -> ComparisonRow:
    return ComparisonRow(*_key(estimate), deterministic=estimate.deterministic, speedup_a=None,
                         speedup_b=estimate.median, change=None, p_value=None, mark=ONLY_IN_B, reason="not in A")
