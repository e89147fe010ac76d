"""One results folder, read once: its trials, curves and run provenance, and everything the
analysis derives from them."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from step7bench.analysis.censored import look_sizes, spending_levels
from step7bench.analysis.checks import (AACheck, ControlComparison, PositiveControl, aa_checks, control_comparisons,
                                        positive_controls)
from step7bench.analysis.claims import Activity, ClaimResult, CumulativeRow, Judge, Look, trial_activity
from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS, Metric
from step7bench.analysis.speedups import CostTable, SpeedupEstimate, all_estimates
from step7bench.analysis.stats import DEFAULT_CONFIDENCE
from step7bench.errors import UserError
from step7bench.harness.claims import Claim, load_claims
from step7bench.harness.store import DATABASE_NAME, ResultsStore
from step7bench.harness.suite import SUITES_DIR

DEFAULT_CLAIMS = SUITES_DIR / "claims" / "step7.toml"


@dataclass(frozen=True)
class Results:
    """The three tables of a results store (see `step7bench.harness.store`). `superseded_trials`
    counts trials left out because they ran under an older version of the suite."""

    trials: pd.DataFrame
    curves: pd.DataFrame
    runs: pd.DataFrame
    superseded_trials: int = 0

    @property
    def hardware_classes(self) -> list[str]:
        return sorted({str(c) for c in self.trials["hardware_class"].dropna()})

    @property
    def fingerprint(self) -> dict[str, Any] | None:
        """The device fingerprint of the latest run (runs are in start order), None if none recorded."""
        texts = [text for text in self.runs.get("device_fingerprint", []) if isinstance(text, str)]
        return json.loads(texts[-1]) if texts else None

    def _run_json(self, column: str) -> list[Any]:
        """A JSON column of the runs table, parsed, for the runs that recorded it (in start order)."""
        return [json.loads(text) for text in self.runs.get(column, []) if isinstance(text, str) and text]

    @property
    def calibration(self) -> dict[str, Any]:
        """workload/preset -> {"target": the targets file's record, "tuning": its [[tuning]] records},
        as the latest run was calibrated."""
        records = [record for record in self._run_json("calibration") if record]
        return records[-1] if records else {}

    @property
    def expected_weak_speedups(self) -> dict[str, float]:
        """workload -> calibration's baseline speedup over the weakened reference (where measured)."""
        speedups = {}
        for entry in self.calibration.values():
            target = entry.get("target") or {}
            weak = target.get("weak_reference")
            if isinstance(weak, dict) and isinstance(weak.get("speedup"), (int, float)):
                speedups[target["workload"]] = float(weak["speedup"])
        return speedups

    def arm_settings(self, workload: str, arm: str) -> dict[str, Any]:
        """The settings an arm's techniques ran with (from its first trial's recorded identity)."""
        rows = self.trials[(self.trials["workload"] == workload) & (self.trials["arm"] == arm)]
        if rows.empty or "config" not in rows or not isinstance(rows["config"].iloc[0], str):
            return {}
        return json.loads(rows["config"].iloc[0]).get("settings", {})

    @property
    def past_deadline(self) -> list[dict[str, Any]]:
        """The trials a deadline kept from starting in the latest run that had one: a partial matrix."""
        lists = [entries for entries in self._run_json("past_deadline") if entries]
        return lists[-1] if lists else []

    @property
    def adaptive(self) -> dict[str, Any]:
        """The adaptive design of the latest run that used one (`run --adaptive`), else {}."""
        designs = [design for design in self._run_json("adaptive") if design]
        return designs[-1] if designs else {}

    def looks(self) -> dict[tuple[str, str], Look]:
        """(claim name, workload) -> the look that decided it in an adaptive design: its seeds and
        its spending level's confidence. Empty without a design: every claim uses every seed."""
        design = self.adaptive
        if not design:
            return {}
        sizes = look_sizes(design["initial"], design["batch"], design["max_seeds"])
        levels = spending_levels(len(sizes), design["alpha"], design["shape"])
        looks = {}
        for key, look in design["decided_at"].items():
            name, workload = key.rsplit("|", 1)  # as adaptive.claim_key joins them; a claim's name may hold "|"
            looks[(name, workload)] = Look(1 - levels[look - 1], sizes[look - 1])
        return looks

    @property
    def hardware_class(self) -> str:
        """The one hardware class the trials ran on; several are refused, never compared silently."""
        classes = self.hardware_classes
        if len(classes) != 1:
            raise UserError(f"results hold trials from {len(classes)} hardware classes ({', '.join(classes)}); "
                            "analyse each apart")
        return classes[0]


def load_results(folder: Path | str) -> Results:
    """Read a results folder; a missing or empty one is a UserError."""
    folder = Path(folder)
    if not (folder / DATABASE_NAME).is_file():
        raise UserError(f"{folder}: no results here ({DATABASE_NAME} not found)")
    with ResultsStore(folder, create=False) as store:
        trials, curves, runs = store.trials_frame(), store.curves_frame(), store.runs_frame()
    if trials.empty:
        raise UserError(f"{folder}: the results store holds no trials yet")
    return latest_suite_version(trials, curves, runs)


def latest_suite_version(trials: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame) -> Results:
    """Keep the trials of the suite version (suite hash) of the latest run: those its runs ran and
    those their plans found done already (a trial's id is what defines it, so an edit that changes
    no trial, a comment or an override restating a default, keeps every trial). A store reused
    after the suite or its targets changed holds trials that are no longer comparable (other
    targets, budgets or presets): they are left out and counted. Runs of one version (resumed,
    sharded, merged) all stay, with the runs that ran the trials kept."""
    latest = runs.sort_values(["started_at", "run_id"])["suite_hash"].iloc[-1]
    current = runs["suite_hash"] == latest
    planned = {trial_id for text in runs.loc[current].get("planned", pd.Series(dtype=object)).dropna()
               for trial_id in json.loads(text)}
    keep = trials["run_id"].isin(set(runs.loc[current, "run_id"])) | trials["trial_id"].isin(planned)
    kept = trials[keep].reset_index(drop=True)
    kept_runs = runs[current | runs["run_id"].isin(set(kept["run_id"]))].reset_index(drop=True)
    return Results(kept, curves[curves["trial_id"].isin(set(kept["trial_id"]))].reset_index(drop=True),
                   kept_runs, int((~keep).sum()))


@dataclass(frozen=True)
class Analysis:
    """Everything derived from one results folder, computed once for the report, summary and gate."""

    results: Results
    confidence: float
    downstream_tasks: int
    estimates: list[SpeedupEstimate]
    claims: list[ClaimResult]
    cumulative: list[CumulativeRow]
    controls: list[ControlComparison]
    aa: list[AACheck]
    positive_controls: list[PositiveControl] = field(default_factory=list)
    activity: Mapping[tuple[str, str], tuple[Activity, ...]] = field(default_factory=dict)  # per (workload, arm)

    @property
    def untrusted_metrics(self) -> list[tuple[str, str]]:
        """(workload, metric) pairs whose A/A interval does not hold 1."""
        return [(check.workload, check.metric) for check in self.aa if not check.holds_one]

    @property
    def failed_positive_controls(self) -> list[PositiveControl]:
        return [control for control in self.positive_controls if not control.holds]

    @property
    def instrument_trusted(self) -> bool:
        """Whether every check ran and held: an A/A arm holding 1 on every metric, and every
        positive control finding its known speedup."""
        return bool(self.aa) and not self.untrusted_metrics and not self.failed_positive_controls


def trust(aa: Sequence[AACheck], controls: Sequence[PositiveControl],
          metrics: Callable[[str], Sequence[Metric]]) -> dict[tuple[str, str], str]:
    """(workload, metric) -> why a verdict there is not to be trusted ("" where it is). A failed
    positive control marks every metric of its workload (`metrics(workload)`), whether or not an
    A/A check ran there; an A/A check that does not hold 1 marks its own metric."""
    reasons: dict[tuple[str, str], str] = {}
    failed: dict[str, list[str]] = {}
    for control in controls:
        if not control.holds:
            failed.setdefault(control.workload, []).append(control.name)
    for workload, names in failed.items():
        for metric in metrics(workload):
            reasons[(workload, metric.name)] = f"the {' and '.join(names)} positive control(s) failed"
    for check in aa:
        if not check.holds_one:
            reasons[(check.workload, check.metric)] = (f"the A/A check does not hold 1 on {check.metric} "
                                                       f"({check.measured.interval.low:.2f}-"
                                                       f"{check.measured.interval.high:.2f})")
    return reasons


def analyze(results: Results, claims: Sequence[Claim], confidence: float = DEFAULT_CONFIDENCE,
            downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> Analysis:
    """Speedups of every arm, the instrument's checks (A/A, positive controls), verdicts on
    `claims` (on a trusted metric, at each claim's look), the cumulative table, and techniques
    against their random controls (as the trials record them)."""
    table = CostTable(results.trials, downstream_tasks)
    aa = aa_checks(table, confidence)
    positives = positive_controls(table, results.trials, results.expected_weak_speedups, confidence)
    activity = trial_activity(results.trials)
    judge = Judge(table, trust(aa, positives, table.metrics), activity, results.looks())
    return Analysis(
        results=results, confidence=confidence, downstream_tasks=downstream_tasks,
        estimates=all_estimates(table, confidence), claims=judge.claims(claims), cumulative=judge.cumulative(claims),
        controls=control_comparisons(table, confidence), aa=aa, positive_controls=positives,
        activity=activity)


def analyze_folder(folder: Path | str, claims_path: Path | str = DEFAULT_CLAIMS,
                   confidence: float = DEFAULT_CONFIDENCE,
                   downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> Analysis:
    return analyze(load_results(folder), load_claims(claims_path), confidence, downstream_tasks)
