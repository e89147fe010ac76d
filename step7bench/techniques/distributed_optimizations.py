"""Distributed training: data parallelism (DDP), ZeRO-1 optimizer-state sharding and gradient
accumulation, all from `torch.distributed` (gloo on CPU, NCCL on GPUs).

None of it reduces the *work* to reach a target: data parallelism spreads the same global
batch over `world_size` devices (less wall time, not fewer device-seconds), ZeRO-1 shards
AdamW's two moments so each rank holds 1/N of them (memory, not compute: fp32 AdamW holds
8P + 8P/N bytes per rank for parameters + gradients + moments, per the ZeRO paper, Rajbhandari
et al. 2020), and accumulation trades memory for smaller matmuls. The benchmark's job is to show
those costs honestly: the ledger of a data-parallel trial charges wall x world size
device-seconds (`combine_rank_ledgers`).

`ZeroRedundancyOptimizer` shards whole tensors, greedily by size, so a large embedding
unbalances the shards; `shard_imbalance` reports max/mean of the per-rank state bytes.

Engine plug-ins, and why two:

- `distributed` fills the *prepare* stage (wraps `ctx.model` in DDP and `ctx.optimizer` in ZeRO,
  once, before any stage is set up, so every stage sees the wrapped ones) and the *transform*
  stage (this rank's slice of the global batch, before any other transform). It stacks with
  every technique, gradient caching included (which sums its signature across ranks so all
  ranks agree on hits). Its spec is marked `data_parallel`: the harness runs its arms on several
  ranks under torchrun when asked to. Without an initialised process group of more than one rank
  it leaves everything as it is.
- `gradient_accumulation` fills the *step* stage: k micro-batches, `no_sync` on all but the
  last, one optimizer step. It is a step strategy like gradient caching, so the two conflict by
  the engine's rule and the all-techniques stack leaves accumulation out: it changes memory,
  not the arithmetic of a step, so it has no cost claim to stack.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.optim import ZeroRedundancyOptimizer
from torch.nn.parallel import DistributedDataParallel

from step7bench.engine.context import TrialContext
from step7bench.engine.ledger import Ledger
from step7bench.engine.stages import Plugin, PrepareStage, StepStage, TransformStage
from step7bench.techniques._common import check_positive_int, flat_criterion
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import IGNORE_INDEX, Batch, Workload

# -- pure functions ---------------------------------------------------------------------------------


def rank_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """Positions of a global batch that `rank` trains on: contiguous, sizes differing by at most
    one, every position on exactly one rank."""
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def micro_batch_weights(targets: Sequence[torch.Tensor], ignore_index: int = IGNORE_INDEX) -> list[float]:
    """Weight of each micro-batch's mean loss so that the weighted sum equals the mean loss of
    the whole batch: its share of the counted targets (non-ignored tokens, or examples)."""
    counts = [int((t != ignore_index).sum()) for t in targets]
    total = sum(counts)
    if total == 0:
        return [1.0 / len(counts)] * len(counts)
    return [count / total for count in counts]


def state_bytes(optimizer_state: Mapping[Any, Mapping[str, Any]]) -> int:
    """Bytes of every tensor in an optimizer's per-parameter state (moments, step counters)."""
    return sum(value.nbytes for per_parameter in optimizer_state.values() for value in per_parameter.values()
               if isinstance(value, torch.Tensor))


def shard_imbalance(bytes_per_rank: Sequence[int]) -> float:
    """max / mean of the per-rank bytes: 1.0 is a perfect split."""
    mean = sum(bytes_per_rank) / len(bytes_per_rank)
    return max(bytes_per_rank) / mean if mean else 1.0


def _process_group_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def check_rank(rank: int, world_size: int) -> None:
    """ValueError naming the argument for a rank or world size that cannot be, or that does not
    match the initialised process group."""
    check_positive_int(world_size, "world_size")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank!r}")
    group_size = _process_group_size()
    if world_size > 1 and group_size == 1:
        raise ValueError(f"world_size={world_size} needs an initialised process group "
                         "(torch.distributed.init_process_group, e.g. under torchrun)")
    if group_size > 1 and (world_size, rank) != (group_size, dist.get_rank()):
        raise ValueError(f"rank={rank}, world_size={world_size} do not match the process group "
                         f"(rank {dist.get_rank()} of {group_size})")


# -- the seed's API ----------------------------------------------------------------------------------


