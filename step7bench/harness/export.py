"""Export a results store's trials or learning curves as CSV, Parquet or JSON.

- `trials`: one row per trial: its identity and outcome (`workload, preset, arm, arm_kind,
  techniques, seed, status, steps_to_target, target_val_loss, best_val_loss, error`), every
  ledger total, and its provenance (`run_id, device, hardware_class`, the trial's `config`).
- `curves`: one row per trial and validation check, long form: the trial's identity columns
  (`trial_id, run_id, workload, preset, arm, arm_kind, techniques, seed`), then the check's
  `step, val_loss, train_loss` and every ledger column at that check.

JSON is standard JSON that any parser reads: a list of records, no NaN or Infinity tokens. A
missing number (NaN) and an infinite one (a trial with no finite validation loss) are both
null there; each record's `infinite` object names the columns that were infinite, with "inf" or
"-inf", and is empty when none was. CSV writes infinities as `inf` (pandas reads them back);
Parquet keeps them as floats. A list column (`techniques`) is a JSON list and a Parquet list; in
CSV it is joined by '+' (empty for the baseline).

Each file is written to a temporary file beside it and renamed into place, so a failed export
leaves an earlier file of that name whole.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from step7bench.harness.store import ResultsStore, ledger_columns
from step7bench.paths import atomic_write

EXPORT_FORMATS = ("csv", "parquet", "json")
EXPORT_TABLES = ("trials", "curves")
INFINITE_COLUMN = "infinite"
"""The JSON records' companion key: column name -> "inf" or "-inf" for each infinite value."""
CURVE_IDENTITY_COLUMNS = ("trial_id", "run_id", "workload", "preset", "arm", "arm_kind", "techniques", "seed")
"""The trial's columns joined onto each of its validation checks."""


def export_table(store: ResultsStore, table: str, path: Path, fmt: str) -> int:
    """Write `table` (one of EXPORT_TABLES) to `path` in `fmt` (one of EXPORT_FORMATS)."""
    if table not in EXPORT_TABLES:
        raise ValueError(f"table must be one of {EXPORT_TABLES}, got {table!r}")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {EXPORT_FORMATS}, got {fmt!r}")
    frame = store.trials_frame() if table == "trials" else curves_long(store)
    write_frame(frame, path, fmt)
    return len(frame)


def curves_long(store: ResultsStore) -> pd.DataFrame:
    """Every validation check with its trial's identity columns first (long form)."""
    trials = store.trials_frame()[list(CURVE_IDENTITY_COLUMNS)]
    curves = store.curves_frame()
    joined = trials.merge(curves, on="trial_id", how="inner", validate="one_to_many")
    return joined.sort_values(["trial_id", "step"], kind="stable").reset_index(drop=True)


def write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """`frame` to `path` in `fmt`, atomically."""
    writers = {
        "csv": lambda handle: _joined_lists(frame).to_csv(handle, index=False),
        "parquet": lambda handle: frame.to_parquet(handle, index=False),
        "json": lambda handle: handle.write(json_text(frame).encode("utf-8")),
    }
    atomic_write(path, writers[fmt])


def _joined_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV cell holds no list: a column of lists or tuples (`techniques`) is written joined by
    '+', as arms are named (empty for none), not as Python's repr."""
    listed = [column for column in frame.columns
              if frame[column].dtype == object and frame[column].map(lambda v: isinstance(v, (list, tuple))).any()]
    return frame.assign(**{column: frame[column].map(_joined) for column in listed})


def _joined(value: Any) -> Any:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def json_text(frame: pd.DataFrame) -> str:
    """The rows of `frame` as standard JSON records (see the module docstring)."""
    records = [_json_record(row) for row in frame.to_dict(orient="records")]
    return json.dumps(records, indent=1, allow_nan=False) + "\n"


