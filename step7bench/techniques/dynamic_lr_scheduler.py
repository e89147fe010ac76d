"""Dynamic learning-rate scheduling: the seed's `create_dynamic_scheduler` and its engine plug-in.

Three schedules, one interface (`.step(loss=...)` after every optimizer step, or every epoch in
a user's own loop as the seed shows):

- ``dynamic`` -- ours, because torch's `ReduceLROnPlateau` refuses factors >= 1. The rate is
  multiplied by `increase_factor` on every step whose loss improves on the best loss seen
  (relative `threshold`, as torch's plateau rule), up to `max_lr_factor` x the starting rate,
  and by `decrease_factor` once more than `patience` steps in a row fail to improve (torch's
  counting of `patience`), down to `min_lr_factor` x the starting rate. The first loss only
  sets the reference. The rule is `next_plateau_state`, a pure function.
- ``cosine_restart`` -- torch's `CosineAnnealingWarmRestarts` (Loshchilov & Hutter, SGDR, 2017).
- ``one_cycle`` -- torch's `OneCycleLR` (Smith & Topin, "Super-Convergence", 2019), held at its
  last rate once it reaches `total_steps` instead of raising, so a loop may step it blindly.

The engine plug-in (`dynamic_lr`, a schedule stage) replaces the baseline's warm-up + cosine.
It keeps the preset's linear warm-up before ``dynamic`` and ``cosine_restart`` (AdamW from a
fresh state is unstable without it; the technique is what comes after), while ``one_cycle``'s
own rising phase is its warm-up. It is stepped once per optimizer step, whatever other
techniques skip. ``dynamic`` watches the *training* loss, smoothed by an exponential moving
average: the validation checks exist only to detect the target and are off the cost clock, so
a schedule fed by them would steer on free information the baseline never uses. Reading the
loss each step synchronises the device; that read is charged as technique overhead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from step7bench.engine.context import TrialContext
from step7bench.engine.stages import Plugin, ScheduleStage
from step7bench.techniques._common import check_positive_int
from step7bench.techniques.registry import TechniqueSpec
from step7bench.workloads.base import Workload

SCHEDULER_TYPES = ("dynamic", "cosine_restart", "one_cycle")

# Defaults of the torch schedulers' own arguments where torch has none (documented in
# `create_dynamic_scheduler`).
COSINE_RESTART_DEFAULTS = {"T_0": 10, "T_mult": 1, "eta_min": 0.0}


# -- the math -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlateauState:
    """Where the ``dynamic`` rule stands: best loss so far, non-improving steps in a row, and
    the current rate as a multiple of the starting rate."""

    best_loss: float = math.inf
    bad_steps: int = 0
    lr_factor: float = 1.0


def is_improvement(loss: float, best_loss: float, threshold: float) -> bool:
    """True when `loss` beats `best_loss` by more than the relative `threshold` (torch's 'rel'
    mode of ReduceLROnPlateau, written sign-safe)."""
    return loss < best_loss - threshold * abs(best_loss)


def next_plateau_state(state: PlateauState, loss: float, *, patience: int, increase_factor: float,
                       decrease_factor: float, min_lr_factor: float, max_lr_factor: float,
                       threshold: float) -> PlateauState:
    """The ``dynamic`` rule after one more loss. A non-finite loss never improves."""
    if not math.isfinite(state.best_loss):
        return replace(state, best_loss=loss) if math.isfinite(loss) else state
    if is_improvement(loss, state.best_loss, threshold):
        return PlateauState(loss, 0, min(max_lr_factor, state.lr_factor * increase_factor))
    if state.bad_steps + 1 > patience:
        return PlateauState(state.best_loss, 0, max(min_lr_factor, state.lr_factor * decrease_factor))
    return replace(state, bad_steps=state.bad_steps + 1)


def smoothed(previous: float | None, value: float, smoothing: float) -> float:
    """Exponential moving average with weight `smoothing` on the past; the first value seeds it."""
    return value if previous is None else smoothing * previous + (1.0 - smoothing) * value


def linear_warmup_factor(step: int, warmup_steps: int) -> float:
    """Rate multiplier of optimizer step `step` (0-based) during a linear warm-up, as the
    baseline's schedule: (step + 1) / warmup_steps, then 1."""
    return min(1.0, (step + 1) / warmup_steps)


def restart_period_steps(steps: int, cycles: int) -> int:
    """`T_0` of a restart schedule that fits `cycles` equal cosine cycles into `steps`, so the
    rate is fully decayed when the budget ends, like the baseline's."""
    return max(1, math.ceil(steps / cycles))


# -- the seed's API -------------------------------------------------------------------------


def _check_rule(patience: int, increase_factor: float, decrease_factor: float) -> None:
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"patience must be an integer >= 0, got {patience!r}")
    if not increase_factor >= 1.0:
        raise ValueError(f"increase_factor must be >= 1 (it raises the rate), got {increase_factor!r}")
    if not 0.0 < decrease_factor <= 1.0:
        raise ValueError(f"decrease_factor must be in (0, 1] (it cuts the rate), got {decrease_factor!r}")


