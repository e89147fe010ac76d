"""Selective Backprop (Jiang et al. 2019, "Accelerating Deep Learning by Focusing on the Biggest
Losers", arXiv:1910.00762), as a step7bench technique.

Each step forwards the whole batch without gradients, ranks every example's loss against a
history of recent losses, and backpropagates example i with probability ``CDF(L_i) ** beta``
(`beta` is the paper's selectivity: 1 keeps about half, 2 a third, 3 a quarter). The kept
examples are forwarded again with gradients and backpropagated; the optimizer steps on them.
The scoring forward is charged as overhead (`ctx.score`), the second forward and the backward
as training, so the saving is only what the skipped backward passes were worth.

Its random control (`selective_backprop_random`) keeps each example with probability
``1 / (beta + 1)``, the expected keep rate of the technique when its loss history matches the
current losses (E[U^beta] for U uniform), and pays no scoring pass: it isolates *which*
examples are kept from *how many*.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from step7bench.api import Batch, Plugin, StepStage, TechniqueSpec, TrialContext, Workload, activity


def keep_probability(losses: torch.Tensor, history: torch.Tensor, beta: float) -> torch.Tensor:
    """``CDF(L_i) ** beta`` with the CDF the share of `history` at or below each loss; with no
    history yet, every example is kept."""
    if history.numel() == 0:
        return torch.ones_like(losses)
    cdf = torch.searchsorted(history.sort().values, losses, right=True).to(losses.dtype) / history.numel()
    return cdf.pow(beta)


class _Selective(StepStage):
    """Forward what the rule keeps, backpropagate it, step; at least one example per step."""

    def __init__(self, beta: float, history_size: int, scored: bool) -> None:
        self.beta, self.history_size, self.scored = beta, history_size, scored
        self.kept = self.seen = 0

    def setup(self, ctx: TrialContext) -> None:
        self._history = torch.empty(0)
        self._generator = ctx.torch_generator("selective-backprop/keep")

    def step(self, ctx: TrialContext, batch: Batch) -> torch.Tensor | None:
        probability = self._keep_probability(ctx, batch)
        keep = torch.rand(len(batch), generator=self._generator) < probability
        keep[int(torch.argmax(probability))] = True  # an empty step would waste the scoring pass
        kept = batch.subset(keep.nonzero().squeeze(1).to(batch.inputs.device))
        self.kept, self.seen = self.kept + len(kept), self.seen + len(batch)
        loss = ctx.workload.loss(ctx.forward(kept), kept.targets)
        ctx.backward(loss, kept)
        ctx.optimizer_step()
        return loss.detach()

    def _keep_probability(self, ctx: TrialContext, batch: Batch) -> torch.Tensor:
        if not self.scored:
            return torch.full((len(batch),), 1.0 / (self.beta + 1.0))
        with ctx.overhead():
            losses = ctx.workload.per_example_loss(ctx.score(batch), batch.targets).float().cpu()
            probability = keep_probability(losses, self._history, self.beta)
            self._history = torch.cat([self._history, losses])[-self.history_size:]
        return probability

    def stats(self) -> dict[str, Any]:
        keep_rate = self.kept / max(self.seen, 1)
        return {"activity": activity(keep_rate < 1, f"backpropagated {keep_rate:.0%} of examples", keep_rate),
                "keep_rate": keep_rate, "examples_kept": self.kept, "examples_seen": self.seen,
                "beta": self.beta, "scored": self.scored}


DEFAULTS: dict[str, Any] = {
    "beta": 1.0,            # selectivity: keep probability CDF^beta (Jiang et al. try 1, 2, 3)
    "history_size": 1024,   # recent losses the CDF is taken over (Jiang et al.'s history buffer)
}


def _checked(config: Mapping[str, Any]) -> tuple[float, int]:
    beta, history = config["beta"], config["history_size"]
    if not isinstance(beta, (int, float)) or beta <= 0:
        raise ValueError(f"beta must be a number > 0, got {beta!r}")
    if not isinstance(history, int) or history < 1:
        raise ValueError(f"history_size must be an integer >= 1, got {history!r}")
    return float(beta), history


def _build(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    return Plugin("selective_backprop", step=_Selective(*_checked(config), scored=True))


def _build_random(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    return Plugin("selective_backprop_random", step=_Selective(*_checked(config), scored=False))


TECHNIQUES = (
    TechniqueSpec(name="selective_backprop",
                  summary="backprop example i with probability CDF(loss_i)^beta after a charged no-grad forward",
                  stages=("step",), build=_build, defaults=DEFAULTS, control="selective_backprop_random",
                  grid=({"beta": 1.0}, {"beta": 2.0}, {"beta": 3.0}),
                  grid_source="beta 1, 2, 3: the selectivities Jiang et al. 2019 try"),
    TechniqueSpec(name="selective_backprop_random",
                  summary="control: keep each example with probability 1/(beta+1), no scoring pass",
                  stages=("step",), build=_build_random, defaults=DEFAULTS, is_control=True),
)
