"""Run a suite into a results folder: resumable, one writer per folder, shardable.

The plan is the suite's trial matrix (optionally one shard of it). Trials already in the
store are skipped, so re-running the same command after a crash, a kill or Ctrl-C picks up
where it stopped. Each trial is written atomically when it ends; a trial that raises is
recorded as failed with its error and the suite goes on. With `nproc_per_node` > 1, trials whose
arm has a data-parallel technique run on that many ranks under torchrun (see parallel.py).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from step7bench.engine import TrialResult, resolve_device
from step7bench.harness.lock import FolderLock
from step7bench.harness.matrix import TrialSpec, plan_trials, shard
from step7bench.harness.parallel import (ParallelTrialError, check_nproc_per_node, run_data_parallel,
                                         runs_data_parallel)
from step7bench.harness.progress import PlainProgress, LiveProgress
from step7bench.harness.store import ResultsStore, TrialRecord
from step7bench.harness.suite import Suite
from step7bench.harness.trials import Workloads, failed_result, run_planned_trial
from step7bench.measure.fingerprint import device_fingerprint, git_provenance

ProgressSink = PlainProgress | LiveProgress


@dataclass(frozen=True)
class RunOutcome:
    """What a run did: its id, the planned trial ids, how many it ran and how many failed."""

    run_id: str
    planned_ids: list[str]
    ran: int
    skipped: int
    failed: int


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def plan(suite: Suite, shard_spec: tuple[int, int] | None = None, nproc_per_node: int = 1) -> list[TrialSpec]:
    """The suite's trials, or one shard of them, data-parallel arms on `nproc_per_node` ranks."""
    trials = plan_trials(suite, nproc_per_node)
    return shard(trials, *shard_spec) if shard_spec else trials


def run_suite(suite: Suite, results_dir: Path | str, progress: ProgressSink, *, device: str = "auto",
              shard_spec: tuple[int, int] | None = None, command_line: Sequence[str] = (),
              nproc_per_node: int = 1) -> RunOutcome:
    """Run every trial of the plan that the store does not hold yet; data-parallel ones on
    `nproc_per_node` ranks."""
    check_nproc_per_node(nproc_per_node)
    trials = plan(suite, shard_spec, nproc_per_node)
    torch_device = resolve_device(device)
    with FolderLock(results_dir), ResultsStore(results_dir) as store:
        done = store.done_trial_ids()
        todo = [trial for trial in trials if trial.trial_id not in done]
        fingerprint = device_fingerprint(torch_device)
        run_id = store.add_run(_provenance(suite, fingerprint, command_line, shard_spec))
        runner = _TrialRunner(torch_device, Workloads(suite.registry), progress, nproc_per_node)
        progress.start(len(todo), len(trials) - len(todo))
        failed = 0
        try:
            for trial in todo:
                started_at = utc_now()
                result = runner.run(trial)
                store.add_trial(TrialRecord.of(trial, run_id, fingerprint["hardware_class"], started_at, utc_now()),
                                result)
                failed += result.status == "failed"
        finally:
            progress.close()
    return RunOutcome(run_id, [t.trial_id for t in trials], len(todo), len(trials) - len(todo), failed)


def _provenance(suite: Suite, fingerprint: dict[str, Any], command_line: Sequence[str],
                shard_spec: tuple[int, int] | None) -> dict[str, Any]:
    git = git_provenance()
    started_at = utc_now()
    return {
        # Time and pid name a run uniquely on one machine; shards on other machines differ
        # in their start times, and `merge` keeps the first of two equal ids.
        "run_id": f"{started_at}-{os.getpid()}", "started_at": started_at, "git_commit": git["commit"],
        "git_dirty": git["dirty"], "torch_version": torch.__version__, "device_fingerprint": fingerprint,
        "hardware_class": fingerprint["hardware_class"], "suite_name": suite.name,
        "suite_hash": suite.suite_hash, "command_line": " ".join(command_line or sys.argv),
        "python_version": platform.python_version(),
        "shard": f"{shard_spec[0]}/{shard_spec[1]}" if shard_spec else None,
    }


class _TrialRunner:
    """Runs each trial in this process, or, for a data-parallel trial, on `nproc_per_node` ranks
    (which build it from the same registry), and reports progress."""

    def __init__(self, device: torch.device, workloads: Workloads, progress: ProgressSink,
                 nproc_per_node: int = 1) -> None:
        self.device, self.workloads, self.progress = device, workloads, progress
        self.nproc_per_node = nproc_per_node

    def run(self, trial: TrialSpec) -> TrialResult:
        self.progress.trial_started(trial)
        if runs_data_parallel(trial, self.nproc_per_node):
            try:
                result = run_data_parallel(trial, self.device, self.nproc_per_node,
                                           self.workloads.registry.plugin_modules)
            except ParallelTrialError as exc:
                result = failed_result(trial, self.device, exc)
        else:
            result = run_planned_trial(trial, self.workloads, self.device,
                                       on_eval=lambda point: self.progress.evaluated(trial, point))
        self.progress.trial_finished(trial, result)
        return result