def _check_bounds(min_lr_factor: float, max_lr_factor: float) -> None:
    if not 0.0 < min_lr_factor <= 1.0:
        raise ValueError(f"min_lr_factor must be in (0, 1], got {min_lr_factor!r}")
    if not max_lr_factor >= 1.0:
        raise ValueError(f"max_lr_factor must be >= 1, got {max_lr_factor!r}")


class DynamicLRScheduler:
    """The ``dynamic`` rule on an optimizer: every param group's rate is its starting rate times
    one shared factor. `increases` and `decreases` count the changes made."""

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int = 5, increase_factor: float = 1.1,
                 decrease_factor: float = 0.5, *, min_lr_factor: float = 1e-3, max_lr_factor: float = 10.0,
                 threshold: float = 1e-4) -> None:
        _check_rule(patience, increase_factor, decrease_factor)
        _check_bounds(min_lr_factor, max_lr_factor)
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._rule = {"patience": patience, "increase_factor": increase_factor,
                      "decrease_factor": decrease_factor, "min_lr_factor": min_lr_factor,
                      "max_lr_factor": max_lr_factor, "threshold": threshold}
        self.state = PlateauState()
        self.increases = 0
        self.decreases = 0

    def step(self, loss: float | torch.Tensor | None = None) -> None:
        if loss is None:
            raise ValueError("loss is required by the 'dynamic' scheduler (call step(loss=...))")
        before = self.state.lr_factor
        self.state = next_plateau_state(self.state, float(loss), **self._rule)
        self.increases += self.state.lr_factor > before
        self.decreases += self.state.lr_factor < before
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * self.state.lr_factor

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]


