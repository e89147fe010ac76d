"""`index.html`: one self-contained page (figures inlined as data URIs, no script, no network),
so it opens from disk, from an archive or from a CI artifact alike.

The page leads with what a reader came for and folds the rest: a warning at the top when the
instrument is not to be trusted or the matrix is partial; the verdict on each claim; the
instrument's own checks (can it see a known speed-up, does noise alone fake one); the seed's
cumulative table; one section per technique (its curves against the baseline and its random
control, what its mechanism did, its settings, its costs, its control comparison); every arm;
costs; provenance; how each number is measured.

This module turns the analysis into rows of display strings; the template only lays them out.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from step7bench.analysis.adaptive import Savings, savings
from step7bench.analysis.checks import BEATS, LOSES, TIES, AACheck, ControlComparison, PositiveControl
from step7bench.analysis.claims import Activity, ClaimResult, CumulativeRow
from step7bench.analysis.metrics import METRICS, get_metric, supports
from step7bench.analysis.results import Analysis
from step7bench.analysis.speedups import SpeedupEstimate
from step7bench.analysis.stats import DEFAULT_CONFIDENCE, NOT_MEASURED
from step7bench.analysis.summary import PACKAGE_VERSION
from step7bench.metric_names import PRETRAIN_COLUMNS
from step7bench.report import display
from step7bench.report.arms import ROLE_LABELS, TechniqueArms, technique_arms
from step7bench.report.figures import (FigureFile, energy_is_estimate, headline_claims, technique_figure,
                                       tuning_records)

_ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("step7bench.report", "templates"),
                                  autoescape=jinja2.select_autoescape(("html", "j2")), undefined=jinja2.StrictUndefined,
                                  trim_blocks=True, lstrip_blocks=True)

SHORT_METRICS = {"steps": "steps", "flops": "FLOPs", "device_hours": "device time", "wall_s": "wall-clock",
                 "energy_j": "energy"}
ROW_METRICS = ("steps", "flops", "device_hours")
"""The metrics every claim row and control comparison shows; the others are folded."""
METRIC_ORDER = {m.name: i for i, m in enumerate(METRICS)}


def breakable(text: object) -> Markup:
    """Escaped text with break opportunities after '+', '_', '/', ',', '=' and '-', so an arm's
    name, a hash or a command line wraps inside its cell instead of widening the page."""
    escaped = str(escape(str(text)))
    return Markup(re.sub(r"([+_/,=\-:.])", r"\1<wbr>", escaped))


_ENVIRONMENT.filters["breakable"] = breakable


def render(analysis: Analysis, figures: dict[str, FigureFile]) -> str:
    """The page's HTML."""
    return _ENVIRONMENT.get_template("index.html.j2").render(**page(analysis, figures))


def page(analysis: Analysis, figures: dict[str, FigureFile]) -> dict[str, Any]:
    """Everything the template lays out, as display strings."""
    results = analysis.results
    trials = results.trials
    headline = headline_claims(analysis.claims)
    reached = trials.groupby("workload")["status"].apply(lambda s: bool((s == "reached").any()))
    unreached = {w for w, any_reached in reached.items() if not any_reached}
    cumulative_names = {(c.name, c.workload) for c in analysis.claims if c.kind == "cumulative"}
    techniques = [_technique(entry, analysis, figures) for entry in technique_arms(trials)]
    sections = {
        "claims": [_claim_row(c, unreached, analysis.confidence) for c in headline],
        "claims_as_specified": any(c.as_specified is not None for c in headline),
        "cumulative_in_table": bool(cumulative_names) and len(headline) != len(analysis.claims),
        "cumulative": [_cumulative_row(r, analysis.claims) for r in analysis.cumulative],
        "instrument": _instrument(analysis),
        "techniques": techniques,
        "arms": _arms_table(analysis),
        "statuses": trials.groupby(["workload", "status"]).size().reset_index(name="n").to_dict("records"),
    }
    energy_methods = sorted({str(m) for m in trials.get("energy_method", pd.Series(dtype=object)).dropna().unique()})
    return {
        "version": PACKAGE_VERSION, "confidence": analysis.confidence, "downstream_tasks": analysis.downstream_tasks,
        "overview": _overview(analysis),
        "alerts": _alerts(analysis),
        "toc": _toc(sections),
        **sections,
        "figures": {name: {"src": _data_uri(f), "caption": f.caption, "file": f.path.name}
                    for name, f in figures.items()},
        "energy_estimate": energy_is_estimate(trials),
        "provenance": _provenance(analysis), "superseded": results.superseded_trials,
        "energy_methods": energy_methods,
    }


