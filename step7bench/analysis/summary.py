"""`summary.json`: the analysis of a results folder as versioned, machine-readable data.

The layout is documented in step7bench/report/README.md ("summary.json"); bump `SCHEMA_VERSION`
on any change a reader could notice. The file is standard JSON: no NaN, no Infinity token. An
undefined figure is null; an infinite one (an interval unbounded above, a speedup where only the
baseline missed) is null too, and the object holding it names it in its `infinite` member, e.g.
``{"ci_high": null, "infinite": {"ci_high": "inf"}}``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from importlib.metadata import version
from pathlib import Path
from typing import Any

from step7bench.analysis.adaptive import savings
from step7bench.analysis.checks import AACheck, ControlComparison, PositiveControl
from step7bench.analysis.claims import ClaimResult, CumulativeRow
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.stats import BOTH_MISSED_SPEEDUP, Interval

SCHEMA_VERSION = 2
PACKAGE_VERSION = version("step7bench")  # of the installed distribution, whatever the import path
INTERVAL_METHOD = ("censored log-normal model of per-seed log speedups (maximum likelihood; profile-likelihood "
                   "interval calibrated to equal the paired t-interval without censoring)")


def summary_dict(analysis: Analysis) -> dict[str, Any]:
    """The whole summary, JSON-ready (see the module docstring for infinities)."""
    return json_ready({
        "schema_version": SCHEMA_VERSION,
        "generated_by": f"step7bench {PACKAGE_VERSION}",
        "suite": summary_suite(analysis),
        "hardware": _hardware(analysis),
        "runs": summary_runs(analysis),
        "superseded_trials": analysis.results.superseded_trials,
        "partial": _partial(analysis),
        "statistics": {
            "aggregate": "geometric mean over seeds", "interval_method": INTERVAL_METHOD,
            "confidence": analysis.confidence, "missed_target": "right-censored at what the trial spent",
            "gate_per_seed_both_missed": BOTH_MISSED_SPEEDUP, "downstream_tasks": analysis.downstream_tasks,
            "adaptive": analysis.results.adaptive or None,
        },
        "adaptive_savings": _savings(analysis),
        "instrument_trusted": analysis.instrument_trusted,
        "measurement_trusted": not analysis.untrusted_metrics and bool(analysis.aa),
        "positive_controls": [_positive(control) for control in analysis.positive_controls],
        "aa_check": [_aa(check) for check in analysis.aa],
        "claims": [_claim(analysis, result) for result in analysis.claims],
        "stack": _stack(analysis.cumulative),
        "cumulative": [_cumulative(row) for row in analysis.cumulative],
        "controls": [_control(comparison) for comparison in analysis.controls],
        "arms": _arms(analysis),
        "tuning": analysis.results.calibration,
    })


def write_summary(analysis: Analysis, path: Path) -> Path:
    path.write_text(json.dumps(summary_dict(analysis), indent=2, allow_nan=False) + "\n")
    return path


def summary_suite(analysis: Analysis) -> dict[str, Any]:
    runs = analysis.results.runs
    names = sorted({str(n) for n in runs.get("suite_name", [])})
    hashes = sorted({str(h) for h in runs.get("suite_hash", [])})
    return {"name": names[0] if len(names) == 1 else names, "hash": hashes[0] if len(hashes) == 1 else hashes}


def _hardware(analysis: Analysis) -> dict[str, Any]:
    return {"hardware_class": analysis.results.hardware_class, "fingerprint": analysis.results.fingerprint}


def summary_runs(analysis: Analysis) -> list[dict[str, Any]]:
    keep = ["run_id", "started_at", "git_commit", "git_dirty", "torch_version", "python_version", "command_line",
            "jobs", "overrides"]
    runs = analysis.results.runs
    return [{key: row.get(key) for key in keep if key in row} for row in runs.to_dict("records")]


def _partial(analysis: Analysis) -> dict[str, Any]:
    """Whether a deadline left the matrix unfinished, what it left, and which claims lack arms."""
    missing = analysis.results.past_deadline
    unmeasured = sorted({f"{c.name} ({c.workload})" for c in analysis.claims if c.measured is None})
    return {"is_partial": bool(missing), "trials_not_started": missing,
            "claims_without_arms": unmeasured if missing else []}


def _savings(analysis: Analysis) -> dict[str, Any] | None:
    found = savings(analysis.results, analysis.claims)
    if found is None:
        return None
    return {**dataclasses.asdict(found), "saved_hours": found.saved_hours,
            "method": "measured: the adaptive run's trials of the claims' arms and the baseline (elapsed x ranks); "
                      "fixed: estimated, each such arm's mean trial x max_seeds"}


def _interval(interval: Interval | None) -> dict[str, Any]:
    return {"ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}


def _figures(found: SpeedupEstimate | None) -> dict[str, Any]:
    if found is None:
        return {"speedup": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
    return {"speedup": found.point, **_interval(found.interval), "median_per_seed": found.median,
            "n_seeds": found.n_seeds, "n_reached": found.n_reached, "n_missed": found.n_arm_missed,
            "n_reference_missed": found.n_reference_missed, "n_both_missed": found.n_both_missed,
            "censored": found.censored, "bound_if_all_missed": found.upper_bound, "n_failed": found.n_failed,
            "interval_method": found.estimate.method}


def _per_seed(found: SpeedupEstimate) -> list[dict[str, Any]]:
    return [{"seed": seed, "speedup_low": low, "speedup_high": high}
            for seed, low, high in zip(found.seeds, found.per_seed_low, found.per_seed_high)]


def _arms(analysis: Analysis) -> list[dict[str, Any]]:
    """One entry per (workload, arm): `speedups[accounting][metric]` holds its figures, `activity`
    what each technique's mechanism did, `settings` what its techniques ran with."""
    activity = analysis.activity  # the same activity the verdicts read
    arms: dict[tuple[str, str], dict[str, Any]] = {}
    for found in analysis.estimates:
        entry = arms.setdefault((found.workload, found.arm), {
            "workload": found.workload, "arm": found.arm, "arm_kind": found.arm_kind,
            "techniques": list(found.techniques), "settings": analysis.results.arm_settings(found.workload, found.arm),
            "activity": [vars(a) for a in activity.get((found.workload, found.arm), ())], "speedups": {}})
        entry["speedups"].setdefault(found.accounting, {})[found.metric] = {
            **_figures(found), "per_seed": _per_seed(found)}
    return list(arms.values())


