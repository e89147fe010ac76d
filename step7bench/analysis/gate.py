"""The CI gate: each arm's speedups against a committed baseline file.

- Deterministic metrics (steps, examples, tokens, FLOPs: identical for a seed on the CPU) must
  match: a median speedup more than `tolerance` (relative) below the baseline's is a
  regression (-), more than `tolerance` above an improvement (+), else unchanged (~). Not so
  where a paired trial, now or in the baseline, stopped on its wall-clock budget
  (`max_seconds`): how far it got depends on the machine's speed, so the entry is marked ~
  and says why.
- Noisy metrics (wall-clock, device-hours, energy) change only when the ratio of medians passes
  `factor` *and* a one-sided Mann-Whitney U test on the per-seed speedups agrees at `alpha`,
  as airspeed velocity (asv) decides "changed"; otherwise they are marked ~. With two seeds
  per side the smallest attainable p-value is 1/6, so a noisy metric of the smoke suite can
  never fail the gate: only the deterministic ones can, which is what a CI gate should trust.

A baseline from another hardware class is refused: wall-clock and energy do not transfer.
Arms or metrics the baseline has and the results lack are regressions (the suite lost them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu

from step7bench.analysis.formatting import number
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.summary import json_ready, summary_dict
from step7bench.errors import UserError

BASELINE_KIND = "step7bench-baseline"
BASELINE_SCHEMA_VERSION = 1

DEFAULT_TOLERANCE = 1e-3
"""Relative change of a deterministic metric's median speedup that still counts as equal: it
absorbs float rounding of the ratio, nothing a changed trajectory could hide in."""
DEFAULT_FACTOR = 1.1  # asv's default threshold for a noisy change
DEFAULT_ALPHA = 0.05

IMPROVED, REGRESSED, UNCHANGED = "+", "-", "~"
TIME_BOUND_REASON = "time-bound"
GATED_ACCOUNTINGS = ("finetune", "all_in")  # amortized is all-in scaled: gating it twice adds nothing


def baseline_dict(analysis: Analysis) -> dict[str, Any]:
    """A baseline file's content: provenance, and per (workload, arm, metric, accounting) the
    median speedup and the per-seed speedups the significance test needs."""
    summary = summary_dict(analysis)
    entries = [{"workload": e.workload, "arm": e.arm, "metric": e.metric, "accounting": e.accounting,
                "median": e.median, "per_seed": list(e.per_seed), "time_bound_trials": e.n_time_bound}
               for e in analysis.estimates if e.accounting in GATED_ACCOUNTINGS]
    return {"kind": BASELINE_KIND, "schema_version": BASELINE_SCHEMA_VERSION, "suite": summary["suite"],
            "hardware_class": summary["hardware"]["hardware_class"], "fingerprint": summary["hardware"]["fingerprint"],
            "runs": summary["runs"], "entries": json_ready(entries)}


def save_baseline(analysis: Analysis, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(baseline_dict(analysis), indent=1, allow_nan=False) + "\n")
    return path


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and check a baseline file; anything wrong with it is a UserError naming the file."""
    try:
        baseline = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: baseline file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a JSON baseline ({exc})") from None
    if not isinstance(baseline, dict) or baseline.get("kind") != BASELINE_KIND:
        raise UserError(f"{path}: not a step7bench baseline (no \"kind\": \"{BASELINE_KIND}\")")
    if baseline.get("schema_version") != BASELINE_SCHEMA_VERSION:
        raise UserError(f"{path}: baseline schema version {baseline.get('schema_version')!r} is not "
                        f"{BASELINE_SCHEMA_VERSION}; save the baseline again")
    return baseline


@dataclass(frozen=True)
class GateRow:
    """One arm and metric compared. `ratio` = current median / baseline median (None when missing)."""

    workload: str
    arm: str
    metric: str
    accounting: str
    deterministic: bool
    baseline_median: float
    current_median: float | None
    ratio: float | None
    p_value: float | None
    mark: str
    reason: str


@dataclass(frozen=True)
class GateOutcome:
    rows: list[GateRow]
    not_in_baseline: int

    @property
    def regressed(self) -> bool:
        return any(row.mark == REGRESSED for row in self.rows)


def compare(baseline: dict[str, Any], analysis: Analysis, *, allow_other_hardware: bool = False,
            tolerance: float = DEFAULT_TOLERANCE, factor: float = DEFAULT_FACTOR,
            alpha: float = DEFAULT_ALPHA) -> GateOutcome:
    """Each baseline entry against the same arm, metric and accounting in `analysis`."""
    _check_comparable(baseline, analysis, allow_other_hardware)
    current = {(e.workload, e.arm, e.metric, e.accounting): e for e in analysis.estimates}
    rows, seen = [], set()
    for entry in baseline["entries"]:
        key = (entry["workload"], entry["arm"], entry["metric"], entry["accounting"])
        seen.add(key)
        rows.append(_compare_entry(entry, current.get(key), tolerance, factor, alpha))
    extra = sum(1 for key, e in current.items() if key not in seen and e.accounting in GATED_ACCOUNTINGS)
    return GateOutcome(rows, extra)


