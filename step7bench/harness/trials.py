"""The one place a planned trial is built and run: its workload (built once per process and
reused), its techniques' plugins from the registry, and the engine's `run_trial`. The runner
calls it in its own process; a data-parallel rank under torchrun calls it the same way.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable

import torch

from step7bench.engine import EvalPoint, Ledger, Plugin, TrialResult, run_trial
from step7bench.harness.matrix import TrialSpec
from step7bench.harness.registry import Registry
from step7bench.workloads import Workload


class Workloads:
    """Workload objects by (name, preset, data seed): a workload's data is built once per process,
    not once per trial (the grammar and code corpora take seconds to build)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._built: dict[tuple[str, str, int], Workload] = {}

    def get(self, trial: TrialSpec) -> Workload:
        entry = trial.workload
        key = (entry.name, entry.preset, entry.data_seed)
        if key not in self._built:
            self._built[key] = self.registry.workload(entry.name, entry.preset, entry.data_seed)
        return self._built[key]


def build_plugins(trial: TrialSpec, registry: Registry, workload: Workload) -> list[Plugin]:
    """Fresh plugins for the arm's techniques, with the suite's settings for each."""
    return [registry.technique(name).plugin(workload, trial.settings.get(name, {})) for name in trial.arm.techniques]


def run_planned_trial(trial: TrialSpec, workloads: Workloads, device: torch.device,
                      on_eval: Callable[[EvalPoint], None] | None = None) -> TrialResult:
    """Build and run `trial`. A workload or technique that cannot even be built fails this trial
    only: the result says why, and the suite goes on."""
    try:
        workload = workloads.get(trial)
        plugins = build_plugins(trial, workloads.registry, workload)
    except Exception as exc:
        return failed_result(trial, device, exc)
    entry = trial.workload
    hparams = dataclasses.replace(workload.hparams, eval_fine_band=math.inf) if trial.dense_checks else None
    return run_trial(workload, trial.seed, plugins, device=device, target_val_loss=entry.target_val_loss,
                     budget=entry.budget, hparams=hparams, on_eval=on_eval)


def failed_result(trial: TrialSpec, device: torch.device, exc: Exception) -> TrialResult:
    return TrialResult(
        status="failed", workload=trial.workload.name, preset=trial.workload.preset,
        techniques=list(trial.arm.techniques), seed=trial.seed, device=str(device),
        target_val_loss=trial.workload.target_val_loss, steps_to_target=None, best_val_loss=float("inf"),
        curve=[], ledger=Ledger(), error="".join(traceback.format_exception(exc)).strip())
