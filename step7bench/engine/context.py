"""What a stage sees of a trial, and the only doors through which work reaches the model.

Stages run passes through `forward`, `score`, `backward` and `optimizer_step`; each charges
the ledger (examples, tokens, counted FLOPs), so a technique cannot spend compute the ledger
does not see. Technique work outside those doors (fitting a predictor, augmenting, cache
look-ups) runs inside `with ctx.overhead():`, which books its wall time as overhead.

A stage that learns from the training passes (a loss predictor needs each example's loss)
registers a callable in `forward_observers`: it gets every training forward's batch and its
detached logits, and must book its own work inside `ctx.overhead()`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from step7bench.engine.ledger import Ledger
from step7bench.measure.clock import Clock
from step7bench.measure.energy import EnergyMeter
from step7bench.measure.flops import FlopCounter
from step7bench.seeding import numpy_rng, torch_generator
from step7bench.workloads.base import Batch, Budget, ExampleDataset, Hyperparameters, Workload


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
    meter: EnergyMeter  # the trial's meter; `audit()` opens its own window on it
    step: int = 0  # optimizer steps taken so far
    forward_observers: list[Callable[[Batch, torch.Tensor], None]] = field(default_factory=list)
    _overhead_depth: int = field(default=0, repr=False)
    _overhead_s_in_segment: float = field(default=0.0, repr=False)
    _audit_j_in_segment: float = field(default=0.0, repr=False)

    # -- randomness -------------------------------------------------------------------------
    def rng(self, purpose: str) -> np.random.Generator:
        return numpy_rng(self.seed, purpose)

    def torch_generator(self, purpose: str) -> torch.Generator:
        return torch_generator(self.seed, purpose)

    @property
    def progress(self) -> float:
        """Fraction of the step budget spent, in [0, 1]."""
        return min(1.0, self.step / self.budget.max_steps)

    # -- charged passes -------------------------------------------------------------------------
    def forward(self, batch: Batch) -> torch.Tensor:
        """Training forward pass (with autograd), charged to the training forward bucket."""
        flops = self.flops.per_example(batch.inputs, batch.targets)
        self.ledger.charge_forward(len(batch), batch.tokens, flops.forward * len(batch))
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
        with torch.inference_mode():
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

    # -- time -----------------------------------------------------------------------------
    # Attribution on CUDA: the clock read that opens `overhead()` or `audit()` synchronises the
    # device, so the wait for training kernels still queued lands *before* the window, in
    # `wall_train_s`, where that work belongs; the read that closes the window waits for the
    # kernels queued inside it, so the technique's own device work is in its window. A host-side
    # `float(tensor)` inside the window therefore waits only for the technique's kernels.
    @contextlib.contextmanager
    def overhead(self) -> Iterator[None]:
        """Book the enclosed wall time as technique overhead (nested uses count once). Its
        joules stay in the training window's `energy_j`, which counts training and overhead."""
        self._overhead_depth += 1
        start_s = self.clock.now() if self._overhead_depth == 1 else 0.0
        try:
            yield
        finally:
            self._overhead_depth -= 1
            if self._overhead_depth == 0:
                elapsed_s = self.clock.now() - start_s
                self.ledger.wall_overhead_s += elapsed_s
                self._overhead_s_in_segment += elapsed_s

    @contextlib.contextmanager
    def audit(self) -> Iterator[None]:
        """Book the enclosed work as audit: work that checks a technique (e.g. a fresh gradient
        to compare with a cached one). Its wall seconds go to `ledger.wall_audit_s` and its
        joules (an energy window of its own) to `ledger.energy_audit_j`; the loop takes both out
        of the training segment, so neither training nor overhead is charged. Not to be nested
        in `overhead()`."""
        if self._overhead_depth:
            raise RuntimeError("ctx.audit() inside ctx.overhead() would book its time twice")
        self.meter.begin_window("audit")
        start_s = self.clock.now()
        try:
            yield
        finally:
            elapsed_s = self.clock.now() - start_s
            energy = self.meter.end_window("audit")
            self.ledger.wall_audit_s += elapsed_s
            self.ledger.charge_energy(energy.energy_j, energy.method, bucket="audit")
            self._overhead_s_in_segment += elapsed_s
            self._audit_j_in_segment += energy.energy_j

    def take_segment_overhead_s(self) -> float:
        """Overhead and audit seconds booked since the last call; the loop subtracts them from
        training time."""
        taken, self._overhead_s_in_segment = self._overhead_s_in_segment, 0.0
        return taken

    def take_segment_audit_j(self) -> float:
        """Audit joules booked since the last call; the loop subtracts them from the training
        segment's energy."""
        taken, self._audit_j_in_segment = self._audit_j_in_segment, 0.0
        return taken