def _check_comparable(baseline: dict[str, Any], analysis: Analysis, allow_other_hardware: bool) -> None:
    ours = analysis.results.hardware_class
    theirs = baseline.get("hardware_class")
    if theirs != ours and not allow_other_hardware:
        raise UserError(f"baseline was measured on hardware class {theirs!r}, these results on {ours!r}; "
                        "pass --allow-other-hardware to compare anyway")
    suites = {str(name) for name in analysis.results.runs.get("suite_name", [])}
    wanted = (baseline.get("suite") or {}).get("name")
    if isinstance(wanted, str) and suites and suites != {wanted}:
        raise UserError(f"baseline is of suite {wanted!r}, these results of {', '.join(sorted(suites))}")


def _compare_entry(entry: dict[str, Any], found: SpeedupEstimate | None, tolerance: float, factor: float,
                   alpha: float) -> GateRow:
    deterministic = get_metric(entry["metric"]).deterministic
    base_median = float(entry["median"])
    row = dict(workload=entry["workload"], arm=entry["arm"], metric=entry["metric"], accounting=entry["accounting"],
               deterministic=deterministic, baseline_median=base_median)
    if found is None:
        return GateRow(**row, current_median=None, ratio=None, p_value=None, mark=REGRESSED,
                       reason="missing from the results")
    ratio = _ratio(found.median, base_median)
    time_bound = found.n_time_bound + int(entry.get("time_bound_trials", 0))  # older baselines lack it
    if deterministic and time_bound:
        mark, p_value = UNCHANGED, None
        reason = f"{TIME_BOUND_REASON}: {time_bound} paired trial(s) stopped on max_seconds, not compared exactly"
    elif deterministic:
        mark = REGRESSED if ratio < 1 - tolerance else IMPROVED if ratio > 1 + tolerance else UNCHANGED
        reason = f"deterministic, tolerance {tolerance:g}"
        p_value = None
    else:
        mark, p_value = _noisy_mark(ratio, found.per_seed, [float(v) for v in entry["per_seed"]], factor, alpha)
        reason = f"noisy: factor {factor:g} and Mann-Whitney p < {alpha:g}"
    return GateRow(**row, current_median=found.median, ratio=ratio, p_value=p_value, mark=mark, reason=reason)


def _ratio(current: float, baseline: float) -> float:
    """current / baseline, with equal values (also 0 and inf) as 1 and x/0 as inf."""
    if current == baseline:
        return 1.0
    if baseline == 0 or math.isinf(current):
        return math.inf
    return current / baseline


def _noisy_mark(ratio: float, current: tuple[float, ...], baseline: list[float], factor: float,
                alpha: float) -> tuple[str, float | None]:
    if ratio < 1 / factor:
        p_value = float(mannwhitneyu(current, baseline, alternative="less").pvalue)
        return (REGRESSED if p_value < alpha else UNCHANGED), p_value
    if ratio > factor:
        p_value = float(mannwhitneyu(current, baseline, alternative="greater").pvalue)
        return (IMPROVED if p_value < alpha else UNCHANGED), p_value
    return UNCHANGED, None


def format_table(outcome: GateOutcome) -> str:
    """The gate's verdict as plain text: one line per arm and metric, then a count."""
    header = f"{'':1} {'workload':<14} {'arm':<48} {'metric':<18} {'acct':<8} {'baseline':>9} {'now':>9} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for row in outcome.rows:
        lines.append(f"{row.mark:1} {row.workload:<14} {row.arm:<48} {row.metric:<18} {row.accounting:<8} "
                     f"{_number(row.baseline_median):>9} {_number(row.current_median):>9} {_number(row.ratio):>7}"
                     + (f"  p={row.p_value:.3f}" if row.p_value is not None else "")
                     + ("  " + row.reason if row.current_median is None or row.reason.startswith(TIME_BOUND_REASON)
                        else ""))
    counts = {mark: sum(row.mark == mark for row in outcome.rows) for mark in (IMPROVED, REGRESSED, UNCHANGED)}
    lines.append(f"{counts[REGRESSED]} regressed (-), {counts[IMPROVED]} improved (+), {counts[UNCHANGED]} unchanged "
                 f"or not significant (~); {outcome.not_in_baseline} not in the baseline (not gated)")
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return number(value, 3, absent="-", infinite="inf")