class DistributedTrainer:
    """The seed's trainer: wraps `model` in DDP when `world_size > 1`, builds the optimizer
    (ZeRO-sharded with `use_zero`), and trains with gradient accumulation.

    Start one process per rank (`torchrun`, or `torch.multiprocessing.spawn`) and initialise the
    process group before building it; `world_size=1` needs no process group and shards nothing.
    """

    def __init__(self, model: nn.Module, rank: int = 0, world_size: int = 4, use_zero: bool = True,
                 gradient_accumulation_steps: int = 1) -> None:
        check_rank(rank, world_size)
        check_positive_int(gradient_accumulation_steps, "gradient_accumulation_steps")
        self.rank, self.world_size = rank, world_size
        self.use_zero = use_zero
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.module = model
        self.model: nn.Module = DistributedDataParallel(model) if world_size > 1 else model
        self.optimizer: torch.optim.Optimizer | None = None

    @property
    def is_sharded(self) -> bool:
        return self.use_zero and self.world_size > 1

    def create_optimizer(self, optimizer_class: type[torch.optim.Optimizer], **kwargs: Any) -> torch.optim.Optimizer:
        """`optimizer_class(**kwargs)` over the model's parameters, ZeRO-sharded when `use_zero`
        and more than one rank train."""
        self.optimizer = build_sharded_optimizer(list(self.model.parameters()), optimizer_class, self.is_sharded,
                                                 **kwargs)
        return self.optimizer

    def train_step(self, x_batch: torch.Tensor, y_batch: torch.Tensor,
                   criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        """One optimizer step on this rank's batch, split into `gradient_accumulation_steps`
        micro-batches; the gradient equals the whole batch's (and, through DDP, the mean over
        ranks). Returns the batch's mean loss."""
        optimizer = self._require_optimizer()
        loss = accumulate_gradients(
            len(x_batch), y_batch, self.gradient_accumulation_steps, lambda chunk: self.model(x_batch[chunk]),
            lambda logits, targets: flat_criterion(criterion, logits, targets),
            lambda micro_loss, chunk: micro_loss.backward(), ddp_no_sync(self.model),
            getattr(criterion, "ignore_index", IGNORE_INDEX))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    def optimizer_state_bytes(self) -> int:
        """Bytes of optimizer state (e.g. AdamW's moments) held on this rank."""
        optimizer = self._require_optimizer()
        local = optimizer.optim if isinstance(optimizer, ZeroRedundancyOptimizer) else optimizer
        return state_bytes(local.state)

    def optimizer_state_bytes_per_rank(self) -> list[int]:
        """`optimizer_state_bytes` of every rank (a collective: call it on all ranks)."""
        if self.world_size == 1:
            return [self.optimizer_state_bytes()]
        gathered: list[int] = [0] * self.world_size
        dist.all_gather_object(gathered, self.optimizer_state_bytes())
        return gathered

    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Model and full optimizer state, written by rank 0. Call on every rank: ZeRO first
        gathers the shards on rank 0 (a collective)."""
        optimizer = self._require_optimizer()
        if isinstance(optimizer, ZeroRedundancyOptimizer):
            optimizer.consolidate_state_dict(to=0)
        if self.rank == 0:
            torch.save({"model": self.module.state_dict(), "optimizer": optimizer.state_dict()}, path)
        if self.world_size > 1:
            dist.barrier()  # no rank reads the file before it is complete

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load what `save_checkpoint` wrote; ZeRO keeps this rank's shard of the state."""
        optimizer = self._require_optimizer()
        checkpoint = torch.load(path, map_location=next(self.module.parameters()).device, weights_only=True)
        self.module.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])

    def _require_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise RuntimeError("call create_optimizer first")
        return self.optimizer


def build_sharded_optimizer(params: list[Any], optimizer_class: type[torch.optim.Optimizer], sharded: bool,
                            **kwargs: Any) -> torch.optim.Optimizer:
    """`optimizer_class` over `params` (tensors or param groups), wrapped in ZeRO when `sharded`."""
    if sharded:
        return ZeroRedundancyOptimizer(params, optimizer_class=optimizer_class, **kwargs)
    return optimizer_class(params, **kwargs)