def _data_uri(figure: FigureFile) -> str:
    return "data:image/png;base64," + base64.b64encode(figure.path.read_bytes()).decode("ascii")


def _css(verdict: str | None) -> str:
    return (verdict or "").lower().replace(" ", "-")


def _metric_name(name: str) -> str:
    return SHORT_METRICS.get(get_metric(name).name, get_metric(name).label)


def _judged_on(result: ClaimResult) -> str:
    """"device time, all-in" (pretraining counted), or the metric alone where it has no pretraining side."""
    return _metric_name(result.metric) + (", all-in" if result.accounting == "all_in" else "")


# -- the top of the page -----------------------------------------------------------------------


def _overview(analysis: Analysis) -> dict[str, Any]:
    trials = analysis.results.trials
    counts: dict[str, int] = {}
    for claim in analysis.claims:
        counts[claim.verdict] = counts.get(claim.verdict, 0) + 1
    seeds = trials.loc[trials["arm_kind"] != "aa", "seed"].nunique()
    runs = analysis.results.runs
    suites = sorted({str(n) for n in runs.get("suite_name", []) if isinstance(n, str)})
    return {"suite": ", ".join(suites) or "—", "workloads": sorted(trials["workload"].unique()),
            "seeds": int(seeds), "trials": len(trials), "arms": trials["arm"].nunique(),
            "hardware": ", ".join(analysis.results.hardware_classes) or "—",
            "verdicts": [{"verdict": v, "css": _css(v), "n": counts[v]}
                         for v in ("SUPPORTED", "REFUTED", "INCONCLUSIVE", NOT_MEASURED) if counts.get(v)],
            "claims": len(analysis.claims)}


def _alerts(analysis: Analysis) -> list[dict[str, Any]]:
    """Warnings the reader must see before any verdict: an untrusted instrument, a partial matrix,
    failed trials."""
    alerts = []
    if not analysis.instrument_trusted:
        reasons = []
        if not analysis.aa:
            reasons.append("No A/A arm ran (the baseline again on other seeds): whether seed-to-seed noise alone "
                           "fakes a speed-up is unchecked.")
        failing: dict[str, list[AACheck]] = {}
        for check in analysis.aa:
            if not check.holds_one:
                failing.setdefault(check.workload, []).append(check)
        for workload, checks in failing.items():
            shown = sorted(checks, key=lambda c: (c.metric not in ROW_METRICS, METRIC_ORDER.get(c.metric, 99)))
            listed = "; ".join(f"{_metric_name(c.metric)} {display.speedup_with_interval(c.measured)}"
                               for c in shown[:3])
            more = f" and {len(shown) - 3} more" if len(shown) > 3 else ""
            reasons.append(f"A/A check on {workload}: the baseline's speedup over itself does not hold 1 on "
                           f"{len(shown)} metric(s): {listed}{more}.")
        for control in analysis.failed_positive_controls:
            reasons.append(f"Positive control “{control.name}” on {control.workload} failed: {control.detail}.")
        alerts.append({
            "css": "", "title": "Do not trust this instrument's verdicts as they stand",
            "lead": "The instrument's own checks did not pass, so a speedup it reports may be noise or bias. "
                    "Verdicts on the affected workloads and metrics are marked untrusted, with the verdict on FLOPs "
                    "(a count, the same on every run) beside them.",
            "points": reasons})
    missing = analysis.results.past_deadline
    if missing:
        by_arm: dict[str, int] = {}
        for entry in missing:
            key = f"{entry.get('workload', '?')}: {entry.get('arm', '?')}"
            by_arm[key] = by_arm.get(key, 0) + 1
        unmeasured = list(dict.fromkeys(f"{c.name} ({c.workload})" for c in analysis.claims if c.measured is None))
        items = [f"{len(missing)} trial(s) never started: " + "; ".join(f"{k} ({n} seed{'s' * (n > 1)})"
                                                                      for k, n in by_arm.items()) + "."]
        items.append("Claims without an arm: " + (", ".join(unmeasured) if unmeasured else "none") + ".")
        alerts.append({"css": "partial", "title": "The matrix is partial: a deadline stopped the run",
                       "lead": "Every figure below uses only the trials that ran; arms with fewer seeds have wider "
                               "intervals.", "points": items})
    failed = analysis.results.trials[analysis.results.trials["status"] == "failed"]
    if len(failed):
        arms = failed.groupby(["workload", "arm"]).size()
        alerts.append({"css": "partial", "title": f"{len(failed)} trial(s) failed (the code raised) and are left out",
                       "lead": "A failed trial measured nothing; its seed is left out of its arm's pairs.",
                       "points": [f"{w}: {a} ({n})" for (w, a), n in arms.items()]})
    return alerts


