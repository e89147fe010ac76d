"""Transfer learning: the seed's `TransferLearningPipeline` and its engine plug-in.

Pretrain on related source data, then train (finetune) on the target data. The seed claims a
5x speedup, counting the finetuning only.

What the comparison is. Transfer learning neither shrinks nor reorders the target data, so it
has no random control; its counterpart is the baseline trained from its seeded random
initialisation with the same recipe. The ledger books pretraining under its own heading, so
the analysis reports three speedups: *finetune only* (baseline cost / finetune cost, the
seed's count), *all-in* (baseline / (finetune + pretraining)), and *amortized* over K
downstream tasks that would share one pretraining (baseline / (finetune + pretraining / K)).

The engine plug-in (`transfer`, an init stage):

- Pretraining budget and stopping rule: `pretrain_fraction` x the trial's step budget (the
  horizon the baseline's schedule is tuned for; default 1: as long as the baseline may train), or
  exactly `pretrain_steps` optimizer steps when only that is given. A fraction, when given, wins:
  the harness lays a tuning grid point or the as-specified settings (fractions) over a suite's
  own settings (which may hold a step count), and the point is what is being tried. Pretraining
  runs on the workload's `source_train`, with the baseline's recipe (AdamW, warm-up, cosine
  fully decayed at the end of pretraining), run through `run_trial` itself so every pass is
  charged the same way. A fraction means the same on every workload and budget, so a tuning grid
  can be written once; a step count suits a suite that fixes one number. No early stop: the
  source task has no calibrated target, and a fixed step count makes the pretrained weights a
  pure function of the cache key. Its validation loss on `source_val` is reported, not used.
- The weights are loaded into the trial's model; the optimizer starts fresh (the seed's
  finetune does the same). The whole pretraining ledger is charged with `charge_pretraining`.
- Cache: the weights and the pretraining ledger are stored under ``$STEP7BENCH_CACHE/transfer``
  (default ``~/.cache/step7bench``) by a content key of (workload fingerprint and preset,
  seed, pretraining config, and the measuring conditions: hardware class, torch threads,
  torch version). A hit skips the work but charges the cached ledger in full, so the all-in
  figures never depend on the cache. The measuring conditions are in the key because the
  ledger's seconds and joules belong to the machine, thread count and kernels that spent them:
  a cache filled on another machine or torch build is a miss, never a foreign figure.
- Finetuning rate: `finetune_lr_scale` (default 1.0) multiplies the preset's rate in every
  param group before the schedule reads it, so warm-up and cosine apply to the scaled rate. It
  stays 1.0 by default so the arm differs from the baseline only in its starting weights; the
  preset's rate is the one tuned on the target task. The seed's fixed 1e-4 is a 3-30x lower
  rate than our presets'; the arm "as specified" keeps its proportion instead (0.1 x the tuned
  rate, see SPEC), and the tuning grid tries a lower rate too.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from step7bench.engine.context import TrialContext
from step7bench.engine.ledger import Ledger
from step7bench.engine.loop import run_trial
from step7bench.engine.stages import InitStage, Plugin
from step7bench.measure.clock import Clock
from step7bench.measure.fingerprint import device_fingerprint
from step7bench.paths import atomic_write, cache_root
from step7bench.seeding import derive_seed, torch_generator
from step7bench.techniques._common import check_positive_int, cuda_indices, flat_criterion, user_device
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import Budget, Workload

CACHE_FORMAT = 2  # bump when what a cache entry holds changes (2: SDPA attention, fused AdamW, bf16 on CUDA)


# -- pure helpers ---------------------------------------------------------------------------


def split_batch(batch: torch.Tensor | tuple | list) -> tuple[torch.Tensor, torch.Tensor]:
    """`(inputs, targets)` of a collated batch. A batch of bare token-id sequences (B, T) is
    language modelling: inputs are tokens 0..T-2, targets tokens 1..T-1."""
    if isinstance(batch, (tuple, list)):
        if len(batch) != 2:
            raise ValueError(f"dataset items must be inputs or (inputs, targets), got {len(batch)} parts")
        return batch[0], batch[1]
    if batch.dim() != 2 or batch.is_floating_point():
        raise ValueError("dataset items without targets must be 1-D token-id sequences")
    return batch[:, :-1], batch[:, 1:]


def measuring_conditions(device: torch.device) -> dict[str, Any]:
    """What a pretraining ledger's seconds and joules depend on besides the work itself: the
    hardware class (measure.fingerprint), torch's thread count and torch's version."""
    return {"hardware_class": device_fingerprint(device)["hardware_class"],
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}


def pretraining_key(workload: Workload, seed: int, conditions: Mapping[str, Any], pretrain_steps: int) -> str:
    """Content key of one pretraining run: equal keys give equal weights and a ledger measured
    under equal `conditions` (see `measuring_conditions`)."""
    content = {"format": CACHE_FORMAT, "workload": workload.fingerprint(), "preset": repr(workload.preset),
               "seed": seed, "conditions": dict(conditions), "pretrain_steps": pretrain_steps}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_dir() -> Path:
    """Where pretrained weights are kept: the ``transfer`` folder of the package's cache root."""
    return cache_root() / "transfer"


