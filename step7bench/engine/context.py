"""What a stage sees of a trial, and the only doors through which work reaches the model.

Stages run passes through `forward`, `score`, `backward` and `optimizer_step`; each charges
the ledger (examples, tokens, counted FLOPs), so a technique cannot spend compute the ledger
does not see. Technique work outside those doors (fitting a predictor, augmenting, cache
look-ups) runs inside `with ctx.overhead():`, which books its wall time as overhead (the
trial's `CostClock`, engine/costs.py, keeps that account).

A stage that learns from the training passes (a loss predictor needs each example's loss)
registers a callable in `forward_observers`: it gets every training forward's batch and its
detached logits, and must book its own work inside `ctx.overhead()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from step7bench.engine.costs import CostClock
from step7bench.engine.ledger import Ledger
from step7bench.measure.clock import Clock
from step7bench.measure.flops import FlopCounter
from step7bench.seeding import numpy_rng, torch_generator
from step7bench.workloads.base import Batch, Budget, ExampleDataset, Hyperparameters, Workload, mixed_precision


@dataclass
class TrialContext:
    workload: Workload
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    seed: int
    train: ExampleDataset
    hparams: Hyperparameters
    budget: Budget
    ledger: Ledger
    clock: Clock
    flops: FlopCounter
    costs: CostClock
    step: int = 0  # optimizer steps taken so far
    forward_observers: list[Callable[[Batch, torch.Tensor], None]] = field(default_factory=list)

    # -- randomness -------------------------------------------------------------------------
    def rng(self, purpose: str) -> np.random.Generator:
        return numpy_rng(self.seed, purpose)

    def torch_generator(self, purpose: str) -> torch.Generator:
        return torch_generator(self.seed, purpose)

    @property
    def progress(self) -> float:
        """Fraction of the step budget's horizon spent, in [0, 1] (1 in the headroom past it)."""
        return min(1.0, self.step / self.budget.max_steps)

    # -- charged passes -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        """Training forward pass (with autograd), charged to the training forward bucket."""
        flops = self.flops.per_example(batch.inputs, batch.targets)
        self.ledger.charge_forward(len(batch), batch.tokens, flops.forward * len(batch))
        with mixed_precision(self.device):
            logits = self.model(batch.inputs)
        for observe in self.forward_observers:
            observe(batch, logits.detach())
        return logits

    def backward(self, loss: torch.Tensor, batch: Batch) -> None:
        """Backward pass of `loss` computed on `batch`, charged to the backward bucket."""
        flops = self.flops.per_example(batch.inputs, batch.targets)
        self.ledger.charge_backward(len(batch), batch.tokens, flops.backward * len(batch))
        loss.backward()

    def score(self, batch: Batch, model: nn.Module | None = None) -> torch.Tensor:
        """An extra forward pass a technique adds (inference mode), charged as overhead.

        `model` defaults to the trial's model; a technique's own scoring model (e.g. a briefly
        trained reference) must share its architecture, since the FLOPs counted are the trial
        model's. Call it inside `overhead()` so its wall time is booked as overhead too.
        """
        model = self.model if model is None else model
        flops = self.flops.per_example(batch.inputs, batch.targets)
        self.ledger.charge_overhead(len(batch), flops.forward * len(batch))
        was_training = model.training
        model.eval()
        with torch.inference_mode(), mixed_precision(self.device):
            logits = model(batch.inputs)
        model.train(was_training)
        return logits

    def optimizer_step(self) -> None:
        """Clip, step, zero the gradients; count one optimizer step."""
        if self.hparams.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hparams.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.ledger.steps += 1

    def rebook_as_pretraining(self) -> None:
        """Book everything this trial has spent so far as pretraining, at a segment edge so every
        second and joule lands on the right side (the warm-start positive control)."""
        self.costs.close_segment()
        self.ledger.move_to_pretraining()
        self.costs.open_segment()

    # -- time -----------------------------------------------------------------------------
    def overhead(self) -> contextlib.AbstractContextManager[None]:
        """Book the enclosed wall time as technique overhead (nested uses count once). Its
        joules stay in the training window's `energy_j`, which counts training and overhead."""
        return self.costs.overhead()

    def audit(self) -> contextlib.AbstractContextManager[None]:
        """Book the enclosed work as audit: work that checks a technique (e.g. a fresh gradient
        to compare with a cached one). Its wall seconds go to `ledger.wall_audit_s` and its
        joules to `ledger.energy_audit_j`; neither training nor overhead is charged. Not to be
        nested in `overhead()`."""
        return self.costs.audit()
