"""The loop's named stages, the baseline that fills them, and how techniques compose.

Each iteration runs the stages in a fixed order; that order is the composition rule
(DESIGN.md §3):

1. select    -- which examples are in play            (active learning's subset)
2. order     -- which of them form the next batch     (curriculum pacing)
3. transform -- change the batch                       (augmentation)
4. gate      -- drop examples before the forward pass  (difficulty prediction)
5. step      -- forward / backward / update            (plain, gradient caching, ZeRO)
6. schedule  -- learning rate after each optimizer step
7. init      -- the starting weights, once, before training (transfer learning)

A technique contributes a `Plugin`: one stage object per stage it fills. Transform and gate
stages chain (each sees the previous one's batch, in the order the techniques are listed,
except that a transform marked `runs_first` -- data-parallel sharding -- goes before the rest);
any other stage filled by two techniques is a conflict, raised when the stack is composed,
never discovered mid-run. Every stage may implement `setup`, `on_eval` (feedback from each
validation check) and `stats` (figures for the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from step7bench.engine.context import TrialContext
    from step7bench.workloads.base import Batch

STAGE_ORDER = ("select", "order", "transform", "gate", "step", "schedule", "init")
CHAINABLE_STAGES = frozenset({"transform", "gate"})


class StageConflict(ValueError):
    """Two techniques fill a stage that does not define how they combine."""


class Stage:
    """Hooks every stage may use. Defaults do nothing."""

    def setup(self, ctx: TrialContext) -> None:
        """Called once before the first step, after `init`."""

    def on_eval(self, ctx: TrialContext, val_loss: float) -> None:
        """Called after each validation check, with its loss (feedback for dynamic methods)."""

    def stats(self) -> dict[str, Any]:
        """Figures for the report (hit rates, skip rates, selection sizes...)."""
        return {}


class SelectStage(Stage):
    def in_play(self, ctx: TrialContext) -> torch.Tensor:
        """Ids of the training examples in play at this step. Return the same tensor object
        while the selection is unchanged; the order stage uses identity to notice changes."""
        raise NotImplementedError


class OrderStage(Stage):
    def next_ids(self, ctx: TrialContext, in_play: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Ids of the next batch, drawn from `in_play`."""
        raise NotImplementedError


class TransformStage(Stage):
    # A transform that narrows the batch to this process's share (data-parallel sharding) runs
    # before every other transform, whatever the stack's order, so that the others work on
    # that share only and not on the whole global batch on every rank.
    runs_first: ClassVar[bool] = False

    def transform(self, ctx: TrialContext, batch: Batch) -> Batch:
        raise NotImplementedError


class GateStage(Stage):
    def gate(self, ctx: TrialContext, batch: Batch) -> Batch:
        """The examples of `batch` that go through the forward pass (possibly none)."""
        raise NotImplementedError


class StepStage(Stage):
    def step(self, ctx: TrialContext, batch: Batch) -> torch.Tensor | None:
        """Train on `batch`; return the detached training loss, or None if no optimizer step
        was taken. Use `ctx.forward`, `ctx.backward` and `ctx.optimizer_step` so every pass is
        charged to the ledger."""
        raise NotImplementedError


class ScheduleStage(Stage):
    def after_optimizer_step(self, ctx: TrialContext, loss: torch.Tensor) -> None:
        raise NotImplementedError


class InitStage(Stage):
    def init(self, ctx: TrialContext) -> None:
        """Set the model's starting weights; charge any pretraining with
        `ctx.ledger.charge_pretraining`."""
        raise NotImplementedError


# -- the baseline -------------------------------------------------------------------------


class AllExamples(SelectStage):
    """Every training example, always."""

    def setup(self, ctx: TrialContext) -> None:
        self._ids = ctx.train.all_ids()

    def in_play(self, ctx: TrialContext) -> torch.Tensor:
        return self._ids


