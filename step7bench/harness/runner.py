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
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from step7bench.engine import resolve_device
from step7bench.harness.lock import FolderLock
from step7bench.harness.matrix import TrialSpec, plan_trials, shard
from step7bench.harness.parallel import check_nproc_per_node
from step7bench.harness.progress import PlainProgress, LiveProgress
from step7bench.harness.store import ResultsStore, TrialRecord
from step7bench.harness.suite import Suite
from step7bench.harness.executor import Deadline, Executor
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
    past_deadline: list[TrialSpec] = field(default_factory=list)  # trials a deadline kept from starting


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def plan(suite: Suite, shard_spec: tuple[int, int] | None = None, nproc_per_node: int = 1,
         seeds_by_arm: Mapping[tuple[str, str], int] | None = None) -> list[TrialSpec]:
    """The suite's trials (some arms with more seeds: `plan_trials`), or one shard of them,
    data-parallel arms on `nproc_per_node` ranks."""
    trials = plan_trials(suite, nproc_per_node, seeds_by_arm)
    return shard(trials, *shard_spec) if shard_spec else trials


def run_suite(suite: Suite, results_dir: Path | str, progress: ProgressSink, *, device: str = "auto",
              shard_spec: tuple[int, int] | None = None, command_line: Sequence[str] = (),
              nproc_per_node: int = 1, jobs: int = 1, threads: int | None = None,
              deadline: Deadline | None = None, seeds_by_arm: Mapping[tuple[str, str], int] | None = None,
              adaptive: Mapping[str, Any] | None = None) -> RunOutcome:
    """Run every trial of the plan that the store does not hold yet, in `jobs` worker processes
    (one: in this process); data-parallel ones on `nproc_per_node` ranks. No trial starts that
    `deadline` says could not finish in time. `seeds_by_arm` and `adaptive` (the design and its
    decisions so far, recorded with the run) come from an adaptive design's driver."""
    check_nproc_per_node(nproc_per_node)
    trials = plan(suite, shard_spec, nproc_per_node, seeds_by_arm)
    torch_device = resolve_device(device)
    with FolderLock(results_dir), ResultsStore(results_dir) as store:
        done = store.done_trial_ids()
        todo = [trial for trial in trials if trial.trial_id not in done]
        fingerprint = device_fingerprint(torch_device)
        run_id = store.add_run({**_provenance(suite, fingerprint, command_line, shard_spec, jobs),
                                "adaptive": dict(adaptive or {}), "planned": [t.trial_id for t in trials]})
        executor = Executor(suite.registry, torch_device, jobs=jobs, threads=threads, nproc_per_node=nproc_per_node,
                            deadline=deadline)
        progress.start(len(todo), len(trials) - len(todo))
        ran = failed = 0
        try:
            for finished in executor.run(todo, started=progress.trial_started, watch=progress.evaluated):
                store.add_trial(TrialRecord.of(finished.trial, run_id, fingerprint["hardware_class"],
                                               _utc(finished.started_at_s), _utc(finished.started_at_s
                                                                                 + finished.seconds),
                                               finished.concurrent), finished.result)
                progress.trial_finished(finished.trial, finished.result)
                ran += 1
                failed += finished.result.status == "failed"
            if executor.skipped:
                store.update_run(run_id, past_deadline=[{"workload": t.workload.name, "arm": t.arm.name,
                                                         "seed": t.seed} for t in executor.skipped])
        finally:
            progress.close()
    return RunOutcome(run_id, [t.trial_id for t in trials], ran, len(trials) - len(todo), failed,
                      list(executor.skipped))


def _utc(monotonic_s: float) -> str:
    """A time.monotonic() reading as an ISO UTC timestamp."""
    wall = time.time() - (time.monotonic() - monotonic_s)
    return datetime.fromtimestamp(wall, timezone.utc).isoformat(timespec="milliseconds")


def _provenance(suite: Suite, fingerprint: dict[str, Any], command_line: Sequence[str],
                shard_spec: tuple[int, int] | None, jobs: int) -> dict[str, Any]:
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
        "shard": f"{shard_spec[0]}/{shard_spec[1]}" if shard_spec else None, "jobs": jobs,
        "calibration": {w.key: {"target": dict(w.calibration), "tuning": [dict(t) for t in w.tuning]}
                        for w in suite.workloads},
        "overrides": list(suite.overrides),
    }
