"""Export the trials of a results store: one row per trial, as CSV, Parquet or JSON.

Columns: the trial's identity and outcome (`workload, preset, arm, arm_kind, techniques, seed,
status, steps_to_target, target_val_loss, best_val_loss, error`), every ledger total, and its
provenance (`run_id, device, hardware_class`, the trial's `config`). JSON is a list of
records; infinite losses are written as null there (JSON has no infinity).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from step7bench.harness.store import ResultsStore

EXPORT_FORMATS = ("csv", "parquet", "json")


def export_trials(store: ResultsStore, path: Path, fmt: str) -> int:
    """Write the trials to `path` in `fmt`; returns the number of rows."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {EXPORT_FORMATS}, got {fmt!r}")
    frame = store.trials_frame()
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.replace([float("inf"), float("-inf")], pd.NA).to_json(path, orient="records", indent=1)
    return len(frame)
