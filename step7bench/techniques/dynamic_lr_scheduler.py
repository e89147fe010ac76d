"""Dynamic learning-rate scheduling: the seed's `create_dynamic_scheduler` and its engine plug-in.

Three schedules, one interface (`.step(loss=...)` after every optimizer step, or every epoch in
a user's own loop as the seed shows):

- ``dynamic`` -- ours, because torch's `ReduceLROnPlateau` refuses factors >= 1. A multiplier
  on the rate is multiplied by `increase_factor` on every step whose loss improves on the best
  loss seen (relative `threshold`, as torch's plateau rule), up to `max_lr_factor`, and by
  `decrease_factor` once more than `patience` steps in a row fail to improve (torch's counting of
  `patience`), down to `min_lr_factor`. The first loss only sets the reference. The rule is
  `next_plateau_state`, a pure function. What the multiplier multiplies is the *envelope*: by
  default 1, so the rate is the starting rate x the multiplier (the seed's loop, unchanged); given
  `total_steps` (and `warmup_steps`), the baseline's own warm-up + cosine
  (`step7bench.engine.stages.warmup_cosine_factor`), so the rate still decays fully at the horizon
  whatever the rule does, and the rule is idle during warm-up (a loss falling there says the
  warm-up works, not that the rate is too low).
- ``cosine_restart`` -- torch's `CosineAnnealingWarmRestarts` (Loshchilov & Hutter, SGDR, 2017).
- ``one_cycle`` -- torch's `OneCycleLR` (Smith & Topin, "Super-Convergence", 2019), held at its
  last rate once it reaches `total_steps` instead of raising, so a loop may step it blindly.

The engine plug-in (`dynamic_lr`, a schedule stage) is stepped once per optimizer step, whatever
other techniques skip. Its ``dynamic`` rides on the baseline's own envelope (warm-up + cosine
fully decayed at the step budget) with the multiplier bounded to [`min_lr_factor`,
`max_lr_factor`] (default [1/2, 2]): a rule that raised the rate on every improving step and
never annealed ended 4.7-5x above the tuned rate and missed the target, which says nothing about
adapting the rate and everything about leaving the schedule undecayed (No Train No Gain, Kaddour
et al. 2023). ``cosine_restart`` gets the preset's linear warm-up first (AdamW from a fresh state
is unstable without it), while ``one_cycle``'s own rising phase is its warm-up. ``dynamic``
watches the *training* loss, smoothed by an exponential moving average: the validation checks
exist only to detect the target and are off the cost clock, so a schedule fed by them would
steer on free information the baseline never uses. Reading the loss each step synchronises the
device; that read is charged as technique overhead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import torch

from step7bench.engine.context import TrialContext
from step7bench.engine.stages import Plugin, ScheduleStage, warmup_cosine_factor
from step7bench.techniques._common import check_positive_int
from step7bench.techniques.registry import TechniqueSpec, activity
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


def _check_envelope(total_steps: int | None, warmup_steps: int) -> None:
    if total_steps is not None:
        check_positive_int(total_steps, "total_steps")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if warmup_steps and total_steps is None:
        raise ValueError("warmup_steps needs total_steps (the warm-up belongs to the warm-up + cosine envelope)")


class DynamicLRScheduler:
    """The ``dynamic`` rule on an optimizer: every param group's rate is its starting rate times
    the envelope at the steps taken times one shared multiplier (`state.lr_factor`).

    The envelope is 1 without `total_steps` (the seed's loop: the rule alone); with it, the
    baseline's warm-up + cosine over `total_steps` optimizer steps, `warmup_steps` of warm-up,
    during which the rule is idle and `step` needs no loss. `increases` and `decreases` count the
    rule's changes; `lowest_lr_factor` and `highest_lr_factor` the multiplier's range so far.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int = 5, increase_factor: float = 1.1,
                 decrease_factor: float = 0.5, *, min_lr_factor: float = 1e-3, max_lr_factor: float = 10.0,
                 threshold: float = 1e-4, total_steps: int | None = None, warmup_steps: int = 0) -> None:
        _check_rule(patience, increase_factor, decrease_factor)
        _check_bounds(min_lr_factor, max_lr_factor)
        if not threshold >= 0.0:
            raise ValueError(f"threshold must be >= 0, got {threshold!r}")
        _check_envelope(total_steps, warmup_steps)
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self._rule = {"patience": patience, "increase_factor": increase_factor,
                      "decrease_factor": decrease_factor, "min_lr_factor": min_lr_factor,
                      "max_lr_factor": max_lr_factor, "threshold": threshold}
        self.total_steps, self.warmup_steps = total_steps, warmup_steps
        self.state = PlateauState()
        self.steps = 0  # calls of `step`: optimizer steps taken, in a loop that steps it after each
        self.increases = 0
        self.decreases = 0
        self.lowest_lr_factor = self.highest_lr_factor = 1.0
        if total_steps is not None:
            self._apply()

    @property
    def warming_up(self) -> bool:
        """Whether the next `step` still falls in the warm-up (the rule idle, no loss needed)."""
        return self.steps < self.warmup_steps

    def envelope(self, step: int) -> float:
        """The rate's multiplier before the rule's, after `step` optimizer steps (1 without
        `total_steps`)."""
        return 1.0 if self.total_steps is None else warmup_cosine_factor(step, self.warmup_steps, self.total_steps)

    def step(self, loss: float | torch.Tensor | None = None) -> None:
        if not self.warming_up:
            if loss is None:
                raise ValueError("loss is required by the 'dynamic' scheduler (call step(loss=...))")
            before = self.state.lr_factor
            self.state = next_plateau_state(self.state, float(loss), **self._rule)
            self.increases += self.state.lr_factor > before
            self.decreases += self.state.lr_factor < before
            self.lowest_lr_factor = min(self.lowest_lr_factor, self.state.lr_factor)
            self.highest_lr_factor = max(self.highest_lr_factor, self.state.lr_factor)
        self.steps += 1
        self._apply()

    def _apply(self) -> None:
        factor = self.envelope(self.steps) * self.state.lr_factor
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base_lr * factor

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
    its extra keywords are `min_lr_factor` (floor of the multiplier, default 1e-3), `max_lr_factor`
    (its cap, default 10), `threshold` (relative improvement, default 1e-4), and `total_steps` with
    `warmup_steps` (default none: the multiplier scales the starting rate, as the seed's loop
    expects; with them it scales the baseline's warm-up + cosine, decayed fully at `total_steps`).
    Extra keywords of the other types go to torch: ``cosine_restart`` defaults to `T_0=10`,
    `T_mult=1`, `eta_min=0.0`; ``one_cycle`` needs `total_steps` (or `epochs` and
    `steps_per_epoch`) and peaks by default at each group's current rate (`max_lr`), with
    torch's other defaults (which also cycle Adam's beta1 / SGD's momentum).
    """
    _check_rule(patience, increase_factor, decrease_factor)
    if scheduler_type == "dynamic":
        unknown = sorted(set(kwargs) - {"min_lr_factor", "max_lr_factor", "threshold", "total_steps",
                                        "warmup_steps"})
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
    # Floor and cap of the rule's multiplier on the baseline's (tuned) warm-up + cosine: room to
    # double or halve the tuned rate, no more, so an improving streak cannot run away (an
    # unbounded-above rule once ended at 5x the tuned rate and missed the target).
    "min_lr_factor": 0.5,
    "max_lr_factor": 2.0,
    # EMA weight on the past of the training loss the 'dynamic' rule sees (about 10 steps).
    "loss_smoothing": 0.9,
    # cosine_restart: equal cycles fitted into the budget after warm-up.
    "cycles": 4,
}


class DynamicLRSchedule(ScheduleStage):
    """The configured scheduler, stepped once per optimizer step: ``dynamic`` on the baseline's
    warm-up + cosine over the step budget, ``cosine_restart`` after the preset's linear warm-up,
    ``one_cycle`` from the first step (its rise is its warm-up)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._scheduler: DynamicLRScheduler | TorchSchedule | None = None
        self._smoothed_loss: float | None = None
        self._peak_lr_factor = 0.0
        self._lowest_lr_factor = math.inf
        self._last_lr_factor: float | None = None

    def setup(self, ctx: TrialContext) -> None:
        self._base_lrs = [group["lr"] for group in ctx.optimizer.param_groups]
        # dynamic's envelope holds the warm-up itself; one_cycle's rise is its warm-up
        restarts = self._config["scheduler_type"] == "cosine_restart"
        self._warmup_steps = ctx.hparams.warmup_steps if restarts else 0
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
        self._last_lr_factor = self._lr_factor(ctx)
        self._peak_lr_factor = max(self._peak_lr_factor, self._last_lr_factor)
        if ctx.step > self._warmup_steps:  # the technique's own schedule, past any warm-up of the preset's
            self._lowest_lr_factor = min(self._lowest_lr_factor, self._last_lr_factor)

    def _loss_signal(self, ctx: TrialContext, loss: torch.Tensor) -> float | None:
        if not isinstance(self._scheduler, DynamicLRScheduler) or self._scheduler.warming_up:
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
                                            max_lr_factor=config["max_lr_factor"], total_steps=ctx.budget.max_steps,
                                            warmup_steps=ctx.hparams.warmup_steps)
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
        figures: dict[str, Any] = {"activity": self._activity(), "lr_peak_factor": self._peak_lr_factor,
                                   "lr_final_factor": self._last_lr_factor}
        if isinstance(self._scheduler, DynamicLRScheduler):
            figures.update(lr_increases=self._scheduler.increases, lr_decreases=self._scheduler.decreases,
                           lr_multiplier_min=self._scheduler.lowest_lr_factor,
                           lr_multiplier_max=self._scheduler.highest_lr_factor)
        return figures

    def _activity(self) -> dict[str, Any]:
        """``dynamic`` fired iff its multiplier left 1 (value: its largest departure, a factor >= 1);
        the other types replace the baseline's schedule, so they fired once they set a rate past
        the preset's warm-up (value: the highest rate, x the tuned one)."""
        scheduler = self._scheduler
        if isinstance(scheduler, DynamicLRScheduler):
            low, high = scheduler.lowest_lr_factor, scheduler.highest_lr_factor
            return activity(low < 1.0 or high > 1.0, f"LR multiplier ranged {low:.2f}-{high:.2f}x the tuned rate",
                            max(high, 1.0 / low))
        if self._lowest_lr_factor == math.inf:
            return activity(False, f"{self._config['scheduler_type']} never set a rate: no step past warm-up", 0.0)
        return activity(True, f"{self._config['scheduler_type']}: the rate ranged {self._lowest_lr_factor:.2f}-"
                              f"{self._peak_lr_factor:.2f}x the tuned rate", self._peak_lr_factor)


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
    summary="a training-loss-driven multiplier (raise while improving, cut on a plateau) on the baseline's "
            "warm-up + cosine, bounded; or cosine restarts, or one cycle",
    stages=("schedule",),
    build=build_plugin,
    defaults=DEFAULTS,
    # The seed's example. Its patience counts its calls of `step`, once per epoch in its loop;
    # the plug-in calls it once per optimizer step, so patience 5 means 5 steps here.
    as_specified={"scheduler_type": "dynamic", "patience": 5, "increase_factor": 1.1, "decrease_factor": 0.5},
    grid=(
        {"patience": 5, "increase_factor": 1.1, "decrease_factor": 0.5},     # the seed's factors
        {"patience": 20, "increase_factor": 1.05, "decrease_factor": 0.5},   # bold driver: +5% / halve
        {"patience": 20, "increase_factor": 1.01, "decrease_factor": 0.5},   # bold driver's gentlest raise
        {"patience": 50, "increase_factor": 1.01, "decrease_factor": 0.7},   # slower to call a plateau
        {"patience": 10, "increase_factor": 1.0, "decrease_factor": 0.1,     # ReduceLROnPlateau's defaults:
         "min_lr_factor": 0.01},                                             # cut only, by 10x
        {"patience": 20, "increase_factor": 1.05, "decrease_factor": 0.5, "max_lr_factor": 1.25},  # tight cap
    ),
    grid_source="the seed's factors (patience 5, x1.1, x0.5); the bold-driver rule (Vogl et al. 1988; Battiti "
                "1989): raise the rate by 1-10% while the loss improves, halve it when it does not; torch's "
                "ReduceLROnPlateau defaults (factor 0.1, patience 10); caps of the multiplier from 1.25 to 2",
)

# Changes no data, so no random control.
TECHNIQUES = (SPEC,)
