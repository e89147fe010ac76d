"""Active learning: train on the examples the model is least sure about.

Seed API: `ActiveLearningSelector(model, selection_strategy, device).select_examples(pool,
num_select, batch_size)` returns the `num_select` most informative examples of a pool.

Acquisition scores (Settles, "Active Learning Literature Survey", 2009), all oriented so that
higher means more informative:

- ``uncertainty`` -- least confidence, ``1 - max_c p_c``;
- ``margin``      -- ``1 - (p_(1) - p_(2))``, one minus the gap between the two most probable
  classes (Scheffer et al. 2001), so the smallest gap ranks first;
- ``entropy``     -- predictive entropy ``-sum_c p_c log p_c`` in nats (Shannon).

For sequence models every position gets its score and an example's score is the mean over
its positions: a sum would make long sequences win whatever their content.

Engine plug-in (select stage): a small random seed set, then acquisition rounds on a fixed
schedule that score candidates among the examples not yet selected with the current model and
add the top ones, until the selection budget -- by default half the training set, the seed
document's "2x from 50% of data". For language models the labels are free, so this is data
selection; on digits it is classic pool-based labelling.

Candidates (`candidate_pool`). Re-scoring the whole remaining pool every round costs more than
the run can use: on grammar-lm small at a 300-step budget it scored 60,000 examples (2.8x the
baseline's whole cost to its target) while training drew 9,600. So by default a round scores a
uniformly random candidate subset (drawn with the trial's seeded generator) of
``candidate_pool x min(k, D)`` examples, where k is the round's size and D the examples the
steps left before the budget's horizon will draw (batch size x steps left): a round adds k
examples and training can use at most D of them. The count is at least k and at most the
pool (`candidate_count`). `candidate_pool = "all"` scores the whole remaining pool, as the
seed's selector does with the pool it is handed. Every scoring pass is charged through
`ctx.score`. The same rule subsamples random candidate pools in baal's `ActiveLearningLoop`
(`max_sample`).

The control (`active_learning_random`) draws the same candidate subset and adds a uniformly
random k of it at the same rounds, scoring nothing: the same sizes, a random choice, so the
report can tell the acquisition function apart from the smaller data set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from step7bench.engine.context import TrialContext
from step7bench.engine.stages import Plugin, SelectStage
from step7bench.techniques._common import check_positive_int, percent, user_device
from step7bench.techniques.pool_scoring import score_dataset
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import IGNORE_INDEX, Workload

STRATEGIES = ("uncertainty", "margin", "entropy")


# -- the math ----------------------------------------------------------------------------------


def check_strategy(strategy: str, name: str = "selection_strategy") -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"{name} must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def position_scores(probs: torch.Tensor, strategy: str) -> torch.Tensor:
    """Acquisition score of each distribution over the last dimension of `probs` (higher =
    more informative); the result drops that dimension."""
    check_strategy(strategy)
    if strategy == "uncertainty":
        return 1.0 - probs.amax(dim=-1)
    if strategy == "margin":
        top2 = torch.topk(probs, k=2, dim=-1).values
        return 1.0 - (top2[..., 0] - top2[..., 1])
    return -(probs * torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))).sum(dim=-1)


def acquisition_scores(logits: torch.Tensor, strategy: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """One score per example, shape (B,), from `(B, C)` or `(B, T, V)` logits.

    For sequences the scores of the positions where `mask` (B, T) is true (all positions if
    None) are averaged; an example with no such position scores 0.
    """
    scores = position_scores(torch.softmax(logits.float(), dim=-1), strategy)
    if scores.dim() == 1:
        return scores
    if mask is None:
        return scores.mean(dim=1)
    weights = mask.to(scores.dtype)
    return (scores * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def most_informative(scores: torch.Tensor, num_select: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the `num_select` highest scores and those scores, highest first."""
    if not 0 <= num_select <= len(scores):
        raise ValueError(f"num_select must be in [0, {len(scores)}] (the pool's size), got {num_select}")
    top = torch.topk(scores, k=num_select, sorted=True)
    return top.indices, top.values


# -- the seed's API ----------------------------------------------------------------------------


