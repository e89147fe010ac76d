"""`index.html`: one self-contained page (figures inlined as data URIs, no script, no network),
so it opens from disk, from an archive or from a CI artifact alike.

This module turns the analysis into rows of display strings; the template only lays them out.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

import jinja2

from step7bench.analysis.checks import AACheck, ControlComparison
from step7bench.analysis.claims import ClaimResult, CumulativeRow
from step7bench.analysis.formatting import number
from step7bench.analysis.metrics import METRICS, get_metric
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.stats import Interval
from step7bench.analysis.summary import PACKAGE_VERSION
from step7bench.report.figures import FigureFile

_ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("step7bench.report", "templates"),
                                  autoescape=jinja2.select_autoescape(("html", "j2")), undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)


def render(analysis: Analysis, figures: dict[str, FigureFile]) -> str:
    """The page's HTML."""
    return _ENVIRONMENT.get_template("index.html.j2").render(
        version=PACKAGE_VERSION, confidence=analysis.confidence, downstream_tasks=analysis.downstream_tasks,
        claims=[_claim_row(c) for c in analysis.claims],
        cumulative=[_cumulative_row(r) for r in analysis.cumulative],
        aa=[_aa_row(c) for c in analysis.aa], untrusted=analysis.untrusted_metrics, has_aa=bool(analysis.aa),
        controls=[_control_row(c) for c in analysis.controls],
        transfer=_transfer_rows(analysis.estimates),
        speedups=_speedup_table(analysis.estimates),
        figures={name: {"src": _data_uri(f), "caption": f.caption, "file": f.path.name} for name, f in figures.items()},
        provenance=_provenance(analysis), superseded=analysis.results.superseded_trials,
        energy_methods=sorted({str(m) for m in analysis.results.trials["energy_method"].dropna().unique()}),
        statuses=analysis.results.trials.groupby(["workload", "status"]).size().reset_index(name="n")
        .to_dict("records"))


def _data_uri(figure: FigureFile) -> str:
    return "data:image/png;base64," + base64.b64encode(figure.path.read_bytes()).decode("ascii")


def interval(found: Interval | None) -> str:
    return "—" if found is None or math.isnan(found.low) else f"[{number(found.low)}, {number(found.high)}]"


def _measured(found: SpeedupEstimate | None) -> dict[str, str]:
    if found is None:
        return {"median": "—", "interval": "—", "seeds": "0", "missed": ""}
    missed = []
    if found.n_arm_missed:
        missed.append(f"arm missed on {found.n_arm_missed}")
    if found.n_reference_missed:
        missed.append(f"reference missed on {found.n_reference_missed}")
    if found.n_failed:
        missed.append(f"{found.n_failed} failed trial(s) left out")
    return {"median": speedup_text(found), "interval": interval(found.interval), "seeds": str(found.n_seeds),
            "missed": "; ".join(missed)}


def speedup_text(found: SpeedupEstimate) -> str:
    """The speedup as read: a number, or for an arm that missed everywhere "missed k/k (< bound)"."""
    if found.n_arm_missed == found.n_seeds:
        return f"missed {found.n_arm_missed}/{found.n_seeds} (< {number(found.upper_bound)})"
    return number(found.point)


def _claim_row(result: ClaimResult) -> dict[str, Any]:
    metric = get_metric(result.metric)
    row = {"name": result.name, "kind": result.kind, "workload": result.workload,
           "claimed": number(result.claimed), "metric": metric.label,
           "accounting": result.accounting.replace("_", "-"), "verdict": result.verdict,
           "css": result.verdict.lower().replace(" ", "-"), **_measured(result.measured), "finetune": None}
    if result.finetune_only is not None:
        row["finetune"] = {**_measured(result.finetune_only), "verdict": result.finetune_verdict,
                           "css": (result.finetune_verdict or "").lower()}
    return row


def _cumulative_row(row: CumulativeRow) -> dict[str, Any]:
    return {"name": row.name, "workload": row.workload, "techniques": " + ".join(row.techniques),
            "claimed": number(row.claimed), **_measured(row.measured), "product": number(row.product_alone),
            "interaction": number(row.interaction, absent="undefined"),
            "interaction_interval": interval(row.interaction_interval)}


def _aa_row(check: AACheck) -> dict[str, Any]:
    return {"workload": check.workload, "metric": get_metric(check.metric).label, **_measured(check.measured),
            "holds": check.holds_one}


def _control_row(comparison: ControlComparison) -> dict[str, Any]:
    return {"workload": comparison.workload, "technique": comparison.technique, "control": comparison.control,
            "metric": get_metric(comparison.metric).label,
            "technique_speedup": _measured(comparison.technique_vs_baseline),
            "control_speedup": _measured(comparison.control_vs_baseline),
            "over_control": _measured(comparison.technique_vs_control), "outcome": comparison.outcome or "—"}


def _transfer_rows(estimates: Sequence[SpeedupEstimate]) -> list[dict[str, Any]]:
    """Arms whose all-in cost differs from finetune-only: each accounting side by side."""
    by_key = {(e.workload, e.arm, e.metric, e.accounting): e for e in estimates}
    rows = []
    for (workload, arm, metric, accounting), found in by_key.items():
        if accounting != "finetune" or (workload, arm, metric, "all_in") not in by_key:
            continue
        all_in = by_key[(workload, arm, metric, "all_in")]
        if all_in.per_seed == found.per_seed:
            continue  # no pretraining in this arm
        rows.append({"workload": workload, "arm": arm, "metric": get_metric(metric).label,
                     "finetune": _measured(found), "all_in": _measured(all_in),
                     "amortized": _measured(by_key.get((workload, arm, metric, "amortized")))})
    return rows


def _speedup_table(estimates: Sequence[SpeedupEstimate]) -> dict[str, Any]:
    """Every arm against every metric (finetune accounting): "median [low, high]"."""
    metrics = [m for m in METRICS if any(e.metric == m.name for e in estimates)]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for found in estimates:
        if found.accounting == "finetune":
            cells.setdefault((found.workload, found.arm), {})[found.metric] = (
                f"{speedup_text(found)} {interval(found.interval)}")
    rows = [{"workload": workload, "arm": arm, "cells": [values.get(m.name, "—") for m in metrics]}
            for (workload, arm), values in cells.items()]
    return {"metrics": [m.label for m in metrics], "rows": rows}


def _provenance(analysis: Analysis) -> dict[str, Any]:
    runs = analysis.results.runs
    keep = ["run_id", "started_at", "suite_name", "suite_hash", "git_commit", "git_dirty", "torch_version",
            "python_version", "hardware_class", "command_line"]
    return {"runs": [{key: ("" if row.get(key) is None else str(row.get(key))) for key in keep}
                     for row in runs.to_dict("records")],
            "columns": keep, "fingerprint": analysis.results.fingerprint or {}}