class TorchSchedule:
    """A torch scheduler behind the same `.step(loss=...)`; the loss is ignored. With
    `total_steps`, steps past it hold the last rate (OneCycleLR would raise)."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler, total_steps: int | None = None) -> None:
        self.scheduler = scheduler
        self.total_steps = total_steps

    def step(self, loss: float | torch.Tensor | None = None) -> None:
        if self.total_steps is None or self.scheduler.last_epoch < self.total_steps:
            self.scheduler.step()

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()


def create_dynamic_scheduler(optimizer: torch.optim.Optimizer, scheduler_type: str = "dynamic", patience: int = 5,
                             increase_factor: float = 1.1, decrease_factor: float = 0.5,
                             **kwargs: Any) -> DynamicLRScheduler | TorchSchedule:
    """A scheduler whose `.step(loss=...)` works for every type; call it after `optimizer.step()`.

    `patience`, `increase_factor` and `decrease_factor` drive ``dynamic`` (checked for every type);
    its extra keywords are `min_lr_factor` (floor, default 1e-3 x the starting rate),
    `max_lr_factor` (cap, default 10 x) and `threshold` (relative improvement, default 1e-4).
    Extra keywords of the other types go to torch: ``cosine_restart`` defaults to `T_0=10`,
    `T_mult=1`, `eta_min=0.0`; ``one_cycle`` needs `total_steps` (or `epochs` and
    `steps_per_epoch`) and peaks by default at each group's current rate (`max_lr`), with
    torch's other defaults (which also cycle Adam's beta1 / SGD's momentum).
    """
    _check_rule(patience, increase_factor, decrease_factor)
    if scheduler_type == "dynamic":
        unknown = sorted(set(kwargs) - {"min_lr_factor", "max_lr_factor", "threshold"})
        if unknown:
            raise ValueError(f"scheduler_type 'dynamic' takes no argument {unknown[0]!r}")
        return DynamicLRScheduler(optimizer, patience, increase_factor, decrease_factor, **kwargs)
    if scheduler_type == "cosine_restart":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, **{**COSINE_RESTART_DEFAULTS, **kwargs})
        return TorchSchedule(scheduler)
    if scheduler_type == "one_cycle":
        if "total_steps" not in kwargs and not {"epochs", "steps_per_epoch"} <= set(kwargs):
            raise ValueError("total_steps is required by scheduler_type 'one_cycle' "
                             "(or give epochs and steps_per_epoch)")
        max_lr = kwargs.pop("max_lr", [group["lr"] for group in optimizer.param_groups])
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, **kwargs)
        return TorchSchedule(scheduler, total_steps=scheduler.total_steps)
    raise ValueError(f"scheduler_type must be one of {', '.join(SCHEDULER_TYPES)}, got {scheduler_type!r}")


# -- the engine plug-in ---------------------------------------------------------------------

DEFAULTS: Mapping[str, Any] = {
    "scheduler_type": "dynamic",
    # Counted in optimizer steps here, not epochs as in the seed's example: 20 steps of a
    # smoothed loss without a new best is a plateau, not batch noise.
    "patience": 20,
    "increase_factor": 1.1,
    "decrease_factor": 0.5,
    # Floor and cap as multiples of the preset's (tuned) rate: an order of magnitude of room
    # above it for the rule to find a faster rate, bounded so an improving streak cannot run away.
    "min_lr_factor": 1e-3,
    "max_lr_factor": 10.0,
    # EMA weight on the past of the training loss the 'dynamic' rule sees (about 10 steps).
    "loss_smoothing": 0.9,
    # cosine_restart: equal cycles fitted into the budget after warm-up.
    "cycles": 4,
}


class DynamicLRSchedule(ScheduleStage):
    """The preset's linear warm-up (not for one_cycle), then the configured scheduler, stepped
    once per optimizer step."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._scheduler: DynamicLRScheduler | TorchSchedule | None = None
        self._smoothed_loss: float | None = None
        self._peak_lr_factor = 0.0
        self._last_lr_factor: float | None = None

    def setup(self, ctx: TrialContext) -> None:
        self._base_lrs = [group["lr"] for group in ctx.optimizer.param_groups]
        one_cycle = self._config["scheduler_type"] == "one_cycle"
        self._warmup_steps = 0 if one_cycle else ctx.hparams.warmup_steps
        if self._warmup_steps:
            self._set_lr_factor(ctx, linear_warmup_factor(0, self._warmup_steps))
        else:
            self._scheduler = self._build(ctx)

    def after_optimizer_step(self, ctx: TrialContext, loss: torch.Tensor) -> None:
        if self._scheduler is not None:
            self._scheduler.step(loss=self._loss_signal(ctx, loss))
        elif ctx.step < self._warmup_steps:
            self._set_lr_factor(ctx, linear_warmup_factor(ctx.step, self._warmup_steps))
        else:
            self._set_lr_factor(ctx, 1.0)
            self._scheduler = self._build(ctx)
        self._peak_lr_factor = max(self._peak_lr_factor, self._lr_factor(ctx))
        self._last_lr_factor = self._lr_factor(ctx)

    def _loss_signal(self, ctx: TrialContext, loss: torch.Tensor) -> float | None:
        if not isinstance(self._scheduler, DynamicLRScheduler):
            return None
        # The rule reads the loss on the host every step. On CUDA the window's opening clock
        # read waits for the step's queued kernels, and that wait is booked to training (see
        # TrialContext's note on attribution); what lands here is the copy and the smoothing.
        with ctx.overhead():
            self._smoothed_loss = smoothed(self._smoothed_loss, float(loss), self._config["loss_smoothing"])
        return self._smoothed_loss

    def _build(self, ctx: TrialContext) -> DynamicLRScheduler | TorchSchedule:
        config = self._config
        kind = config["scheduler_type"]
        rule = {key: config[key] for key in ("patience", "increase_factor", "decrease_factor")}
        if kind == "dynamic":
            return create_dynamic_scheduler(ctx.optimizer, kind, **rule, min_lr_factor=config["min_lr_factor"],
                                            max_lr_factor=config["max_lr_factor"])
        if kind == "cosine_restart":
            period = restart_period_steps(ctx.budget.max_steps - self._warmup_steps, config["cycles"])
            return create_dynamic_scheduler(ctx.optimizer, kind, **rule, T_0=period)
        # The arm changes the rate only: AdamW's beta1 stays the preset's, so no momentum cycling.
        return create_dynamic_scheduler(ctx.optimizer, kind, **rule, total_steps=ctx.budget.max_steps,
                                        cycle_momentum=False)

    def _set_lr_factor(self, ctx: TrialContext, factor: float) -> None:
        for group, base_lr in zip(ctx.optimizer.param_groups, self._base_lrs):
            group["lr"] = base_lr * factor

    def _lr_factor(self, ctx: TrialContext) -> float:
        return ctx.optimizer.param_groups[0]["lr"] / self._base_lrs[0]

    def stats(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"lr_peak_factor": self._peak_lr_factor,
                                   "lr_final_factor": self._last_lr_factor}
        if isinstance(self._scheduler, DynamicLRScheduler):
            figures.update(lr_increases=self._scheduler.increases, lr_decreases=self._scheduler.decreases)
        return figures


def _check_config(config: Mapping[str, Any]) -> None:
    if config["scheduler_type"] not in SCHEDULER_TYPES:
        raise ValueError(f"scheduler_type must be one of {', '.join(SCHEDULER_TYPES)}, "
                         f"got {config['scheduler_type']!r}")
    _check_rule(config["patience"], config["increase_factor"], config["decrease_factor"])
    _check_bounds(config["min_lr_factor"], config["max_lr_factor"])
    if not 0.0 <= config["loss_smoothing"] < 1.0:
        raise ValueError(f"loss_smoothing must be in [0, 1), got {config['loss_smoothing']!r}")
    check_positive_int(config["cycles"], "cycles")


def build_plugin(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    _check_config(config)
    return Plugin("dynamic_lr", schedule=DynamicLRSchedule(config))


SPEC = TechniqueSpec(
    name="dynamic_lr",
    summary="learning rate driven by the training loss (or cosine restarts, or one cycle) "
            "instead of the baseline's warm-up + cosine",
    stages=("schedule",),
    build=build_plugin,
    defaults=DEFAULTS,
)

# Changes no data, so no random control.
TECHNIQUES = (SPEC,)