class ShuffledEpochs(OrderStage):
    """Epochs over the examples in play, each in a fresh random order (seeded per trial).

    When the set in play changes, the epoch restarts over the new set.
    """

    def setup(self, ctx: TrialContext) -> None:
        self._generator = ctx.torch_generator("data-order")
        self._source: torch.Tensor | None = None
        self._queue = torch.empty(0, dtype=torch.long)

    def next_ids(self, ctx: TrialContext, in_play: torch.Tensor, batch_size: int) -> torch.Tensor:
        if in_play is not self._source:
            self._source, self._queue = in_play, torch.empty(0, dtype=torch.long)
        while len(self._queue) < batch_size:
            epoch = in_play[torch.randperm(len(in_play), generator=self._generator)]
            self._queue = torch.cat([self._queue, epoch])
        ids, self._queue = self._queue[:batch_size], self._queue[batch_size:]
        return ids


class PlainStep(StepStage):
    """One forward, one backward, one optimizer step on the whole batch."""

    def step(self, ctx: TrialContext, batch: Batch) -> torch.Tensor | None:
        loss = ctx.workload.loss(ctx.forward(batch), batch.targets)
        ctx.backward(loss, batch)
        ctx.optimizer_step()
        return loss.detach()


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(ScheduleStage):
    """The baseline's schedule through torch's LambdaLR, fully decayed at the step budget."""

    def setup(self, ctx: TrialContext) -> None:
        warmup, total = ctx.hparams.warmup_steps, ctx.budget.max_steps
        self._scheduler = torch.optim.lr_scheduler.LambdaLR(
            ctx.optimizer, lambda step: warmup_cosine_factor(step, warmup, total))

    def after_optimizer_step(self, ctx: TrialContext, loss: torch.Tensor) -> None:
        self._scheduler.step()


class FreshInit(InitStage):
    """Keep the model's seeded random initialisation."""

    def init(self, ctx: TrialContext) -> None:
        return None


# -- composition --------------------------------------------------------------------------


@dataclass(frozen=True)
class Plugin:
    """What one technique contributes: a fresh stage object for each stage it fills.

    Build a new Plugin for every trial; stages keep per-trial state.
    """

    name: str
    select: SelectStage | None = None
    order: OrderStage | None = None
    transform: TransformStage | None = None
    gate: GateStage | None = None
    step: StepStage | None = None
    schedule: ScheduleStage | None = None
    init: InitStage | None = None

    def filled_stages(self) -> list[str]:
        return [name for name in STAGE_ORDER if getattr(self, name) is not None]


@dataclass
class StageSet:
    """The stages of one trial: techniques' where they fill one, the baseline's elsewhere."""

    select: SelectStage
    order: OrderStage
    transforms: list[TransformStage]
    gates: list[GateStage]
    step: StepStage
    schedule: ScheduleStage
    init: InitStage

    BASELINE: ClassVar[dict[str, type[Stage]]] = {
        "select": AllExamples, "order": ShuffledEpochs, "step": PlainStep,
        "schedule": WarmupCosine, "init": FreshInit,
    }

    def all_stages(self) -> list[Stage]:
        return [self.init, self.select, self.order, *self.transforms, *self.gates, self.step, self.schedule]


def check_compatible(plugin_stages: dict[str, list[str]]) -> None:
    """Raise StageConflict if two techniques claim one exclusive stage.

    `plugin_stages` maps a technique name to the stages it fills, so suites can check a stack
    at load time without building any stage.
    """
    owners: dict[str, str] = {}
    for technique, stages in plugin_stages.items():
        for stage in stages:
            if stage in CHAINABLE_STAGES:
                continue
            if stage in owners:
                raise StageConflict(f"techniques {owners[stage]!r} and {technique!r} both fill the "
                                    f"{stage!r} stage, which does not combine two")
            owners[stage] = technique


def compose(plugins: list[Plugin]) -> StageSet:
    """One StageSet from the plugins of a stack, in the order given."""
    check_compatible({plugin.name: plugin.filled_stages() for plugin in plugins})
    chosen: dict[str, Any] = {}
    for stage_name in (f.name for f in fields(Plugin) if f.name != "name"):
        filled = [getattr(p, stage_name) for p in plugins if getattr(p, stage_name) is not None]
        if stage_name == "transform":
            chosen["transforms"] = sorted(filled, key=lambda stage: not stage.runs_first)  # stable
        elif stage_name in CHAINABLE_STAGES:
            chosen[stage_name + "s"] = filled
        else:
            chosen[stage_name] = filled[0] if filled else StageSet.BASELINE[stage_name]()
    return StageSet(**chosen)