def accumulate_gradients(batch_size: int, targets: torch.Tensor, micro_steps: int,
                         forward: Callable[[slice], torch.Tensor],
                         loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                         backward: Callable[[torch.Tensor, slice], None],
                         no_sync: Callable[[], contextlib.AbstractContextManager[None]] | None,
                         ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Run the batch through `forward(chunk)` and `backward(loss, chunk)` in `micro_steps`
    contiguous chunks, leaving in ``.grad`` the gradient of the whole batch's mean loss; returns
    that loss (detached). `no_sync` (DDP's) wraps every micro-step but the last, so gradients are
    all-reduced once per optimizer step."""
    chunks = [slice(int(c[0]), int(c[-1]) + 1) for c in torch.arange(batch_size).chunk(micro_steps)]
    weights = micro_batch_weights([targets[chunk] for chunk in chunks], ignore_index)
    total = torch.zeros((), device=targets.device)
    for index, (chunk, weight) in enumerate(zip(chunks, weights, strict=True)):
        last = index == len(chunks) - 1
        with contextlib.nullcontext() if last or no_sync is None else no_sync():
            loss = loss_fn(forward(chunk), targets[chunk]) * weight
            backward(loss, chunk)
        total += loss.detach()
    return total


def ddp_no_sync(model: nn.Module) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
    return model.no_sync if isinstance(model, DistributedDataParallel) else None


# -- a data-parallel trial's ledger ---------------------------------------------------------------------

# How each ledger field adds up over ranks. Ranks work in lockstep (every optimizer step
# all-reduces), so wall buckets differ by skew only: the slowest rank's is the trial's.
# Examples, tokens and FLOPs are each rank's own share: they sum, so examples of the global
# batch are counted once. Device-seconds are recomputed as wall x world size. Every rank runs
# the same full pretraining (transfer learning), so the pretrain fields are one rank's (the
# largest), never a sum. Joules depend on what the meter reads (see `_energy_rule`).
_SAME, _SUM, _MAX, _ENERGY = "same", "sum", "max", "by meter scope"
_RANK_REDUCTION: dict[str, str] = {
    "steps": _SAME,
    "examples_forward": _SUM, "examples_backward": _SUM, "tokens_forward": _SUM, "tokens_backward": _SUM,
    "examples_overhead": _SUM,
    "flops_forward": _SUM, "flops_backward": _SUM, "flops_overhead": _SUM, "flops_audit": _SUM,
    "wall_train_s": _MAX, "wall_overhead_s": _MAX, "wall_eval_s": _MAX, "wall_audit_s": _MAX,
    "device_s": "derived",
    "energy_j": _ENERGY, "energy_eval_j": _ENERGY, "energy_audit_j": _ENERGY, "energy_method": "derived",
    "steps_pretrain": _MAX, "examples_pretrain": _MAX, "flops_pretrain": _MAX, "wall_pretrain_s": _MAX,
    "device_pretrain_s": _MAX, "energy_pretrain_j": _MAX,
    "peak_memory_bytes": _MAX, "world_size": "derived",
}

# Meters that read the whole host (RAPL: every CPU package), whichever rank reads them.
HOST_WIDE_METHODS = frozenset({"rapl"})


def _energy_rule(ledgers: Sequence[Ledger]) -> str:
    """How the ranks' joules combine: a whole-host meter read by every rank of one host counts
    the same joules once per rank, so the largest reading is the trial's; per-device (NVML) and
    per-process (estimate) readings are each rank's own share and sum. A rank whose chain fell
    back from or to a host-wide meter makes the whole trial host-wide: the largest reading is a
    lower bound then, never a double count."""
    methods = {part for ledger in ledgers for label in ledger.energy_method.split("+") if label
               for part in label.split("->")}
    return _MAX if methods & HOST_WIDE_METHODS else _SUM


def combine_rank_ledgers(ledgers: Sequence[Ledger]) -> Ledger:
    """One ledger for a data-parallel trial from its ranks' ledgers (in rank order), for ranks on
    one host (the runner starts them with torchrun on one node).

    Joules: summed for per-device (NVML) and per-process (estimate) meters; the largest rank's
    for a whole-host meter (RAPL), which every rank reads in full. Pretraining: one rank's.
    """
    if not ledgers:
        raise ValueError("ledgers must hold one ledger per rank, got none")
    if any(ledger.steps != ledgers[0].steps for ledger in ledgers):
        raise ValueError(f"ledgers disagree on optimizer steps: {[ledger.steps for ledger in ledgers]}")
    combined = Ledger(world_size=len(ledgers))
    energy_rule = _energy_rule(ledgers)
    for name, rule in _RANK_REDUCTION.items():
        rule = energy_rule if rule == _ENERGY else rule
        values = [getattr(ledger, name) for ledger in ledgers]
        if rule == _SUM:
            setattr(combined, name, sum(values))
        elif rule in (_MAX, _SAME):
            setattr(combined, name, max(values))
    for ledger in ledgers:
        for method in ledger.energy_method.split("+") if ledger.energy_method else ():
            combined.charge_energy(0.0, method)
    combined.device_s = combined.wall_s * combined.world_size
    return combined


def gather_rank_ledgers(ledger: Ledger) -> Ledger:
    """`combine_rank_ledgers` over every rank's `ledger` (a collective: call it on all ranks);
    without a process group, the ledger itself."""
    world_size = _process_group_size()
    if world_size == 1:
        return ledger
    gathered: list[Ledger | None] = [None] * world_size
    dist.all_gather_object(gathered, ledger)
    return combine_rank_ledgers([g for g in gathered if g is not None])


# -- engine plug-ins -----------------------------------------------------------------------------------


class DataParallelWrap(PrepareStage):
    """Wrap the trial's model in DDP and rebuild its optimizer over the same parameter groups,
    ZeRO-sharded with `use_zero`, over the initialised process group. With no process group, or
    one of one rank, it changes nothing: a plain single-process trial."""

    def __init__(self, use_zero: bool) -> None:
        self._use_zero = use_zero
        self._world_size = 1

    def prepare(self, ctx: TrialContext) -> None:
        self._world_size = _process_group_size()
        if self._world_size == 1:
            return
        ctx.ledger.world_size = self._world_size
        ctx.model = DistributedDataParallel(ctx.model)
        # Each group carries all its settings (lr, betas, weight decay), so `lr` is the only
        # default the rebuilt optimizer needs.
        groups = [dict(group) for group in ctx.optimizer.param_groups]
        ctx.optimizer = build_sharded_optimizer(groups, type(ctx.optimizer), self._use_zero,
                                                lr=ctx.optimizer.defaults["lr"])

    def stats(self) -> dict[str, Any]:
        return {"activity": activity(self._world_size > 1, f"{self._world_size} rank{'s' * (self._world_size > 1)}",
                                     self._world_size),
                "world_size": self._world_size, "use_zero": self._use_zero and self._world_size > 1}


class RankShard(TransformStage):
    """Train this rank's slice of each global batch. It runs before any other transform of the
    stack (`runs_first`), so augmentation and the like work on this rank's slice only."""

    runs_first = True

    def setup(self, ctx: TrialContext) -> None:
        self._world_size = _process_group_size()
        self._rank = dist.get_rank() if self._world_size > 1 else 0

    def transform(self, ctx: TrialContext, batch: Batch) -> Batch:
        if self._world_size == 1:
            return batch
        return batch.subset(torch.arange(len(batch))[rank_slice(len(batch), self._rank, self._world_size)])


class AccumulatedStep(StepStage):
    """k micro-batches through forward and backward (DDP's `no_sync` on all but the last), one
    optimizer step: the same gradient as the whole batch, in less activation memory."""

    def __init__(self, micro_steps: int) -> None:
        self._micro_steps = micro_steps

    def step(self, ctx: TrialContext, batch: Batch) -> torch.Tensor | None:
        loss = accumulate_gradients(
            len(batch), batch.targets, min(self._micro_steps, len(batch)),
            lambda chunk: ctx.forward(_chunk(batch, chunk)), ctx.workload.loss,
            lambda micro_loss, chunk: ctx.backward(micro_loss, _chunk(batch, chunk)), ddp_no_sync(ctx.model))
        ctx.optimizer_step()
        return loss

    def stats(self) -> dict[str, Any]:
        return {"activity": activity(self._micro_steps > 1,
                                     f"{self._micro_steps} micro-step{'s' * (self._micro_steps > 1)}",
                                     self._micro_steps),
                "gradient_accumulation_steps": self._micro_steps}


def _chunk(batch: Batch, chunk: slice) -> Batch:
    return batch.subset(torch.arange(len(batch))[chunk])


def _build_distributed(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    return Plugin("distributed", prepare=DataParallelWrap(bool(config["use_zero"])), transform=RankShard())


def _build_accumulation(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    micro_steps = config["gradient_accumulation_steps"]
    if not isinstance(micro_steps, int) or micro_steps < 1 or micro_steps > workload.hparams.batch_size:
        raise ValueError(f"gradient_accumulation_steps must be an integer in [1, batch size "
                         f"{workload.hparams.batch_size}], got {micro_steps!r}")
    return Plugin("gradient_accumulation", step=AccumulatedStep(micro_steps))


SPEC = TechniqueSpec(
    name="distributed",
    summary="data parallel over the initialised process group (DDP), ZeRO-1 optimizer-state sharding",
    stages=("prepare", "transform"),
    build=_build_distributed,
    defaults={"use_zero": True},  # the seed's default
    data_parallel=True,
    as_specified={"use_zero": True},  # the seed's example
    # No grid: ZeRO-1 shards the optimizer state (memory) and leaves a step's arithmetic as it is
    # (Rajbhandari et al. 2020), and calibration's trials run in one process, where the two settings
    # train identically; tuning it would spend trials to learn nothing.
)

ACCUMULATION_SPEC = TechniqueSpec(
    name="gradient_accumulation",
    summary="one optimizer step over k micro-batches (no_sync on all but the last under DDP)",
    stages=("step",),
    build=_build_accumulation,
    defaults={"gradient_accumulation_steps": 2},  # halves activation memory, same gradient
)

TECHNIQUES = (SPEC, ACCUMULATION_SPEC)

__all__ = ["DistributedTrainer", "TECHNIQUES", "combine_rank_ledgers", "gather_rank_ledgers", "micro_batch_weights",
           "rank_slice", "shard_imbalance", "state_bytes"]