def _claim(analysis: Analysis, result: ClaimResult) -> dict[str, Any]:
    measured = result.measured
    entry = {"name": result.name, "source": result.source, "kind": result.kind, "workload": result.workload,
             "techniques": list(result.techniques), "claimed": result.claimed, "metric": result.metric,
             "accounting": result.accounting, **_figures(measured), "verdict": result.verdict,
             "trusted": result.trusted, "untrusted_reason": result.untrusted_reason or None,
             "flops_verdict_if_untrusted": result.fallback_verdict, "confidence": result.confidence,
             "seeds_used": result.seeds_used, "n_reached": measured.n_reached if measured else 0,
             "n_missed": measured.n_arm_missed if measured else 0, "censored": measured.censored if measured else False,
             "interval_method": measured.estimate.method if measured else None,
             "by_metric": {name: _figures(found) for name, found in result.by_metric.items()},
             "inactive": [vars(a) for a in result.inactive],
             "tuned": {**_figures(measured), "verdict": result.verdict,
                       "settings": _settings(analysis, result.workload, measured)},
             "as_specified": {**_figures(result.as_specified), "verdict": result.as_specified_verdict,
                              "settings": _settings(analysis, result.workload, result.as_specified),
                              "inactive": [vars(a) for a in result.as_specified_inactive]}}
    if result.finetune_only is not None:
        entry["finetune_only"] = {**_figures(result.finetune_only), "verdict": result.finetune_verdict}
    return entry


def _settings(analysis: Analysis, workload: str, found: SpeedupEstimate | None) -> dict[str, Any] | None:
    return analysis.results.arm_settings(workload, found.arm) if found else None


def _cumulative(row: CumulativeRow) -> dict[str, Any]:
    return {"name": row.name, "workload": row.workload, "techniques": list(row.techniques), "claimed": row.claimed,
            "measured": _figures(row.measured), "product_alone": row.product_alone,
            "interaction": row.interaction, "interaction_interval": _interval(row.interaction_interval)}


def _stack(rows: list[CumulativeRow]) -> list[dict[str, Any]]:
    """Per workload, the last cumulative row: the seed's whole stack against its claimed product."""
    entries = []
    for row in {row.workload: row for row in rows}.values():
        measured = row.measured
        entries.append({
            "workload": row.workload, "techniques": list(row.techniques), "claimed_product": row.claimed,
            "measured": measured.point if measured else None, **_interval(measured.interval if measured else None),
            "product_alone": row.product_alone, "interaction": row.interaction,
            **{f"interaction_{key}": value for key, value in _interval(row.interaction_interval).items()}})
    return entries


def _control(comparison: ControlComparison) -> dict[str, Any]:
    return {"workload": comparison.workload, "technique": comparison.technique, "control": comparison.control,
            "metric": comparison.metric, "technique_vs_baseline": _figures(comparison.technique_vs_baseline),
            "control_vs_baseline": _figures(comparison.control_vs_baseline),
            "technique_vs_control": _figures(comparison.technique_vs_control), "logrank_p": comparison.p_value,
            "outcome": comparison.outcome}


def _aa(check: AACheck) -> dict[str, Any]:
    return {"workload": check.workload, "metric": check.metric, **_figures(check.measured),
            "holds_one": check.holds_one}


def _positive(control: PositiveControl) -> dict[str, Any]:
    return {"name": control.name, "workload": control.workload, "metric": control.metric,
            "expected": control.expected, "measured": control.measured.point if control.measured else None,
            "ci_low": control.ci_low, "ci_high": control.ci_high, "holds": control.holds, "detail": control.detail}


def json_ready(value: Any) -> Any:
    """Standard JSON values: numpy scalars as Python numbers, NaN as null, an infinite number as
    null named in its object's `infinite` member (in a list, plain null)."""
    if isinstance(value, dict):
        ready = {str(key): json_ready(item) for key, item in value.items()}
        infinite = {str(key): ("inf" if item > 0 else "-inf") for key, item in value.items()
                    if isinstance(_scalar(item), float) and math.isinf(_scalar(item))}
        if infinite:
            ready["infinite"] = {**ready.get("infinite", {}), **infinite}
        return ready
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    value = _scalar(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes, dict, list, tuple)):
        return value.item()
    return value
