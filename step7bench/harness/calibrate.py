"""Validation targets from the baseline: `step7bench calibrate --suite NAME`.

For each workload of the suite, the baseline trains for its whole budget (target unreachable)
on calibration seeds set apart from the suite's (CALIBRATION_SEED_OFFSET + i), so no arm is
judged on the seeds its target was fitted to. The target is the median of their best
validation losses times (1 + margin): the median says what a typical well-tuned run reaches
within the budget, the margin makes it reachable by most baseline runs (DESIGN.md §2;
AlgoPerf sets its targets from a baseline the same way, Dahl et al. 2023). Every target is
written with how it was set.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from step7bench.engine import resolve_device, run_trial
from step7bench.errors import UserError
from step7bench.harness.runner import utc_now
from step7bench.harness.suite import Suite, WorkloadEntry
from step7bench.measure.fingerprint import device_fingerprint, git_provenance
from step7bench.workloads import Workload

CALIBRATION_SEED_OFFSET = 20_000


@dataclass(frozen=True)
class TargetRecord:
    """A target and how it was set (the fields of a `[[target]]` entry)."""

    workload: str
    preset: str
    target_val_loss: float
    median_best_val_loss: float
    margin: float
    calibration_seeds: list[int]
    best_val_losses: list[float]
    statuses: list[str]
    max_steps: int
    max_seconds: float
    hardware_class: str
    git_commit: str
    calibrated_at: str

    @property
    def method(self) -> str:
        return (f"median best validation loss of the baseline over {len(self.calibration_seeds)} seeds "
                f"within the budget, times (1 + {self.margin:g})")


def target_from(best_val_losses: list[float], margin: float) -> tuple[float, float]:
    """(target, median): the median of the best losses, raised by the relative `margin`."""
    if not best_val_losses:
        raise ValueError("best_val_losses is empty")
    median = statistics.median(best_val_losses)
    return median * (1.0 + margin), median


def calibrate(suite: Suite, *, device: str = "auto", seeds: int | None = None,
              margin: float | None = None, report=print) -> list[TargetRecord]:
    """Run the baseline on every workload of `suite` and return the targets it sets."""
    torch_device = resolve_device(device)
    hardware_class = device_fingerprint(torch_device)["hardware_class"]
    commit = git_provenance()["commit"] or "unknown"
    count = seeds if seeds is not None else suite.calibration_seeds
    margin = suite.calibration_margin if margin is None else margin
    return [_calibrate_one(suite.registry.workload(entry.name, entry.preset, entry.data_seed), entry, count, margin,
                           torch_device, hardware_class, commit, report)
            for entry in suite.workloads]


def _calibrate_one(workload: Workload, entry: WorkloadEntry, count: int, margin: float, device, hardware_class: str,
                   commit: str, report) -> TargetRecord:
    seeds = [CALIBRATION_SEED_OFFSET + i for i in range(count)]
    results = []
    for seed in seeds:
        result = run_trial(workload, seed, device=device, target_val_loss=-math.inf, budget=entry.budget)
        report(f"{entry.key} baseline seed {seed}: best val loss {result.best_val_loss:.4f} ({result.status})")
        results.append(result)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise UserError(f"calibrating {entry.key}: the baseline failed: {failed[0].error.splitlines()[-1]}")
    best = [r.best_val_loss for r in results]
    target, median = target_from(best, margin)
    if not math.isfinite(target):
        raise UserError(f"calibrating {entry.key}: the baseline diverged on most seeds; no target can be set")
    return TargetRecord(
        workload=entry.name, preset=entry.preset, target_val_loss=target, median_best_val_loss=median,
        margin=margin, calibration_seeds=seeds, best_val_losses=best,
        statuses=["diverged" if r.status == "diverged" else "ran the full budget" for r in results],
        max_steps=entry.budget.max_steps, max_seconds=entry.budget.max_seconds,
        hardware_class=hardware_class, git_commit=commit, calibrated_at=utc_now())


def write_targets(path: Path, records: list[TargetRecord], command: str) -> None:
    """The targets file, TOML, one `[[target]]` per workload, each saying how it was set."""
    lines = [f"# Validation targets written by `{command}` on {utc_now()[:10]}.",
             "# Each records how it was set; rerun the command to recalibrate rather than editing by hand.", ""]
    for record in records:
        lines.append("[[target]]")
        for key, value in _fields(record).items():
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")


def _fields(record: TargetRecord) -> dict[str, Any]:
    values = dict(vars(record))
    return {"workload": values.pop("workload"), "preset": values.pop("preset"),
            "target_val_loss": values.pop("target_val_loss"), "method": record.method, **values}


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"cannot write {value!r} to a targets file")
    return json.dumps(value) if isinstance(value, str) else str(value)
