"""`summary.json`: the analysis of a results folder as versioned, machine-readable data.

The layout is documented in the README ("summary.json"); bump `SCHEMA_VERSION` on any change
a reader could notice. JSON has no infinity: an infinite figure (a speedup where the baseline
missed the target) is written as the string "inf"; NaN is never written (an undefined figure
is null).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from importlib.metadata import version
from typing import Any

from step7bench.analysis.checks import AACheck, ControlComparison
from step7bench.analysis.claims import ClaimResult, CumulativeRow
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.stats import BOTH_MISSED_SPEEDUP, Interval

SCHEMA_VERSION = 1
PACKAGE_VERSION = version("step7bench")  # of the installed distribution, whatever the import path


def summary_dict(analysis: Analysis) -> dict[str, Any]:
    """The whole summary, JSON-ready (see the module docstring for infinities)."""
    return json_ready({
        "schema_version": SCHEMA_VERSION,
        "generated_by": f"step7bench {PACKAGE_VERSION}",
        "suite": _suite(analysis),
        "hardware": _hardware(analysis),
        "runs": _runs(analysis),
        "superseded_trials": analysis.results.superseded_trials,
        "statistics": {
            "aggregate": "median", "also_shown": "olympic_mean", "interval": "paired bootstrap percentile",
            "resamples": analysis.settings.resamples, "confidence": analysis.settings.confidence,
            "bootstrap_seed": analysis.settings.seed, "missed_target_cost": "inf",
            "both_missed_speedup": BOTH_MISSED_SPEEDUP, "downstream_tasks": analysis.downstream_tasks,
        },
        "arms": _arms(analysis.estimates),
        "claims": [_claim(result) for result in analysis.claims],
        "stack": _stack(analysis.cumulative),
        "cumulative": [_cumulative(row) for row in analysis.cumulative],
        "controls": [_control(comparison) for comparison in analysis.controls],
        "aa_check": [_aa(check) for check in analysis.aa],
        "measurement_trusted": not analysis.untrusted_metrics and bool(analysis.aa),
    })


def write_summary(analysis: Analysis, path: Path) -> Path:
    path.write_text(json.dumps(summary_dict(analysis), indent=2, allow_nan=False) + "\n")
    return path


def _suite(analysis: Analysis) -> dict[str, Any]:
    runs = analysis.results.runs
    names = sorted({str(n) for n in runs.get("suite_name", [])})
    hashes = sorted({str(h) for h in runs.get("suite_hash", [])})
    return {"name": names[0] if len(names) == 1 else names, "hash": hashes[0] if len(hashes) == 1 else hashes}


def _hardware(analysis: Analysis) -> dict[str, Any]:
    return {"hardware_class": analysis.results.hardware_class, "fingerprint": analysis.results.fingerprint}


def _runs(analysis: Analysis) -> list[dict[str, Any]]:
    keep = ["run_id", "started_at", "git_commit", "git_dirty", "torch_version", "python_version", "command_line"]
    runs = analysis.results.runs
    return [{key: row.get(key) for key in keep} for row in runs.to_dict("records")]


def _interval(interval: Interval | None) -> dict[str, Any]:
    return {"ci_low": interval.low if interval else None, "ci_high": interval.high if interval else None}


def _figures(found: SpeedupEstimate | None) -> dict[str, Any]:
    if found is None:
        return {"median": None, "olympic_mean": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
    return {"median": found.median, "olympic_mean": found.olympic_mean, **_interval(found.interval),
            "n_seeds": found.n_seeds, "n_arm_missed": found.n_arm_missed,
            "n_reference_missed": found.n_reference_missed, "n_failed": found.n_failed}


def _arms(estimates: list[SpeedupEstimate]) -> list[dict[str, Any]]:
    """One entry per (workload, arm); `speedups[accounting][metric]` holds its figures."""
    arms: dict[tuple[str, str], dict[str, Any]] = {}
    for found in estimates:
        entry = arms.setdefault((found.workload, found.arm), {
            "workload": found.workload, "arm": found.arm, "arm_kind": found.arm_kind,
            "techniques": found.techniques, "speedups": {}})
        entry["speedups"].setdefault(found.accounting, {})[found.metric] = {
            **_figures(found), "per_seed": list(found.per_seed), "seeds": list(found.seeds)}
    return list(arms.values())


def _claim(result: ClaimResult) -> dict[str, Any]:
    entry = {"name": result.name, "kind": result.kind, "workload": result.workload,
             "techniques": list(result.techniques), "claimed": result.claimed, "metric": result.metric,
             "accounting": result.accounting, **_figures(result.measured), "verdict": result.verdict}
    if result.finetune_only is not None:
        entry["finetune_only"] = {**_figures(result.finetune_only), "verdict": result.finetune_verdict}
    return entry


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
            "measured": measured.median if measured else None, **_interval(measured.interval if measured else None),
            "product_alone": row.product_alone, "interaction": row.interaction,
            **{f"interaction_{key}": value for key, value in _interval(row.interaction_interval).items()}})
    return entries


def _control(comparison: ControlComparison) -> dict[str, Any]:
    return {"workload": comparison.workload, "technique": comparison.technique, "control": comparison.control,
            "metric": comparison.metric, "technique_vs_baseline": _figures(comparison.technique_vs_baseline),
            "control_vs_baseline": _figures(comparison.control_vs_baseline),
            "technique_vs_control": _figures(comparison.technique_vs_control), "outcome": comparison.outcome}


def _aa(check: AACheck) -> dict[str, Any]:
    return {"workload": check.workload, "metric": check.metric, **_figures(check.measured),
            "holds_one": check.holds_one}


def json_ready(value: Any) -> Any:
    """Infinities as "inf"/"-inf", NaN as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