# -- the seed's API -------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch: mean training loss (criterion's units, weighted by examples per batch),
    examples seen, and device-synced wall seconds."""

    epoch: int
    mean_loss: float
    examples: int
    wall_s: float


class TransferLearningPipeline:
    """Pretrain `model` on one dataset, then finetune it on another, in the caller's loop style.

    Datasets yield `(inputs, targets)` or bare token-id sequences (next-token prediction); the
    model returns (B, C) or (B, T, V) logits; `criterion` is applied to the flattened logits
    (so `nn.CrossEntropyLoss()` averages over every prediction and skips its `ignore_index`).
    Batches are shuffled with a generator seeded from (`seed`, phase).
    """

    def __init__(self, model: nn.Module, device: str | torch.device = "cuda", *, seed: int = 0) -> None:
        self.device = user_device(device)
        self.model = model.to(self.device)
        self.seed = seed
        self._clock = Clock(self.device)

    def pretrain(self, pretrain_dataset: torch.utils.data.Dataset, optimizer: torch.optim.Optimizer,
                 criterion: nn.Module, num_epochs: int = 5, batch_size: int = 32) -> list[EpochMetrics]:
        """Train on the source data; returns one `EpochMetrics` per epoch."""
        return self._train(pretrain_dataset, optimizer, criterion, num_epochs, batch_size, "pretrain")

    def finetune(self, finetune_dataset: torch.utils.data.Dataset, optimizer: torch.optim.Optimizer,
                 criterion: nn.Module, num_epochs: int = 3, batch_size: int = 32,
                 learning_rate: float = 1e-4) -> list[EpochMetrics]:
        """Set every param group's rate to `learning_rate`, then train on the target data."""
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        return self._train(finetune_dataset, optimizer, criterion, num_epochs, batch_size, "finetune")

    def _train(self, dataset: torch.utils.data.Dataset, optimizer: torch.optim.Optimizer, criterion: nn.Module,
               num_epochs: int, batch_size: int, phase: str) -> list[EpochMetrics]:
        check_positive_int(num_epochs, "num_epochs")
        check_positive_int(batch_size, "batch_size")
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                             generator=torch_generator(self.seed, f"transfer-{phase}-order"))
        self.model.train()
        return [self._epoch(epoch, loader, optimizer, criterion) for epoch in range(num_epochs)]

    def _epoch(self, epoch: int, batches: Iterable, optimizer: torch.optim.Optimizer,
               criterion: nn.Module) -> EpochMetrics:
        start_s = self._clock.now()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)  # summed on device: no sync per step
        examples = 0
        for batch in batches:
            inputs, targets = (part.to(self.device, non_blocking=True) for part in split_batch(batch))
            loss = flat_criterion(criterion, self.model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach().double() * len(inputs)
            examples += len(inputs)
        return EpochMetrics(epoch, float(loss_sum) / max(examples, 1), examples, self._clock.now() - start_s)


# -- the engine plug-in ---------------------------------------------------------------------

DEFAULTS: Mapping[str, Any] = {
    "pretrain_fraction": None,  # pretraining steps, x the trial's step budget; wins over pretrain_steps
    "pretrain_steps": None,  # pretraining steps as a count, when no fraction is given; neither: the budget
    "finetune_lr_scale": 1.0,  # x the preset's rate for the target training (see module docstring)
    "cache": True,  # reuse pretrained weights by content key (their cost is charged either way)
}


def pretraining_steps(config: Mapping[str, Any], budget_steps: int) -> int:
    """Optimizer steps of pretraining: `pretrain_fraction` x `budget_steps` (rounded, at least 1)
    when a fraction is given, else `pretrain_steps` when that is, else `budget_steps`."""
    if config["pretrain_fraction"] is not None:
        return max(1, round(config["pretrain_fraction"] * budget_steps))
    return budget_steps if config["pretrain_steps"] is None else config["pretrain_steps"]


@dataclass(frozen=True)
class Pretrained:
    """The outcome of one pretraining run: weights on the CPU, its ledger, its last source loss."""

    state_dict: dict[str, torch.Tensor]
    ledger: Ledger
    source_val_loss: float

    def save(self, path: Path) -> None:
        """Write atomically, so concurrent trials never read half a file."""
        entry = {"state_dict": self.state_dict, "source_val_loss": self.source_val_loss,
                 "ledger": self.ledger.snapshot()}
        atomic_write(path, lambda handle: torch.save(entry, handle))

    @classmethod
    def load(cls, path: Path) -> Pretrained:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        return cls(entry["state_dict"], Ledger.from_snapshot(entry["ledger"]), entry["source_val_loss"])


def pretrain(workload: Workload, seed: int, device: torch.device, pretrain_steps: int) -> Pretrained:
    """Train a fresh model on `workload`'s source data for exactly `pretrain_steps` steps."""
    result = run_trial(workload, derive_seed(seed, "transfer-pretraining"), device=device, target_val_loss=-math.inf,
                       budget=Budget(pretrain_steps, math.inf), train=workload.source_train, val=workload.source_val,
                       keep_model=True)
    if result.status != "missed" or result.model is None:  # 'missed' is the only normal end here
        raise RuntimeError(f"pretraining on the source data ended {result.status!r}: {result.error}")
    weights = {name: tensor.detach().cpu() for name, tensor in result.model.state_dict().items()}
    return Pretrained(weights, result.ledger, result.curve[-1].val_loss)


class PretrainedInit(InitStage):
    """Start the trial from weights pretrained on the source data (cached by content key)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._config = dict(config)
        self._figures: dict[str, Any] = {}

    def init(self, ctx: TrialContext) -> None:
        steps = pretraining_steps(self._config, ctx.budget.max_steps)
        # A cache hit and a miss must leave the trial's global RNG alike.
        with torch.random.fork_rng(devices=cuda_indices(ctx.device)):
            pretrained, hit = self._pretrained(ctx, steps)
        ctx.model.load_state_dict(pretrained.state_dict)
        ctx.ledger.charge_pretraining(pretrained.ledger)
        for group in ctx.optimizer.param_groups:
            group["lr"] *= self._config["finetune_lr_scale"]
        self._figures = {"activity": activity(pretrained.ledger.steps > 0,
                                              f"pretrained {pretrained.ledger.steps} steps",
                                              pretrained.ledger.steps),
                         "pretrain_cache_hit": hit, "pretrain_steps": pretrained.ledger.steps,
                         "pretrain_budget_fraction": pretrained.ledger.steps / ctx.budget.max_steps,
                         "pretrain_source_val_loss": pretrained.source_val_loss,
                         "finetune_lr_scale": self._config["finetune_lr_scale"]}

    def _pretrained(self, ctx: TrialContext, steps: int) -> tuple[Pretrained, bool]:
        if not self._config["cache"]:
            return pretrain(ctx.workload, ctx.seed, ctx.device, steps), False
        key = pretraining_key(ctx.workload, ctx.seed, measuring_conditions(ctx.device), steps)
        path = cache_dir() / f"{key}.pt"
        if path.exists():
            return Pretrained.load(path), True
        pretrained = pretrain(ctx.workload, ctx.seed, ctx.device, steps)
        pretrained.save(path)
        return pretrained, False

    def stats(self) -> dict[str, Any]:
        return dict(self._figures) or {"activity": activity(False, "pretrained 0 steps", 0.0)}


def _check_config(workload: Workload, config: Mapping[str, Any]) -> None:
    if workload.source_train is None or workload.source_val is None:
        raise ValueError(f"technique 'transfer' needs source data; workload {workload.name!r} has none")
    if config["pretrain_steps"] is not None:
        check_positive_int(config["pretrain_steps"], "pretrain_steps")
    fraction = config["pretrain_fraction"]
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not fraction > 0):
        raise ValueError(f"pretrain_fraction must be a number > 0, got {fraction!r}")
    if not config["finetune_lr_scale"] > 0:
        raise ValueError(f"finetune_lr_scale must be > 0, got {config['finetune_lr_scale']!r}")
    if not isinstance(config["cache"], bool):
        raise ValueError(f"cache must be true or false, got {config['cache']!r}")


def build_plugin(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    _check_config(workload, config)
    return Plugin("transfer", init=PretrainedInit(config))


# Pretraining lengths of the grid, x the trial's step budget. At the quick suite's 300-step
# grammar-lm budget, 200 steps (0.67) pretrained less than the baseline's own ~225 steps to its
# target, and 800 (2.7) made finetuning reach the target at its first check: the grid spans
# both sides, since all-in cost pays for every pretraining step.
PRETRAIN_FRACTIONS = (0.25, 0.5, 1.0, 2.0, 3.0)

SPEC = TechniqueSpec(
    name="transfer",
    summary="start from weights pretrained on the workload's related source data (cost charged apart)",
    stages=("init",),
    build=build_plugin,
    defaults=DEFAULTS,
    # The seed pretrains 5 epochs, then finetunes 3 at lr 1e-4. Epochs mean different things on
    # different data sets, so the translation keeps the seed's proportions: finetuning here gets
    # the trial's step budget, so pretraining gets 5/3 of it; and 1e-4 is a tenth of the 1e-3
    # the seed's other example trains at, so the tuned finetuning rate is scaled by 0.1.
    as_specified={"pretrain_fraction": 5 / 3, "finetune_lr_scale": 0.1},
    grid=(*({"pretrain_fraction": fraction} for fraction in PRETRAIN_FRACTIONS),
          {"pretrain_fraction": 1.0, "finetune_lr_scale": 0.3}),
    grid_source="pretraining lengths from a quarter to three times the baseline's step budget, around the "
                "baseline's own steps to target (all-in cost charges every pretraining step); a finetuning rate "
                "below the pretraining one as in BERT (Devlin et al. 2019: pretrain 1e-4, finetune 2e-5 to 5e-5) "
                "and ULMFiT (Howard & Ruder 2018)",
)

# Changes no data, so no random control: the baseline from scratch is the comparison.
TECHNIQUES = (SPEC,)