class ActiveLearningSelector:
    """Picks the most informative examples of an unlabeled pool under `model`.

    `pad_id`, if given, is the padding token of sequence inputs: padded positions are left
    out of an example's mean score. Pool items may be `inputs` or `(inputs, targets)`;
    targets are ignored.
    """

    def __init__(self, model: nn.Module, selection_strategy: str = "uncertainty", device: str = "cuda", *,
                 pad_id: int | None = None) -> None:
        check_strategy(selection_strategy)
        self.device = user_device(device)
        self.model = model.to(self.device)
        self.selection_strategy = selection_strategy
        self.pad_id = pad_id

    def score_pool(self, unlabeled_pool: Dataset, batch_size: int = 32) -> torch.Tensor:
        """The acquisition score of every pool example, shape (N,), on the CPU."""
        return score_dataset(self.model, unlabeled_pool, self._score, batch_size=batch_size, device=self.device)

    def select_examples(self, unlabeled_pool: Dataset, num_select: int,
                        batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """`(indices, scores)`: the pool positions of the `num_select` most informative examples
        (unique, most informative first) and their scores."""
        if isinstance(num_select, bool) or not isinstance(num_select, int):
            raise ValueError(f"num_select must be an integer, got {num_select!r}")
        if not 0 <= num_select <= len(unlabeled_pool):
            raise ValueError(f"num_select={num_select} is outside [0, {len(unlabeled_pool)}], "
                             "the size of the unlabeled pool")
        check_positive_int(batch_size, "batch_size")
        return most_informative(self.score_pool(unlabeled_pool, batch_size), num_select)

    def _score(self, logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        mask = inputs != self.pad_id if self.pad_id is not None and logits.dim() == 3 else None
        return acquisition_scores(logits, self.selection_strategy, mask)


# -- the engine plug-in --------------------------------------------------------------------------


@dataclass(frozen=True)
class AcquisitionPlan:
    """How many random examples start the selection, and (step, size) of each later round."""

    seed_size: int
    rounds: tuple[tuple[int, int], ...]

    @property
    def budget_size(self) -> int:
        return self.seed_size + sum(size for _, size in self.rounds)


def acquisition_plan(n_examples: int, *, seed_fraction: float, budget_fraction: float, rounds: int,
                     acquire_until: float, max_steps: int) -> AcquisitionPlan:
    """Seed set of `seed_fraction` of the data, then `rounds` equal rounds up to
    `budget_fraction` of it, the k-th after `k / rounds * acquire_until` of the step budget."""
    seed_size = max(1, round(seed_fraction * n_examples))
    budget_size = max(seed_size, round(budget_fraction * n_examples))
    base, extra = divmod(budget_size - seed_size, rounds)
    sizes = [base + (1 if k < extra else 0) for k in range(rounds)]
    # A round due at the very last step would never run: the loop ends there. Rounded before the
    # ceiling so float noise (3 x 0.05 x 100 / 3 = 5.000000000000001) cannot move a round a step on.
    steps = [max(1, min(max_steps - 1, math.ceil(round((k + 1) * acquire_until * max_steps / rounds, 9))))
             for k in range(rounds)]
    return AcquisitionPlan(seed_size, tuple((step, size) for step, size in zip(steps, sizes) if size > 0))


def candidate_count(pool_size: int, round_size: int, draws_left: int, factor: float | None) -> int:
    """Candidates a round scores: the whole pool when `factor` is None (``candidate_pool =
    "all"``); else `factor` x min(`round_size`, `draws_left`) rounded up -- the examples the round
    adds that the remaining steps can still draw -- at least `round_size`, at most `pool_size`."""
    if factor is None:
        return pool_size
    return min(pool_size, max(round_size, math.ceil(factor * min(round_size, draws_left))))


class _Acquisition:
    """How a round picks `k` examples out of its candidates (a subset of the pool not yet selected)."""

    def setup(self, ctx: TrialContext) -> None:
        """Called once per trial, before the first round."""

    def pick(self, ctx: TrialContext, candidates: torch.Tensor, k: int) -> torch.Tensor:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}


class _MostInformative(_Acquisition):
    """Scores the candidates with the current model through `ctx.score` (charged) and takes the
    top k. `pool_score_mean` is the candidates' mean score per round (the whole pool's with
    ``candidate_pool = "all"``), `picked_score_mean` the picked ones'."""

    def __init__(self, strategy: str, score_batch_size: int) -> None:
        self.strategy, self.score_batch_size = strategy, score_batch_size
        self.examples_scored = 0
        self.picked_score_mean: list[float] = []
        self.pool_score_mean: list[float] = []

    def pick(self, ctx: TrialContext, candidates: torch.Tensor, k: int) -> torch.Tensor:
        scores = torch.cat([self._score(ctx, chunk) for chunk in candidates.split(self.score_batch_size)])
        positions, picked = most_informative(scores, k)
        self.examples_scored += len(candidates)
        self.picked_score_mean.append(float(picked.mean()))
        self.pool_score_mean.append(float(scores.mean()))
        return candidates[positions]

    def _score(self, ctx: TrialContext, ids: torch.Tensor) -> torch.Tensor:
        batch = ctx.train.gather(ids).to(ctx.device)
        mask = batch.targets != IGNORE_INDEX if batch.targets.dim() == 2 else None
        return acquisition_scores(ctx.score(batch), self.strategy, mask).cpu()

    def stats(self) -> dict[str, Any]:
        return {"examples_scored": self.examples_scored, "picked_score_mean": self.picked_score_mean,
                "pool_score_mean": self.pool_score_mean}


class _RandomPick(_Acquisition):
    """Uniformly random candidates: the control, with no scoring pass."""

    def setup(self, ctx: TrialContext) -> None:
        self._generator = ctx.torch_generator("active-learning/random-acquisition")

    def pick(self, ctx: TrialContext, candidates: torch.Tensor, k: int) -> torch.Tensor:
        return candidates[torch.randperm(len(candidates), generator=self._generator)[:k]]


class ScheduledSelection(SelectStage):
    """A random seed set grown by acquisition rounds at fixed steps until the budget.

    Between rounds `in_play` returns the same tensor object, so the order stage keeps its
    epoch; a round replaces it with a new one (sorted ids).
    """

    def __init__(self, config: Mapping[str, Any], acquisition: _Acquisition) -> None:
        self.config, self.acquisition = config, acquisition
        self._factor = None if config["candidate_pool"] == "all" else float(config["candidate_pool"])
        # empty but valid until setup, so `stats` works for a trial that failed before it
        self.plan = AcquisitionPlan(0, ())
        self._selected = torch.empty(0, dtype=torch.long)
        self._rounds_done, self._n_examples, self.candidates_per_round = 0, 0, []

    def setup(self, ctx: TrialContext) -> None:
        n_examples = len(ctx.train)
        self.plan = acquisition_plan(
            n_examples, seed_fraction=self.config["seed_fraction"], budget_fraction=self.config["budget_fraction"],
            rounds=self.config["rounds"], acquire_until=self.config["acquire_until"],
            max_steps=ctx.budget.max_steps)
        # The same seed set for the technique and its control (a paired comparison).
        order = torch.randperm(n_examples, generator=ctx.torch_generator("active-learning/seed-set"))
        self._selected = order[: self.plan.seed_size].sort().values
        self._rounds_done = 0
        self._n_examples = n_examples
        self._candidate_generator = ctx.torch_generator("active-learning/candidates")
        self.candidates_per_round = []
        self.acquisition.setup(ctx)

    def in_play(self, ctx: TrialContext) -> torch.Tensor:
        while self._rounds_done < len(self.plan.rounds) and ctx.step >= self.plan.rounds[self._rounds_done][0]:
            self._acquire(ctx, self.plan.rounds[self._rounds_done][1])
        return self._selected

    def _acquire(self, ctx: TrialContext, size: int) -> None:
        with ctx.overhead():
            is_pool = torch.ones(self._n_examples, dtype=torch.bool)
            is_pool[self._selected] = False
            picked = self.acquisition.pick(ctx, self._candidates(ctx, is_pool.nonzero().squeeze(1), size), size)
            self._selected = torch.cat([self._selected, picked]).sort().values
        self._rounds_done += 1

    def _candidates(self, ctx: TrialContext, pool_ids: torch.Tensor, size: int) -> torch.Tensor:
        """A uniformly random subset of the pool, of `candidate_count` examples."""
        draws_left = max(0, ctx.budget.max_steps - ctx.step) * ctx.hparams.batch_size
        count = candidate_count(len(pool_ids), size, draws_left, self._factor)
        self.candidates_per_round.append(count)
        return pool_ids[torch.randperm(len(pool_ids), generator=self._candidate_generator)[:count]]

    def stats(self) -> dict[str, Any]:
        selected_fraction = len(self._selected) / max(self._n_examples, 1)
        figures = {"selected_examples": len(self._selected), "selected_fraction": selected_fraction,
                   "seed_examples": self.plan.seed_size, "rounds_done": self._rounds_done,
                   "rounds_planned": len(self.plan.rounds),
                   "candidates_per_round": list(self.candidates_per_round), **self.acquisition.stats()}
        scored = figures.get("examples_scored", 0)
        figures["activity"] = activity(self._rounds_done > 0, f"trained on {percent(selected_fraction)} of the "
                                                              f"data, scored {scored} examples", selected_fraction)
        return figures


DEFAULTS: dict[str, Any] = {
    "strategy": "uncertainty",  # the seed's default acquisition function (the control ignores it)
    "seed_fraction": 0.1,       # random start: a model that has seen nothing cannot score
    "budget_fraction": 0.5,     # the seed's "2x (50% of data)"
    "rounds": 4,                # acquisition rounds after the seed set
    "acquire_until": 0.5,       # the last round happens at this fraction of the step budget
    "candidate_pool": 2,        # candidates per round, x what the round can add and training use; or "all"
    "score_batch_size": 256,    # examples per scoring pass
}


def _check_config(config: Mapping[str, Any]) -> None:
    check_strategy(config["strategy"], "strategy")
    for key in ("seed_fraction", "budget_fraction", "acquire_until"):
        if not 0.0 < config[key] <= 1.0:
            raise ValueError(f"{key} must be in (0, 1], got {config[key]!r}")
    if config["seed_fraction"] > config["budget_fraction"]:
        raise ValueError(f"seed_fraction ({config['seed_fraction']}) exceeds budget_fraction "
                         f"({config['budget_fraction']})")
    check_positive_int(config["rounds"], "rounds")
    check_positive_int(config["score_batch_size"], "score_batch_size")
    factor = config["candidate_pool"]
    if factor != "all" and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1):
        raise ValueError(f"candidate_pool must be 'all' or a number >= 1 (x the examples a round can add), "
                         f"got {factor!r}")


