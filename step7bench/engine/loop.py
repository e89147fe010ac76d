"""The one training loop: run a trial to its validation target or the end of its budget.

A trial is (workload, techniques, seed). It trains until the validation loss reaches the target
and stays there (engine/target.py: checks placed densely near the target, a crossing confirmed
over `confirm_steps`), or its step or wall-second budget runs out; its cost is the ledger at the
crossing. A trial that misses the target or diverges has infinite cost downstream; it is
reported, not dropped (AlgoPerf). Validation checks are off the cost clock.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist

from step7bench.engine.context import TrialContext
from step7bench.engine.costs import CostClock
from step7bench.engine.ledger import Ledger
from step7bench.engine.stages import Plugin, StageSet, compose
from step7bench.engine.target import CheckRule, Crossing, TargetWatch
from step7bench.errors import UserError
from step7bench.measure.clock import Clock
from step7bench.measure.energy import EnergyMeter, open_meter
from step7bench.measure.flops import FlopCounter
from step7bench.measure.memory import peak_memory_bytes, reset_peak_memory
from step7bench.seeding import derive_seed
from step7bench.workloads.base import Budget, ExampleDataset, Hyperparameters, Workload

Status = Literal["reached", "missed", "diverged", "failed"]

StopReason = Literal["target", "diverged", "max_steps", "max_seconds"]
STOP_REASONS: tuple[StopReason, ...] = ("target", "diverged", "max_steps", "max_seconds")
"""Why a trial stopped: it reached its target, diverged, or ran out of its step budget or its
wall-clock budget. Only `max_seconds` makes its counts (steps, FLOPs) depend on the machine's
speed. A failed trial (the code raised) has none."""
TIME_BOUND: StopReason = "max_seconds"


@dataclass(frozen=True)
class EvalPoint:
    """One validation check: the loss then and the ledger up to then."""

    step: int
    val_loss: float
    train_loss: float  # mean training loss over the steps since the previous check
    ledger: dict[str, Any]


@dataclass
class TrialResult:
    status: Status
    workload: str
    preset: str
    techniques: list[str]
    seed: int
    device: str
    target_val_loss: float
    steps_to_target: int | None
    best_val_loss: float
    curve: list[EvalPoint]
    ledger: Ledger
    technique_stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    stop_reason: StopReason | None = None  # None for a failed trial
    target_resolution_steps: int | None = None  # steps between the crossing check and the one before
    model: torch.nn.Module | None = None  # the trained model, when `run_trial(keep_model=True)`
    torch_threads: int | None = None  # torch's CPU threads while it trained (None: it never ran)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "stop_reason": self.stop_reason, "workload": self.workload,
            "preset": self.preset,
            "techniques": self.techniques, "seed": self.seed, "device": self.device,
            "target_val_loss": self.target_val_loss, "steps_to_target": self.steps_to_target,
            "target_resolution_steps": self.target_resolution_steps,
            "best_val_loss": self.best_val_loss,
            "curve": [vars(point) for point in self.curve],
            "ledger": self.ledger.snapshot(), "technique_stats": self.technique_stats,
            "error": self.error, "torch_threads": self.torch_threads,
        }


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' takes CUDA when present, else the CPU. A CUDA request without CUDA is a UserError."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in {"cpu", "cuda"}:
        raise UserError(f"unknown device {name!r} (choose from auto, cpu, cuda)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but torch sees no CUDA device")
    return torch.device(name)


def build_optimizer(model: torch.nn.Module, hparams: Hyperparameters) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on every parameter of two or more dimensions (weight
    matrices, convolution kernels, token and position embedding tables) and none on 1-D ones
    (biases, norm scales), the usual practice since GPT-2. Fused: one kernel for the whole update
    (a grammar-lm small step took 13.0 ms fused against 15.4 ms with the per-tensor loop on one
    CPU thread); the same arithmetic, so a seed's run stays bit-identical run to run."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=hparams.lr, betas=hparams.betas, fused=True)


OnEval = Callable[[EvalPoint], None]


def run_trial(workload: Workload, seed: int, plugins: Sequence[Plugin] = (), *,
              device: str | torch.device = "auto", target_val_loss: float | None = None,
              budget: Budget | None = None, hparams: Hyperparameters | None = None,
              train: ExampleDataset | None = None, val: ExampleDataset | None = None,
              on_eval: OnEval | None = None, keep_model: bool = False) -> TrialResult:
    """Train `workload` from a seeded initialisation with the given technique plugins.

    `train`/`val` replace the workload's datasets (transfer learning pretrains this way on the
    source data); `target_val_loss`, `budget` and `hparams` default to the workload's
    (`hparams.eval_every = 0` trains without a validation check: a technique's own helper model
    needs none). `keep_model` returns the trained model in `TrialResult.model`. An exception
    inside the trial is returned as status 'failed' with its traceback, never raised, so a suite
    goes on.
    """
    device = resolve_device(device)
    trial = _Trial(workload, seed, list(plugins), device,
                   target_val_loss if target_val_loss is not None else workload.target_val_loss,
                   budget or workload.budget, hparams or workload.hparams,
                   workload.train if train is None else train, workload.val if val is None else val, on_eval)
    return trial.run(keep_model)


class _Trial:
    """The state of one run_trial call; `run` is the loop."""

    def __init__(self, workload: Workload, seed: int, plugins: list[Plugin], device: torch.device,
                 target_val_loss: float, budget: Budget, hparams: Hyperparameters, train: ExampleDataset,
                 val: ExampleDataset, on_eval: OnEval | None) -> None:
        self.workload, self.seed, self.plugins, self.device = workload, seed, plugins, device
        self.target_val_loss, self.budget, self.hparams, self.val = target_val_loss, budget, hparams, val
        self.stages: StageSet = compose(plugins)
        self.on_eval = on_eval
        self.curve: list[EvalPoint] = []
        self.ledger = Ledger()
        self.train_data = train
        self.ctx: TrialContext | None = None
        self.watch = TargetWatch(CheckRule.of(hparams), target_val_loss)
        self.crossing: Crossing | None = None

    def run(self, keep_model: bool) -> TrialResult:
        meter = open_meter(self.device)
        try:
            stop_reason = self._train(meter)
            error = None
        except Exception as exc:  # a broken technique must not stop the suite
            stop_reason, error = None, "".join(traceback.format_exception(exc)).strip()
        finally:
            meter.close()
        self.ledger.peak_memory_bytes = peak_memory_bytes(self.device)
        model = self.ctx.model if keep_model and self.ctx is not None else None
        return self._result(stop_reason, error, model)

    def _train(self, meter: EnergyMeter) -> StopReason:
        ctx = self.ctx = self._context(meter)
        stages = self.stages
        # Init runs outside every window: transfer learning's pretraining is a trial of its own,
        # with its own meter, charged apart by `charge_pretraining`. Prepare (DDP/ZeRO wrapping)
        # follows, so every stage's setup sees the model and optimizer it will train.
        stages.init.init(ctx)
        stages.prepare.prepare(ctx)
        # Setup is part of the cost (a technique's up-front scoring, say): it runs inside the
        # first training segment, so its overhead gets joules as well as seconds.
        ctx.costs.open_segment()
        for stage in stages.all_stages():
            stage.setup(ctx)
        batch_size, watch = self.hparams.batch_size, self.watch
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        losses_in_segment = 0
        rules = _stop_rules(self.budget.stop_seconds, self.device)
        # A crossing found at the last steps of the budget is confirmed past it (uncharged).
        while (ctx.step < self.budget.stop_steps or watch.confirming) and not rules.out_of_time(ctx.costs):
            ids = stages.order.next_ids(ctx, stages.select.in_play(ctx), batch_size)
            batch = self.train_data.gather(ids).to(self.device)
            for transform in stages.transform:
                batch = transform.transform(ctx, batch)
            for gate in stages.gate:
                batch = gate.gate(ctx, batch)
            if rules.skip(ctx.costs, len(batch)):
                continue
            loss = stages.step.step(ctx, batch)
            if loss is None:
                continue
            stages.schedule.after_optimizer_step(ctx, loss)
            # A NaN or infinite loss makes the running sum non-finite: one op per step checks both.
            loss_sum += loss.double()
            losses_in_segment += 1
            if watch.due(ctx.step):
                ctx.costs.close_segment()
                outcome = self._evaluate(ctx, meter, loss_sum, losses_in_segment)
                if outcome is not None:
                    return outcome
                loss_sum.zero_()
                losses_in_segment = 0
                ctx.costs.open_segment()
                # Feedback runs inside the next segment, so what a stage books there as
                # overhead gets joules as well as seconds. Only the coarse checks give it, so
                # measuring densely near the target never changes what a technique does.
                if watch.feedback_due(ctx.step):
                    for stage in stages.all_stages():
                        stage.on_eval(ctx, self.curve[-1].val_loss)
        ctx.costs.close_segment()
        if watch.rule.every and losses_in_segment:
            outcome = self._evaluate(ctx, meter, loss_sum, losses_in_segment)
            if outcome is not None:
                return outcome
        return "max_steps" if ctx.step >= self.budget.stop_steps else TIME_BOUND

    def _context(self, meter: EnergyMeter) -> TrialContext:
        torch.manual_seed(derive_seed(self.seed, "model-init"))
        model = self.workload.build_model().to(self.device)
        model.train()
        flops = FlopCounter(model, self.workload.loss)
        # Count the training examples' shape now, off the cost clock: counting runs a deep copy
        # and a forward and backward pass, which would otherwise land in the first segment.
        # Training batches are gathered whole from the dataset, so they all have this shape.
        flops.per_example(self.train_data.inputs[:1].to(self.device), self.train_data.targets[:1].to(self.device))
        reset_peak_memory(self.device)
        clock = Clock(self.device)
        return TrialContext(
            workload=self.workload, model=model, optimizer=build_optimizer(model, self.hparams), device=self.device,
            seed=self.seed, train=self.train_data, hparams=self.hparams, budget=self.budget, ledger=self.ledger,
            clock=clock, flops=flops, costs=CostClock(self.ledger, clock, meter))

    def _evaluate(self, ctx: TrialContext, meter: EnergyMeter, loss_sum: torch.Tensor,
                  losses: int) -> StopReason | None:
        """Validation check off the cost clock; returns why the trial stops, or None to go on
        (the caller then gives the stages its feedback)."""
        start_s = ctx.clock.now()
        meter.begin_window("eval")
        val_loss = self.workload.evaluate(ctx.model, self.device, self.val)
        energy = meter.end_window("eval")
        self.ledger.wall_eval_s += ctx.clock.now() - start_s
        self.ledger.charge_energy(energy.energy_j, energy.method, bucket="eval")
        train_loss = float(loss_sum) / max(losses, 1)
        point = EvalPoint(ctx.step, val_loss, train_loss, self.ledger.snapshot())
        self.curve.append(point)
        if self.on_eval is not None:
            self.on_eval(point)
        if not math.isfinite(train_loss) or not math.isfinite(val_loss):
            return "diverged"
        self.crossing = self.watch.record(ctx.step, val_loss)
        return "target" if self.crossing is not None else None

    def _result(self, stop_reason: StopReason | None, error: str | None, model: torch.nn.Module | None) -> TrialResult:
        status: Status = ("failed" if stop_reason is None else "reached" if stop_reason == "target"
                          else "diverged" if stop_reason == "diverged" else "missed")
        finite = [p.val_loss for p in self.curve if p.val_loss == p.val_loss]
        crossing = self.crossing if status == "reached" else None
        return TrialResult(
            status=status, workload=self.workload.name, preset=self.workload.preset.name,
            techniques=[p.name for p in self.plugins], seed=self.seed, device=str(self.device),
            target_val_loss=self.target_val_loss, steps_to_target=crossing.step if crossing else None,
            best_val_loss=min(finite, default=float("inf")), curve=self.curve, ledger=self._cost_ledger(crossing),
            technique_stats={p.name: _plugin_stats(p) for p in self.plugins}, error=error,
            stop_reason=stop_reason, target_resolution_steps=crossing.resolution_steps if crossing else None,
            model=model, torch_threads=torch.get_num_threads())

    def _cost_ledger(self, crossing: Crossing | None) -> Ledger:
        """What the trial cost: the ledger at the crossing check for a reached trial (the steps
        trained to confirm it are not charged), else everything it spent."""
        if crossing is None:
            return self.ledger
        snapshot = next(point.ledger for point in self.curve if point.step == crossing.step)
        return dataclasses.replace(Ledger.from_snapshot(snapshot), peak_memory_bytes=self.ledger.peak_memory_bytes)


def _plugin_stats(plugin: Plugin) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    for stage in plugin.stage_objects():
        stats.update(stage.stats())
    return stats


class _OneProcess:
    """The stop and skip rules of a trial in one process: its own clock, its own batch."""

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds

    def out_of_time(self, costs: CostClock) -> bool:
        return costs.spent_s() >= self.max_seconds

    def skip(self, costs: CostClock, examples: int) -> bool:
        return examples == 0


class _AgreedAcrossRanks(_OneProcess):
    """The same rules agreed by every rank of a process group, so that no rank steps (and waits
    in DDP's gradient all-reduce) while another has stopped or skipped.

    One all-reduce (MAX) per batch carries both this rank's spent seconds and whether its batch
    is empty: if any rank is out of time all stop, and if any rank's batch is empty all skip the
    step (the other ranks' slices of that batch go untrained; what the gates spent on them stays
    charged). The decision is taken after gating, so a rank never stops between gating and
    stepping alone. Measured cost: about 0.4 ms per all-reduce of two float64 on two gloo ranks
    of a busy 2-core CPU, the same order as DDP's own gradient all-reduce of a tiny model.
    """

    def __init__(self, max_seconds: float, device: torch.device) -> None:
        super().__init__(max_seconds)
        self._device = device  # NCCL reduces only tensors on the rank's GPU
        self._stop = False

    def out_of_time(self, costs: CostClock) -> bool:
        return self._stop

    def skip(self, costs: CostClock, examples: int) -> bool:
        flags = torch.tensor([costs.spent_s(), float(examples == 0)], dtype=torch.float64, device=self._device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        spent_s, any_empty = flags.tolist()
        self._stop = spent_s >= self.max_seconds
        return self._stop or any_empty > 0


def _stop_rules(max_seconds: float, device: torch.device) -> _OneProcess:
    """Per-process rules without a process group of several ranks, agreed rules with one."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return _AgreedAcrossRanks(max_seconds, device)
    return _OneProcess(max_seconds)
