"""What `run` prints at the end, from the same analysis and in the same words as the report
(report/display.py): per workload and arm, the speedup over the baseline with misses counted as
censored outcomes (never dropped, never 0), then the instrument's checks, then a verdict on every
claim. A median over only the trials that reached the target would flatter an arm that mostly
missed; these figures do not."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.report import display

ARM_METRICS = (("steps", "steps"), ("flops", "FLOPs"), ("device_hours", "device time"))
"""The speedups shown per arm: counts first (the same on every run of a seed), then time."""
ALL_IN = "all_in"


def print_run_summary(analysis: Analysis, console: Console) -> None:
    """The three tables; a folder with nothing to compare (no baseline) prints a line saying so."""
    if not analysis.estimates:
        console.print("no speedups: the results hold no baseline trials to compare with")
        return
    console.print(speedup_table(analysis))
    console.print(instrument_table(analysis))
    if analysis.claims:
        console.print(verdict_table(analysis))


def speedup_table(analysis: Analysis) -> Table:
    table = Table(title=f"speedup over the baseline (all-in; geometric mean and {_percent(analysis)} interval; "
                        "misses counted)")
    for column in ("workload", "arm", "kind", "reached"):
        table.add_column(column)
    for _, label in ARM_METRICS:
        table.add_column(label, justify="right")
    by_arm = _by_arm(analysis.estimates)
    for (workload, arm), by_metric in by_arm.items():
        first = next(iter(by_metric.values()))
        table.add_row(workload, arm, first.arm_kind, display.reached(by_metric.get("steps", first)),
                      *(display.speedup_with_interval(by_metric.get(metric)) for metric, _ in ARM_METRICS))
    return table


def instrument_table(analysis: Analysis) -> Table:
    """Can the instrument be trusted: the A/A arm holds 1, the positive controls find their speedups."""
    table = Table(title="can this instrument see a real speedup?")
    for column in ("workload", "check", "expected", "measured", "holds"):
        table.add_column(column)
    shown = {metric for metric, _ in ARM_METRICS}
    for check in (check for check in analysis.aa if check.metric in shown):
        table.add_row(check.workload, f"A/A on {check.metric}", "1×",
                      display.speedup_with_interval(check.measured), _yes(check.holds_one))
    for control in analysis.positive_controls:
        table.add_row(control.workload, control.name, display.factor(control.expected),
                      display.speedup_with_interval(control.measured), _yes(control.holds))
    return table


def verdict_table(analysis: Analysis) -> Table:
    table = Table(title="verdicts (tuned settings; as the seed specifies them beside)")
    for column in ("claim", "workload", "claimed", "measured", "verdict", "reached", "as specified"):
        table.add_column(column)
    for claim in analysis.claims:
        verdict = claim.verdict if claim.trusted else f"{claim.verdict} (untrusted; FLOPs: {claim.fallback_verdict})"
        if claim.inactive:
            verdict += " (inactive)"
        as_specified = (f"{display.speedup_with_interval(claim.as_specified)} {claim.as_specified_verdict}"
                        if claim.as_specified_verdict else "")
        if as_specified and claim.as_specified_inactive:
            as_specified += " (inactive)"
        table.add_row(claim.name, claim.workload, display.factor(claim.claimed),
                      display.speedup_with_interval(claim.measured), verdict, display.reached(claim.measured),
                      as_specified)
    return table


def _by_arm(estimates: Iterable[SpeedupEstimate]) -> dict[tuple[str, str], dict[str, SpeedupEstimate]]:
    """The all-in estimate of each arm and metric (finetune where the metric has no pretraining)."""
    wanted = {metric for metric, _ in ARM_METRICS}
    by_arm: dict[tuple[str, str], dict[str, SpeedupEstimate]] = {}
    for found in estimates:
        if found.metric not in wanted or found.accounting == "amortized":
            continue
        metrics = by_arm.setdefault((found.workload, found.arm), {})
        if found.accounting == ALL_IN or found.metric not in metrics:
            metrics[found.metric] = found
    return by_arm


def _percent(analysis: Analysis) -> str:
    return f"{analysis.confidence:.0%}"


def _yes(holds: bool) -> str:
    return "yes" if holds else "NO"
