"""One results folder, read once: its trials, curves and run provenance, and everything the
analysis derives from them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from step7bench.analysis.checks import AACheck, ControlComparison, aa_checks, control_comparisons
from step7bench.analysis.claims import ClaimResult, CumulativeRow, cumulative_table, judge_claims
from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS
from step7bench.analysis.speedups import BootstrapSettings, CostTable, SpeedupEstimate, all_estimates
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
    """Keep the trials of the suite version (suite hash) of the latest run; a store reused after
    the suite or its targets changed holds trials that are no longer comparable (other targets,
    budgets or presets). Runs of one version (resumed, sharded, merged) all stay."""
    latest = runs.sort_values(["started_at", "run_id"])["suite_hash"].iloc[-1]
    current_runs = set(runs.loc[runs["suite_hash"] == latest, "run_id"])
    keep = trials["run_id"].isin(current_runs)
    kept = trials[keep].reset_index(drop=True)
    return Results(kept, curves[curves["trial_id"].isin(set(kept["trial_id"]))].reset_index(drop=True),
                   runs[runs["run_id"].isin(current_runs)].reset_index(drop=True), int((~keep).sum()))


@dataclass(frozen=True)
class Analysis:
    """Everything derived from one results folder, computed once for the report, summary and gate."""

    results: Results
    settings: BootstrapSettings
    downstream_tasks: int
    estimates: list[SpeedupEstimate]
    claims: list[ClaimResult]
    cumulative: list[CumulativeRow]
    controls: list[ControlComparison]
    aa: list[AACheck]

    @property
    def untrusted_metrics(self) -> list[tuple[str, str]]:
        """(workload, metric) pairs whose A/A interval does not hold 1."""
        return [(check.workload, check.metric) for check in self.aa if not check.holds_one]


def analyze(results: Results, claims: Sequence[Claim], settings: BootstrapSettings = BootstrapSettings(),
            downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> Analysis:
    """Speedups of every arm, verdicts on `claims`, the cumulative table, techniques against their
    random controls (as the trials record them) and the A/A check."""
    table = CostTable(results.trials, downstream_tasks)
    return Analysis(
        results=results, settings=settings, downstream_tasks=downstream_tasks,
        estimates=all_estimates(table, settings),
        claims=judge_claims(table, claims, settings),
        cumulative=cumulative_table(table, claims, settings),
        controls=control_comparisons(table, settings),
        aa=aa_checks(table, settings))


def analyze_folder(folder: Path | str, claims_path: Path | str = DEFAULT_CLAIMS,
                   settings: BootstrapSettings = BootstrapSettings(),
                   downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> Analysis:
    return analyze(load_results(folder), load_claims(claims_path), settings=settings,
                   downstream_tasks=downstream_tasks)