def _json_record(row: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    infinite: dict[str, str] = {}
    for column, value in row.items():
        value = _python_value(value)
        if isinstance(value, float) and math.isinf(value):
            infinite[str(column)] = "inf" if value > 0 else "-inf"
            value = None
        elif isinstance(value, float) and math.isnan(value):
            value = None
        record[str(column)] = value
    record[INFINITE_COLUMN] = infinite
    return record


def _python_value(value: Any) -> Any:
    """numpy scalars as Python numbers; pandas' missing marker (NA) as None."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return None if value is pd.NA else value


# -- MLflow ---------------------------------------------------------------------------------------
# Optional (`pip install 'step7bench[mlflow]'`, the mlflow-skinny client): imported only here.

MLFLOW_KIND_TAG = "step7bench.kind"  # "results" on the parent run, "trial" on each trial's run
MLFLOW_RESULTS_TAG = "step7bench.results_id"  # a hash of the results folder's absolute path
MLFLOW_TRIAL_TAG = "step7bench.trial_id"
MLFLOW_INFINITE_TAG = "step7bench.infinite"  # metrics not logged because infinite or NaN (MLflow has no inf)
REPORT_ARTIFACTS = ("index.html", "summary.json")
MLFLOW_METRICS_PER_BATCH = 1000  # MLflow's limits per log_batch call
MLFLOW_PARAMS_PER_BATCH = 100
TRIAL_PARAM_COLUMNS = ("workload", "preset", "arm", "arm_kind", "seed", "techniques")
TRIAL_TAG_COLUMNS = ("trial_id", "run_id", "status", "stop_reason", "device", "hardware_class", "energy_method")
OUTCOME_METRIC_COLUMNS = ("steps_to_target", "best_val_loss", "target_val_loss")
CURVE_METRIC_COLUMNS = ("val_loss", "train_loss")  # logged per validation check, at its step


@dataclass(frozen=True)
class MlflowExport:
    """Where the trials went: the experiment, the parent run holding the report, and how many
    trial runs were logged now or found logged by an earlier export."""

    experiment_id: str
    parent_run_id: str
    logged: int
    already_logged: int


def export_to_mlflow(store: ResultsStore, tracking_uri: str | None = None,
                     experiment: str | None = None) -> MlflowExport:
    """Log each trial as an MLflow run, nested under one parent run per results folder.

    A trial's run has as params its workload, preset, arm, arm kind, seed, techniques and its
    configuration (budget, target, technique settings, flattened to dotted keys); as metrics every
    numeric ledger total (its cost), `steps_to_target`, `best_val_loss`, `target_val_loss`, and the
    validation curve (`val_loss`, `train_loss` at each check's step); as tags its trial id, status,
    stop reason, device, hardware class and energy method. The parent run holds the report's
    index.html and summary.json (once, not per trial) when the folder has them. Trials an earlier
    export logged under the same parent are skipped, so exporting again adds only new trials.
    `experiment` defaults to `step7bench/<suite name>`; `tracking_uri` to MLflow's own default.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    trials, curves, runs = store.trials_frame(), store.curves_frame(), store.runs_frame()
    experiment_id = _mlflow_experiment(client, experiment or f"step7bench/{_suite_name(runs)}")
    parent = _mlflow_parent_run(client, experiment_id, store.folder, runs)
    done = _mlflow_logged_trials(client, experiment_id, parent)
    curves_by_trial = {trial_id: group for trial_id, group in curves.groupby("trial_id", sort=False)}
    todo = [trial for trial in trials.to_dict(orient="records") if str(trial["trial_id"]) not in done]
    for trial in todo:
        _mlflow_log_trial(client, experiment_id, parent, trial, curves_by_trial.get(trial["trial_id"]))
    for name in REPORT_ARTIFACTS:
        if (store.folder / name).is_file():
            client.log_artifact(parent, str(store.folder / name))
    client.set_terminated(parent, "FINISHED")
    return MlflowExport(experiment_id, parent, len(todo), len(trials) - len(todo))


def _suite_name(runs: pd.DataFrame) -> str:
    names = [str(name) for name in runs.get("suite_name", []) if isinstance(name, str)]
    return names[-1] if names else "results"


def _mlflow_experiment(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def _results_id(folder: Path) -> str:
    """A results folder's tag value: a hash of its absolute path (safe in a filter string)."""
    return hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]


def _mlflow_parent_run(client: Any, experiment_id: str, folder: Path, runs: pd.DataFrame) -> str:
    """The folder's parent run: the one an earlier export made, else a new one."""
    results_id = _results_id(folder)
    found = _mlflow_search(client, experiment_id, f"tags.`{MLFLOW_KIND_TAG}` = 'results' and "
                                                  f"tags.`{MLFLOW_RESULTS_TAG}` = '{results_id}'")
    if found:
        return found[0].info.run_id
    tags = {MLFLOW_KIND_TAG: "results", MLFLOW_RESULTS_TAG: results_id, "step7bench.results": str(folder.resolve()),
            "step7bench.suite": _suite_name(runs)}
    latest = runs.iloc[-1].to_dict() if len(runs) else {}
    for column in ("git_commit", "hardware_class", "torch_version", "python_version"):
        if isinstance(latest.get(column), str):
            tags[f"step7bench.{column}"] = latest[column]
    return client.create_run(experiment_id, tags=tags, run_name=f"{_suite_name(runs)} ({folder.name})").info.run_id


def _mlflow_logged_trials(client: Any, experiment_id: str, parent: str) -> set[str]:
    runs = _mlflow_search(client, experiment_id, f"tags.`mlflow.parentRunId` = '{parent}'")
    return {run.data.tags[MLFLOW_TRIAL_TAG] for run in runs if MLFLOW_TRIAL_TAG in run.data.tags}


def _mlflow_search(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    found, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string, max_results=1000, page_token=token)
        found += list(page)
        token = page.token
        if not token:
            return found


def _mlflow_log_trial(client: Any, experiment_id: str, parent: str, trial: dict[str, Any],
                      curve: pd.DataFrame | None) -> None:
    from mlflow.entities import Metric, Param, RunTag

    started_ms, finished_ms = _epoch_ms(trial.get("started_at")), _epoch_ms(trial.get("finished_at"))
    tags = {"mlflow.parentRunId": parent, MLFLOW_KIND_TAG: "trial", MLFLOW_TRIAL_TAG: str(trial["trial_id"])}
    tags.update({f"step7bench.{column}": str(trial[column]) for column in TRIAL_TAG_COLUMNS
                 if _python_value(trial.get(column)) is not None})
    run = client.create_run(experiment_id, start_time=started_ms, tags=tags,
                            run_name=f"{trial['workload']} {trial['arm']} seed {trial['seed']}")
    run_id = run.info.run_id
    params = {column: str(trial[column]) for column in TRIAL_PARAM_COLUMNS}
    params["techniques"] = _joined(trial["techniques"]) or "none"
    params.update({key: value for key, value in _flat_config(trial.get("config")).items() if key not in params})
    totals, infinite = _mlflow_totals(trial)
    metrics = [Metric(name, value, finished_ms, 0) for name, value in totals.items()]
    if curve is not None:
        for point in curve.to_dict(orient="records"):
            metrics += [Metric(column, float(point[column]), finished_ms, int(point["step"]))
                        for column in CURVE_METRIC_COLUMNS if _finite(point.get(column))]
    extra_tags = [RunTag(MLFLOW_INFINITE_TAG, ",".join(infinite))] if infinite else []
    param_list = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(param_list), MLFLOW_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=param_list[start:start + MLFLOW_PARAMS_PER_BATCH])
    for start in range(0, max(len(metrics), 1), MLFLOW_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + MLFLOW_METRICS_PER_BATCH],
                         tags=extra_tags if start == 0 else [])
    client.set_terminated(run_id, "FAILED" if trial.get("status") == "failed" else "FINISHED", end_time=finished_ms)


def _mlflow_totals(trial: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
    """The trial's numeric costs and outcome, and the names of those left out as not finite."""
    names = [*OUTCOME_METRIC_COLUMNS, *(name for name, kind in ledger_columns().items() if kind != "TEXT")]
    totals, infinite = {}, []
    for name in names:
        value = _python_value(trial.get(name))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                totals[name] = float(value)
            elif not math.isnan(value):
                infinite.append(name)
    return totals, infinite


def _finite(value: Any) -> bool:
    value = _python_value(value)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _flat_config(text: Any) -> dict[str, str]:
    """The trial's configuration (JSON) as dotted keys: `settings.curriculum.full_at` -> "0.5"."""
    if not isinstance(text, str) or not text:
        return {}
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        else:
            flat[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)

    walk("", json.loads(text))
    return flat


def _epoch_ms(text: Any) -> int:
    """An ISO timestamp as MLflow's milliseconds since the epoch; now when there is none."""
    if isinstance(text, str) and text:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    return int(time.time() * 1000)


__all__ = ["EXPORT_FORMATS", "EXPORT_TABLES", "INFINITE_COLUMN", "MlflowExport", "export_table",
           "export_to_mlflow", "json_text", "write_frame"]