def _build(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    _check_config(config)
    acquisition = _MostInformative(config["strategy"], config["score_batch_size"])
    return Plugin("active_learning", select=ScheduledSelection(config, acquisition))


def _build_random(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    _check_config(config)
    return Plugin("active_learning_random", select=ScheduledSelection(config, _RandomPick()))


TECHNIQUES = (
    TechniqueSpec(
        name="active_learning",
        summary="random seed set, then rounds adding the examples the model is least sure of, up to a budget",
        stages=("select",), build=_build, defaults=DEFAULTS, control="active_learning_random",
        # The seed's selector, its default strategy, its "50% of data", scoring the whole pool it
        # is handed. Its num_select=100 is one call's size, not a schedule: the rounds stay ours.
        as_specified={"strategy": "uncertainty", "budget_fraction": 0.5, "candidate_pool": "all"},
        grid=tuple({"rounds": rounds, "candidate_pool": factor} for rounds in (2, 4, 8) for factor in (2, 4)),
        grid_source="batch-mode pool-based acquisition (Settles 2009) with the query size and a random candidate "
                    "subset per step as in baal's ActiveLearningLoop (query_size, max_sample): rounds of a half, "
                    "a quarter or an eighth of the acquired data; candidates 2x or 4x what a round adds (its top "
                    "half or quarter by uncertainty)"),
    TechniqueSpec(
        name="active_learning_random",
        summary="control: random examples of the same sizes at the same rounds",
        stages=("select",), build=_build_random, defaults=DEFAULTS, is_control=True),
)