def _toc(sections: dict[str, Any]) -> list[dict[str, Any]]:
    """The contents: every section, and each technique's."""
    toc = [{"id": "verdicts", "title": "Verdicts on the claims"},
           {"id": "instrument", "title": "Can this instrument be trusted?"}]
    if sections["cumulative"]:
        toc.append({"id": "cumulative", "title": "The seed's cumulative table"})
    if sections["techniques"]:
        toc.append({"id": "techniques", "title": "Technique by technique",
                    "children": [{"id": t["id"], "title": t["name"]} for t in sections["techniques"]]})
    toc += [{"id": "arms", "title": "Every arm: speedups and learning curves"},
            {"id": "costs", "title": "Where the cost went"},
            {"id": "provenance", "title": "Provenance"},
            {"id": "method", "title": "How each number is measured"}]
    return [{"children": [], **entry} for entry in toc]


# -- verdicts ----------------------------------------------------------------------------------


def _estimate(found: SpeedupEstimate | None) -> dict[str, str]:
    return {"text": display.speedup(found),
            "interval": display.interval(found.interval) if display.shows_interval(found) else "",
            "reached": display.reached(found)}


def _claim_row(result: ClaimResult, unreached: set[str] = frozenset(),
               confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """One claim's row; `unreached`: the workloads on which no trial reached the target;
    `confidence`: the report's, which an adaptive design's look may have replaced."""
    measured = result.measured
    notes = []
    if measured is not None:
        if measured.n_reference_missed:
            notes.append(f"the baseline missed on {measured.n_reference_missed} seed(s)")
        if measured.n_both_missed:
            notes.append(f"{measured.n_both_missed} seed(s) where both missed say nothing")
        if measured.n_failed:
            notes.append(f"{measured.n_failed} failed trial(s) left out")
        if measured.time_bound:
            notes.append("a paired trial stopped on its time budget: its counts depend on the machine's speed")
    if measured is None:
        notes.append("no trial of this workload reached the target: there is no cost to compare"
                     if result.workload in unreached else "the suite ran no arm with exactly these techniques")
    if abs(result.confidence - confidence) > 1e-9:
        notes.append(f"judged at {result.confidence:.1%} confidence (an adaptive design's look)")
    row = {
        "name": result.name, "kind": result.kind, "workload": result.workload,
        "techniques": " + ".join(result.techniques), "claimed": display.factor(result.claimed),
        "judged_on": _judged_on(result),
        "measured": _estimate(measured), "verdict": result.verdict, "css": _css(result.verdict),
        "as_specified": None, "finetune": None, "untrusted": None,
        "by_metric": [{"metric": SHORT_METRICS.get(name, name), "text": display.speedup(found)}
                      for name, found in result.by_metric.items() if found is not None],
        "inactive": [f"{a.technique}: {a.summary}" if len(result.techniques) > 1 else a.summary
                     for a in result.inactive],
        "notes": notes,
    }
    if result.as_specified is not None:
        row["as_specified"] = {**_estimate(result.as_specified), "verdict": result.as_specified_verdict,
                               "css": _css(result.as_specified_verdict),
                               "inactive": bool(result.as_specified_inactive)}
    if result.finetune_only is not None:
        row["finetune"] = {**_estimate(result.finetune_only), "verdict": result.finetune_verdict,
                           "css": _css(result.finetune_verdict)}
    if not result.trusted:
        row["untrusted"] = {"reason": result.untrusted_reason, "verdict": result.fallback_verdict,
                            "css": _css(result.fallback_verdict)}
    return row


def _cumulative_row(row: CumulativeRow, claims: Sequence[ClaimResult]) -> dict[str, Any]:
    judged = next((c for c in claims if c.name == row.name and c.workload == row.workload), None)
    absent = display.UNDEFINED if row.measured is not None else "—"
    interaction = {"text": absent, "interval": ""}
    if row.interaction is not None and math.isfinite(row.interaction) and row.interaction > 0:
        interaction = {"text": display.factor(row.interaction).rstrip("×"),
                       "interval": display.interval(row.interaction_interval)}
    return {"name": row.name, "workload": row.workload, "techniques": " + ".join(row.techniques),
            "claimed": display.factor(row.claimed), "measured": _estimate(row.measured),
            "verdict": judged.verdict if judged else NOT_MEASURED, "css": _css(judged.verdict if judged else
                                                                                NOT_MEASURED),
            "product": display.factor(row.product_alone) if row.product_alone else absent,
            "interaction": interaction}


# -- the instrument's checks -------------------------------------------------------------------


def _instrument(analysis: Analysis) -> dict[str, Any]:
    by_workload: dict[str, list[AACheck]] = {}
    for check in analysis.aa:
        by_workload.setdefault(check.workload, []).append(check)
    summary = []
    for workload, checks in by_workload.items():
        failing = [c for c in checks if not c.holds_one]
        summary.append({
            "workload": workload, "seeds": max(c.measured.n_seeds for c in checks),
            "holds": [_metric_name(c.metric) for c in checks if c.holds_one],
            "fails": [f"{_metric_name(c.metric)}: {display.speedup_with_interval(c.measured)}" for c in failing],
            "steps": _estimate(next((c.measured for c in checks if c.metric == "steps"), None))})
    return {"trusted": analysis.instrument_trusted, "has_aa": bool(analysis.aa),
            "positive": [_positive_row(c) for c in analysis.positive_controls],
            "aa_summary": summary, "aa": [_aa_row(c) for c in analysis.aa]}


def _positive_row(control: PositiveControl) -> dict[str, Any]:
    return {"name": control.name, "workload": control.workload, "metric": _metric_name(control.metric),
            "expected": display.factor(control.expected) if control.expected else "— (none calibrated)",
            "measured": _estimate(control.measured), "holds": control.holds, "detail": control.detail}


def _aa_row(check: AACheck) -> dict[str, Any]:
    return {"workload": check.workload, "metric": get_metric(check.metric).label, "measured": _estimate(check.measured),
            "holds": check.holds_one}


# -- one technique -----------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "technique"


def _technique(entry: TechniqueArms, analysis: Analysis, figures: dict[str, FigureFile]) -> dict[str, Any]:
    name = entry.technique
    claims = [c for c in analysis.claims if c.kind != "cumulative" and set(c.techniques) == {name}]
    workloads = sorted(set(entry.roles) | set(entry.stacks))
    transfer = _transfer_rows(analysis.estimates, entry, analysis.results.trials)
    return {
        "id": f"technique-{_slug(name)}", "name": name,
        "claims": [{"name": c.name, "workload": c.workload, "verdict": c.verdict, "css": _css(c.verdict),
                    "measured": _estimate(c.measured), "judged_on": _judged_on(c)} for c in claims],
        "runs_alone": entry.runs_alone,
        "stacks": list(dict.fromkeys(arm for w in workloads for arm in entry.stacks.get(w, []))),
        "figures": [key for w in workloads if (key := technique_figure(name, w)) in figures],
        "tuning_figure": f"tuning_{name}" if f"tuning_{name}" in figures else None,
        "activity": _activity_rows(entry, analysis.activity, workloads),
        "settings": _settings_table(entry, analysis, workloads),
        "tuning": _tuning_rows(name, analysis),
        "costs": _cost_table(entry, analysis.results.trials, workloads),
        "controls": _control_rows([c for c in analysis.controls if c.technique == name]),
        "transfer": transfer,
    }


def _activity_rows(entry: TechniqueArms, activity: Mapping[tuple[str, str], tuple[Activity, ...]],
                   workloads: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for workload in workloads:
        arms = [(ROLE_LABELS[role], arm) for role, arm in entry.arms(workload).items() if role != "baseline"]
        arms += [("stack", arm) for arm in entry.stacks.get(workload, [])]
        for role, arm in arms:
            for found in activity.get((workload, arm), ()):
                if found.technique == entry.technique or role == ROLE_LABELS["control"]:
                    rows.append({"workload": workload, "arm": arm, "role": role, "fired": found.fired,
                                 "summary": found.summary or "—"})
    return rows


def _settings_table(entry: TechniqueArms, analysis: Analysis, workloads: Sequence[str]) -> dict[str, Any]:
    results = analysis.results
    tuned, specified = {}, {}
    for workload in workloads:
        arms = entry.arms(workload)
        if "tuned" in arms:
            tuned[workload] = results.arm_settings(workload, arms["tuned"]).get(entry.technique, {})
        if "as_specified" in arms:
            specified[workload] = results.arm_settings(workload, arms["as_specified"]).get(entry.technique, {})
    # One "as specified" column where the seed document's settings are the same on every workload.
    same = len({json.dumps(s, sort_keys=True, default=str) for s in specified.values()}) == 1
    columns = ([("as specified", next(iter(specified.values())))] if same
               else [(f"as specified on {w}", s) for w, s in specified.items()])
    columns += [(f"tuned on {w}", s) for w, s in tuned.items()]
    keys = list(dict.fromkeys(k for _, values in columns for k in values))
    rows = []
    for key in keys:
        values = [display.setting(values.get(key)) if key in values else "—" for _, values in columns]
        rows.append({"key": key, "cells": values, "differs": len(set(values)) > 1})
    return {"columns": [label for label, _ in columns], "rows": rows}


def _tuning_rows(technique: str, analysis: Analysis) -> list[dict[str, Any]]:
    rows = []
    for record in tuning_records(analysis, technique):
        metric = get_metric(record.get("metric", "device_hours"))
        winner = record.get("winner") or {}
        points = []
        for point in record["grid"]:
            cost = point.get("median_cost")
            cost = float(cost) if cost is not None else math.inf
            points.append({"settings": display.settings_line(point.get("settings") or {}),
                           "cost": _raw_cost(cost, metric.column) if math.isfinite(cost) else "missed",
                           "reached": f"{point.get('reached', '?')}/{point.get('of', '?')}",
                           "chosen": (point.get("settings") or {}) == winner})
        spent = record.get("tuning_cost") or {}
        rows.append({"where": f"{record.get('workload')}/{record.get('preset')}",
                     "metric": f"{_metric_name(metric.name)}, all-in", "points": points,
                     "seeds": len(record.get("seeds") or []),
                     "spent": ", ".join(part for part in (
                         f"{display.count(spent['steps'])} steps" if "steps" in spent else "",
                         f"{display.prefixed(spent['flops'], 'FLOP')}" if "flops" in spent else "",
                         f"{display.duration(spent['device_s'])} device time" if "device_s" in spent else "")
                                         if part)})
    return rows


def _raw_cost(value: float, column: str) -> str:
    """A ledger column's value in readable units."""
    if column in ("device_s", "wall_s", "wall_train_s"):
        return display.duration(value)
    if column.startswith("energy"):
        return display.energy(value)
    if column.startswith("flops"):
        return display.prefixed(value, "FLOP")
    return display.count(value)


COST_COLUMNS = (
    # (trials column, header, kind of unit)
    ("steps", "steps", "count"),
    ("flops_total", "FLOPs", "flops"),
    ("device_s", "device time", "time"),
    ("wall_train_s", "training", "time"),
    ("wall_overhead_s", "technique overhead", "time"),
    ("wall_pretrain_s", "pretraining (wall)", "time"),
    ("wall_eval_s", "evaluation (not cost)", "time"),
    ("energy_j", "energy", "energy"),
)


def _cost_table(entry: TechniqueArms, trials: pd.DataFrame, workloads: Sequence[str]) -> dict[str, Any]:
    """The median trial of the baseline and of each of the technique's arms, per workload; each
    column in one readable unit (its largest value's)."""
    raw = []
    for workload in workloads:
        for role, arm in entry.arms(workload).items():
            mine = trials[(trials["workload"] == workload) & (trials["arm"] == arm) & (trials["status"] != "failed")]
            if mine.empty:
                continue
            values = {column: float(mine[column].astype(float).median()) if column in mine else math.nan
                      for column, _, _ in COST_COLUMNS}
            raw.append({"workload": workload, "arm": arm, "role": ROLE_LABELS[role],
                        "reached": f"{int((mine['status'] == 'reached').sum())}/{len(mine)}", "values": values})
    headers, formats = [], []
    for column, header, kind in COST_COLUMNS:
        largest = max((r["values"][column] for r in raw if math.isfinite(r["values"][column])), default=0.0)
        if kind in ("time", "energy"):
            unit, scale = display.time_unit(largest) if kind == "time" else display.energy_unit(largest)
            headers.append(f"{header} [{unit}]")
            formats.append(lambda v, s=scale: display.digits(v / s) if math.isfinite(v) else "—")
        else:
            headers.append(header)
            formats.append(display.prefixed if kind == "flops" else display.count)
    rows = [{**r, "cells": [fmt(r["values"][column]) for fmt, (column, _, _) in zip(formats, COST_COLUMNS)]}
            for r in raw]
    return {"headers": headers, "rows": rows}


def _control_rows(comparisons: Sequence[ControlComparison]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {"main": [], "more": []}
    for c in comparisons:
        css = {BEATS: "supported", LOSES: "refuted"}.get(c.outcome, "inconclusive")
        outcome = {BEATS: "beats it", LOSES: "loses to it", TIES: "indistinguishable"}.get(c.outcome, c.outcome)
        row = {"workload": c.workload, "control": c.control, "metric": _metric_name(c.metric),
               "technique": _estimate(c.technique_vs_baseline), "control_speedup": _estimate(c.control_vs_baseline),
               "over_control": _estimate(c.technique_vs_control), "p": display.p_value(c.p_value),
               "outcome": outcome, "css": css}
        rows["main" if c.metric in ROW_METRICS else "more"].append(row)
    return rows


def _transfer_rows(estimates: Sequence[SpeedupEstimate], entry: TechniqueArms, trials: pd.DataFrame,
                   ) -> dict[str, list[dict[str, Any]]]:
    """Where the technique pretrains by itself: its arms and stacks whose all-in cost differs from
    finetune-only, in each accounting."""
    alone = {(w, arm) for w, roles in entry.roles.items() for role, arm in roles.items() if role != "baseline"}
    pretrain = [c for c in PRETRAIN_COLUMNS.values() if c in trials]
    spent = trials[pretrain].fillna(0).astype(float).sum(axis=1) if pretrain else pd.Series(0.0, index=trials.index)
    if not any(((trials["workload"] == w) & (trials["arm"] == arm) & (spent > 0)).any() for w, arm in alone):
        return {"main": [], "more": []}
    mine = alone | {(w, arm) for w, arms in entry.stacks.items() for arm in arms}
    by_key = {(e.workload, e.arm, e.metric, e.accounting): e for e in estimates if (e.workload, e.arm) in mine}
    rows: dict[str, list[dict[str, Any]]] = {"main": [], "more": []}
    for (workload, arm, metric, accounting), found in by_key.items():
        if accounting != "finetune" or (workload, arm, metric, "all_in") not in by_key:
            continue
        all_in = by_key[(workload, arm, metric, "all_in")]
        if all_in.per_seed == found.per_seed:
            continue  # no pretraining in this arm
        row = {"workload": workload, "arm": arm, "metric": _metric_name(metric), "finetune": _estimate(found),
               "all_in": _estimate(all_in), "amortized": _estimate(by_key.get((workload, arm, metric, "amortized")))}
        rows["main" if metric in ROW_METRICS else "more"].append(row)
    return rows


# -- every arm ---------------------------------------------------------------------------------


def _arms_table(analysis: Analysis) -> dict[str, Any]:
    """Every arm against every metric: "speedup [interval]", all-in where pretraining counts."""
    estimates = analysis.estimates
    metrics = [m for m in METRICS if any(e.metric == m.name for e in estimates)]
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for found in estimates:
        metric = get_metric(found.metric)
        wanted = "all_in" if supports(metric, "all_in") else "finetune"
        if found.accounting != wanted:
            continue
        entry = cells.setdefault((found.workload, found.arm), {"kind": found.arm_kind, "values": {},
                                                               "reached": display.reached(found)})
        entry["values"][found.metric] = display.speedup_with_interval(found)
    rows = [{"workload": w, "arm": a, "kind": v["kind"].replace("_", " "), "reached": v["reached"],
             "cells": [v["values"].get(m.name, "—") for m in metrics]} for (w, a), v in cells.items()]
    return {"metrics": [m.label for m in metrics], "rows": rows}


# -- provenance --------------------------------------------------------------------------------


def _provenance(analysis: Analysis) -> dict[str, Any]:
    runs = []
    for row in analysis.results.runs.to_dict("records"):
        def value(key: str) -> str:
            found = row.get(key)
            return "" if found is None or (isinstance(found, float) and math.isnan(found)) else str(found)

        dirty = row.get("git_dirty")
        runs.append({"run": value("run_id"), "started": value("started_at"),
                     "suite": value("suite_name"), "suite_hash": value("suite_hash"),
                     "commit": value("git_commit") + (" (uncommitted changes)" if dirty is True else ""),
                     "software": f"torch {value('torch_version')}, Python {value('python_version')}",
                     "hardware": value("hardware_class"), "command": value("command_line"),
                     "jobs": value("jobs"), "threads": _trial_threads(analysis.results.trials, value("run_id")),
                     "shard": value("shard")})
    targets = []
    for key, entry in analysis.results.calibration.items():
        target = (entry or {}).get("target") or {}
        if not target:
            continue
        value = target.get("target_val_loss")
        targets.append({"where": key, "target": f"{value:.4g}" if isinstance(value, (int, float)) else "—",
                        "how": str(target.get("method", "—")),
                        "when": str(target.get("calibrated_at", "")), "commit": str(target.get("git_commit", ""))})
    adaptive = analysis.results.adaptive
    return {"runs": runs, "fingerprint": analysis.results.fingerprint or {}, "targets": targets,
            "adaptive": json.dumps(adaptive, sort_keys=True) if adaptive else "",
            "adaptive_savings": _savings_line(savings(analysis.results, analysis.claims))}


def _trial_threads(trials: pd.DataFrame, run_id: str) -> str:
    """The CPU threads torch trained with in a run's trials ("1", "1-2"); "" where none were
    recorded. The fingerprint's own count is the parent process's, not a worker's."""
    if "torch_threads" not in trials:
        return ""
    threads = trials.loc[trials["run_id"] == run_id, "torch_threads"].dropna().astype(int)
    if threads.empty:
        return ""
    low, high = threads.min(), threads.max()
    return str(low) if low == high else f"{low}-{high}"


def _savings_line(found: Savings | None) -> str:
    if found is None:
        return ""
    return (f"On the claims' arms and the baseline it ran {found.trials} trials, "
            f"{display.duration(found.device_hours * 3600)} of device time (measured); a fixed design giving each "
            f"of those arms {found.max_seeds} seeds would have run {found.trials_fixed}, about "
            f"{display.duration(found.device_hours_fixed * 3600)} (estimated from each arm's mean trial).")
