"""Positive controls: arms whose speedup is known beforehand, to show the instrument can see one.

A benchmark that only ever says REFUTED has not shown it could say anything else. These two
arms have a true speedup known in advance; the report checks the pipeline (training, ledger,
store, pairing, statistics, verdict) finds it, and says the instrument is not to be trusted if
it does not (DESIGN.md §2).

- ``warm_start``: the baseline itself, except that at step k = `handover_fraction` x the step
  budget everything spent so far is booked as pretraining. So the arm "starts from the
  baseline's own state at step k of the same seed", with the same data order and schedule from k
  on, by construction. Its finetune-only step speedup is T/(T - k) for a baseline reaching the
  target at step T (exactly, where a seed's run is bit-identical), and all-in exactly 1.
- ``lr_scale``: the baseline with its learning rate scaled by `factor` (default 1/10: a
  deliberately weakened reference). The tuned baseline's speedup over it, to a target the
  weakened reference reaches, is a real effect of known direction, measured independently by
  `calibrate` on the calibration seeds (1.5x on digits micro, 3.5x on grammar-lm micro at 1/10;
  1/4 gave only 1.2x on digits micro, too close to 1 for a few seeds to resolve).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from step7bench.engine.context import TrialContext
from step7bench.engine.stages import Plugin, ScheduleStage, WarmupCosine
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import Workload

WARM_START, WEAK_REFERENCE = "warm_start", "lr_scale"
"""The two positive controls' registry names (the weakened reference is the baseline at a scaled rate)."""


class WarmStartHandover(ScheduleStage):
    """The baseline's schedule; at the handover step, the run so far becomes pretraining."""

    def __init__(self, handover_fraction: float) -> None:
        self.handover_fraction = handover_fraction
        self._schedule = WarmupCosine()
        self.handover_step = 0
        self.handed_over = False

    def setup(self, ctx: TrialContext) -> None:
        self._schedule.setup(ctx)
        self.handover_step = max(1, round(self.handover_fraction * ctx.budget.max_steps))

    def after_optimizer_step(self, ctx: TrialContext, loss: torch.Tensor) -> None:
        self._schedule.after_optimizer_step(ctx, loss)
        if ctx.step == self.handover_step:
            ctx.rebook_as_pretraining()
            self.handed_over = True

    def stats(self) -> dict[str, Any]:
        return {"handover_step": self.handover_step, "handed_over": self.handed_over,
                "activity": activity(self.handed_over, f"the first {self.handover_step} steps booked as pretraining"
                                     if self.handed_over else "reached the target before the handover", 1.0)}


class ScaledRate(ScheduleStage):
    """The baseline's warm-up and cosine over a learning rate scaled by `factor`."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._schedule = WarmupCosine()

    def setup(self, ctx: TrialContext) -> None:
        for group in ctx.optimizer.param_groups:
            group["lr"] *= self.factor
        self._schedule.setup(ctx)

    def after_optimizer_step(self, ctx: TrialContext, loss: torch.Tensor) -> None:
        self._schedule.after_optimizer_step(ctx, loss)

    def stats(self) -> dict[str, Any]:
        return {"lr_factor": self.factor,
                "activity": activity(self.factor != 1.0, f"learning rate x {self.factor:g}", self.factor)}


def _build_warm_start(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    fraction = config["handover_fraction"]
    if not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"handover_fraction must be in (0, 1), got {fraction!r}")
    return Plugin(WARM_START, schedule=WarmStartHandover(float(fraction)))


def _build_lr_scale(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    factor = config["factor"]
    if not isinstance(factor, (int, float)) or factor <= 0:
        raise ValueError(f"factor must be a number > 0, got {factor!r}")
    return Plugin(WEAK_REFERENCE, schedule=ScaledRate(float(factor)))


TECHNIQUES = (
    TechniqueSpec(
        name=WARM_START, summary="positive control: the baseline, its first k steps booked as pretraining",
        stages=("schedule",), build=_build_warm_start,
        defaults={"handover_fraction": 0.25},  # k a quarter of the budget: below every calibrated T measured
        positive_control=True),
    TechniqueSpec(
        name=WEAK_REFERENCE, summary="positive control: the baseline at a scaled learning rate (a weakened reference)",
        stages=("schedule",), build=_build_lr_scale,
        defaults={"factor": 0.1},  # LR/10: slower by a clear margin on every workload measured
        positive_control=True),
)
