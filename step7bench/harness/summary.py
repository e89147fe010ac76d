"""The table a run prints at the end: per workload and arm, how often and how cheaply the
target was reached. Medians are over the trials that reached it; the analysis computes the
speedups with missed trials counted as infinite cost."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

SUMMARY_COLUMNS = ("workload", "arm", "arm_kind", "trials", "reached", "failed", "median_steps",
                   "median_device_s", "median_flops")


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload/preset, arm), in the order the arms first appear."""
    if trials.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = trials.assign(workload=trials["workload"] + "/" + trials["preset"])
    rows = []
    for (workload, arm), group in frame.groupby(["workload", "arm"], sort=False):
        reached = group[group["status"] == "reached"]
        rows.append({
            "workload": workload, "arm": arm, "arm_kind": group["arm_kind"].iloc[0], "trials": len(group),
            "reached": len(reached), "failed": int((group["status"] == "failed").sum()),
            "median_steps": reached["steps_to_target"].median(),
            "median_device_s": reached["device_s"].median(),
            "median_flops": reached["flops_total"].median(),
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def print_summary(trials: pd.DataFrame, console: Console) -> None:
    table = Table(title="cost to target (medians over trials that reached it)")
    for column in SUMMARY_COLUMNS:
        table.add_column(column, justify="left" if column in ("workload", "arm", "arm_kind") else "right")
    for row in summarize(trials).itertuples(index=False):
        table.add_row(row.workload, row.arm, row.arm_kind, str(row.trials), str(row.reached), str(row.failed),
                      _number(row.median_steps, "{:.0f}"), _number(row.median_device_s, "{:.2f}"),
                      _number(row.median_flops, "{:.3g}"))
    console.print(table)


def _number(value: float, style: str) -> str:
    return "-" if pd.isna(value) else style.format(value)
