"""The loop's named stages, the baseline that fills them, and how techniques compose.

The stages are declared once, in `STAGES`, in the order they run; that order is the
composition rule (DESIGN.md §3). Once per trial, before training:

1. init      -- the starting weights                   (transfer learning's pretraining)
2. prepare   -- wrap the model and optimizer for the devices (DDP, ZeRO)

then at every step:

3. select    -- which examples are in play            (active learning's subset)
4. order     -- which of them form the next batch     (curriculum pacing)
5. transform -- change the batch                       (augmentation, a rank's shard)
6. gate      -- drop examples before the forward pass  (difficulty prediction)
7. step      -- forward / backward / update            (plain, gradient caching, accumulation)
8. schedule  -- learning rate after each optimizer step (the baseline's cosine, dynamic LR)

A technique contributes a `Plugin`: one stage object per stage it fills. Transform and gate
stages chain (each sees the previous one's batch, in the order the techniques are listed,
except that a transform marked `runs_first` -- data-parallel sharding -- goes before the rest);
any other stage filled by two techniques is a conflict, raised when the stack is composed,
never discovered mid-run. Every stage may implement `setup` (after init and prepare), `on_eval`
(feedback from each validation check) and `stats` (figures for the report).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from step7bench.engine.context import TrialContext
    from step7bench.workloads.base import Batch

class StageConflict(ValueError):
    """Two techniques fill a stage that does not define how they combine."""


class Stage:
    """Hooks every stage may use. Defaults do nothing."""

    def setup(self, ctx: TrialContext) -> None:
        """Called once before the first step, after `init` and `prepare`."""

    def on_eval(self, ctx: TrialContext, val_loss: float) -> None:
        """Called after each validation check, with its loss (feedback for dynamic methods)."""

    def stats(self) -> dict[str, Any]:
        """Figures for the report (hit rates, skip rates, selection sizes...)."""
        return {}


class InitStage(Stage):
    def init(self, ctx: TrialContext) -> None:
        """Set the model's starting weights; charge any pretraining with
        `ctx.ledger.charge_pretraining`."""
        raise NotImplementedError


class PrepareStage(Stage):
    def prepare(self, ctx: TrialContext) -> None:
        """Make the trial's model and optimizer ready for its devices: replace `ctx.model` and
        `ctx.optimizer` by wrapped ones (DDP, a sharded optimizer), set `ctx.ledger.world_size`.
        Runs once after `init` and before every stage's `setup`, so every stage sees the result."""
        raise NotImplementedError


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


# -- the baseline -------------------------------------------------------------------------


class FreshInit(InitStage):
    """Keep the model's seeded random initialisation."""

    def init(self, ctx: TrialContext) -> None:
        return None


class OneProcess(PrepareStage):
    """Train the model as built, in this process, on its device."""

    def prepare(self, ctx: TrialContext) -> None:
        return None


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


# -- composition --------------------------------------------------------------------------


@dataclass(frozen=True)
class StageSlot:
    """One stage of the loop: the base class its stage objects derive from, whether several
    techniques may fill it (they then run in the stack's order), and what the baseline runs there
    when no technique fills it (nothing, for a chaining stage)."""

    name: str
    kind: type[Stage]
    chains: bool
    baseline: type[Stage] | None


STAGES: tuple[StageSlot, ...] = (
    StageSlot("init", InitStage, chains=False, baseline=FreshInit),
    StageSlot("prepare", PrepareStage, chains=False, baseline=OneProcess),
    StageSlot("select", SelectStage, chains=False, baseline=AllExamples),
    StageSlot("order", OrderStage, chains=False, baseline=ShuffledEpochs),
    StageSlot("transform", TransformStage, chains=True, baseline=None),
    StageSlot("gate", GateStage, chains=True, baseline=None),
    StageSlot("step", StepStage, chains=False, baseline=PlainStep),
    StageSlot("schedule", ScheduleStage, chains=False, baseline=WarmupCosine),
)
"""The stages, in the order they run: the one declaration every other part derives from."""

STAGE_ORDER: tuple[str, ...] = tuple(slot.name for slot in STAGES)
CHAINABLE_STAGES = frozenset(slot.name for slot in STAGES if slot.chains)
_SLOTS = {slot.name: slot for slot in STAGES}


class Plugin:
    """What one technique contributes: a fresh stage object for each stage it fills, by stage
    name, e.g. ``Plugin("curriculum", order=PacedOrder(...))``; `plugin.order` is that object
    (None for a stage the plugin leaves to others).

    Build a new Plugin for every trial; stages keep per-trial state.
    """

    def __init__(self, name: str, **stages: Stage | None) -> None:
        for stage_name, stage in stages.items():
            if stage_name not in _SLOTS:
                raise TypeError(f"plugin {name!r}: no stage named {stage_name!r} (stages: {', '.join(STAGE_ORDER)})")
            if stage is not None and not isinstance(stage, _SLOTS[stage_name].kind):
                raise TypeError(f"plugin {name!r}: its {stage_name} stage must be a "
                                f"{_SLOTS[stage_name].kind.__name__}, got {type(stage).__name__}")
        self.name = name
        self._stages = {n: stages[n] for n in STAGE_ORDER if stages.get(n) is not None}

    def __getattr__(self, stage_name: str) -> Stage | None:
        if stage_name in _SLOTS:
            return self._stages.get(stage_name)
        raise AttributeError(stage_name)

    def filled_stages(self) -> list[str]:
        """Names of the stages this plugin fills, in run order."""
        return list(self._stages)

    def stage_objects(self) -> list[Stage]:
        return list(self._stages.values())

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {', '.join(self._stages)})"


class StageSet:
    """The stages of one trial, by stage name: for an exclusive stage the one object that runs
    there (a technique's, else the baseline's), for a chaining stage the list in run order."""

    def __init__(self, chosen: dict[str, Stage | list[Stage]]) -> None:
        self._chosen = chosen

    def __getattr__(self, stage_name: str) -> Any:
        if stage_name in _SLOTS:
            return self._chosen[stage_name]
        raise AttributeError(stage_name)

    def all_stages(self) -> list[Stage]:
        """Every stage object, in run order."""
        return [stage for name in STAGE_ORDER
                for stage in (self._chosen[name] if _SLOTS[name].chains else [self._chosen[name]])]


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
    chosen: dict[str, Stage | list[Stage]] = {}
    for slot in STAGES:
        filled = [getattr(p, slot.name) for p in plugins if getattr(p, slot.name) is not None]
        if slot.chains:
            # Sorting is stable: runs_first stages go first, the others keep the stack's order.
            chosen[slot.name] = sorted(filled, key=lambda stage: not getattr(stage, "runs_first", False))
        else:
            chosen[slot.name] = filled[0] if filled else slot.baseline()
    return StageSet(chosen)
