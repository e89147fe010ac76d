"""Example difficulty prediction: predict each example's loss *before* its forward pass and
skip the examples predicted easiest, saving their forward and backward passes.

**Idea.** Selective Backprop (Jiang et al. 2019, "Accelerating Deep Learning by Focusing on
the Biggest Losers") backpropagates example i with probability ``CDF(L_i)^beta`` over recent
losses; its *Stale* variant decides from losses measured in earlier epochs, so a skipped
example skips the forward pass too. Here the stale loss is refined by a small predictor.

**Predictor** (`StaleLossPredictor`). Ridge regression of an example's loss at its next
forward pass on features known before that pass:
``x = [1, stale loss, log1p(optimizer steps since it was measured), log1p(times measured),
predicted tokens / most tokens of any example]``. It is fitted online from the pairs
(features at prediction time, loss measured in the training forward pass) with exponential
forgetting (the model moves, so old pairs say less), and shrunk toward the prior "the
prediction is the stale loss" (Stale SB's own assumption): it solves
``(A + lambda I) theta = b + lambda theta_0`` with ``A = sum w x x^T`` and ``b = sum w x y``.
An example never measured has no prediction. Its cost, a few small matrix operations per batch
and the per-example losses of each training forward (from logits already computed, no extra
pass), is booked as overhead.

**The predictor must earn its place** (`SkipRanker`). A seeded share (`holdout_fraction`,
default 0.2) of the observed pairs is never fitted on; on those held-out pairs the Spearman rank
correlation of predicted vs measured loss is compared with that of the bare stale loss vs
measured loss (over the last 4,096 held-out pairs, judged again every 64). Examples are ranked
for skipping by the predictor only while its held-out Spearman is the higher; otherwise (and
until 64 held-out pairs exist) by the stale loss itself, Stale SB's own rule. Both figures, the
held-out pairs they rest on and the ranking in use are reported (`predictor_spearman`,
`stale_loss_spearman`, `predictor_pairs`, `ranking`, and `predictor_ranked_share`: the share of
skipping batches the predictor ranked).

**What `skip_threshold` means.** The *fraction of each batch* that skips: of a batch of B
examples, the ``floor(skip_threshold x B)`` with the lowest predicted loss skip their forward
and backward pass, chosen only among *eligible* examples: measured at least once (Stale SB
trains every example once first) and not skipped `max_consecutive_skips` times in a row (a
skipped example's stale loss is never refreshed, so without that cap the examples predicted
easiest would be skipped forever). When fewer examples are eligible, all of them skip. So
skip_threshold = 0.5 skips half of every batch once the data has been seen; the realised rate
is lower early on and is reported (``skip_rate``). A run shorter than one epoch sees almost no
example twice, so nothing is eligible and nothing is skipped: the activity then says so (fired
False) rather than report a mechanism that never acted. The seed claims 1.2x from 20% of
examples skipped: the plug-in's default is 0.2; the seed function keeps the seed's default of
0.5 (the arm "as specified").

**The random control** (``difficulty_prediction_random``) applies the *same* rule, the same
eligibility and the same number of skips per batch, but picks the skipped examples uniformly
at random among the eligible instead of by predicted loss. Its rate is therefore the one the
technique is configured for, realised the same way; both report their measured rate. Loss-based
selection has been found not to beat random selection consistently (No Train No Gain, Kaddour
et al. 2023), which is what the control is there to test.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from step7bench.engine import GateStage, Plugin
from step7bench.engine.context import TrialContext
from step7bench.seeding import torch_generator
from step7bench.techniques._common import flat_criterion, percent
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import IGNORE_INDEX, Batch, Workload

NUM_FEATURES = 5
PRIOR = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # prediction = stale loss
JUDGE_EVERY_PAIRS = 64  # held-out pairs between two judgements of predictor vs stale loss
HELD_OUT_WINDOW = 4096  # the judgement reads the last this many held-out pairs


# -- pure functions ---------------------------------------------------------------------------
def skip_count(batch_size: int, skip_threshold: float, eligible: int) -> int:
    """Examples of a batch that skip: ``floor(skip_threshold x batch_size)``, at most `eligible`."""
    return min(math.floor(skip_threshold * batch_size + 1e-9), eligible)


def easiest(predicted: torch.Tensor, eligible: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the `count` eligible entries with the lowest prediction (ties: first)."""
    ranked = torch.where(eligible, predicted, torch.full_like(predicted, math.inf))
    return torch.topk(ranked, count, largest=False, sorted=False).indices


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D samples (ties broken by position); NaN under 3 pairs
    or when either sample is constant."""
    if a.numel() < 3:
        return math.nan
    ranks = [torch.argsort(torch.argsort(x)).double() for x in (a, b)]
    ranks = [r - r.mean() for r in ranks]
    scale = float(ranks[0].norm() * ranks[1].norm())
    return float((ranks[0] * ranks[1]).sum()) / scale if scale > 0 else math.nan


def check_predictor_settings(ridge: float, forget: float) -> None:
    if not ridge > 0:
        raise ValueError(f"ridge must be > 0, got {ridge!r}")
    if not 0.0 < forget <= 1.0:
        raise ValueError(f"forget must be in (0, 1], got {forget!r}")


def check_holdout_fraction(holdout_fraction: float) -> None:
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction!r}")


def check_skip_settings(skip_threshold: float, max_consecutive_skips: int) -> None:
    if not 0.0 <= skip_threshold <= 1.0:
        raise ValueError(f"skip_threshold must be in [0, 1], got {skip_threshold!r}")
    if max_consecutive_skips < 1:
        raise ValueError(f"max_consecutive_skips must be >= 1, got {max_consecutive_skips!r}")


class StaleLossPredictor:
    """Per-example stale losses and the ridge predictor of the next loss (module docstring).

    Holds CPU float64 state for `token_counts.numel()` examples; ids index it. `ridge` is the
    pull toward the stale-loss prior, `forget` the weight each observed batch leaves on older
    pairs (0.99: an effective memory of about 100 batches).
    """

    def __init__(self, token_counts: torch.Tensor, *, ridge: float = 1.0, forget: float = 0.99) -> None:
        check_predictor_settings(ridge, forget)
        n = token_counts.numel()
        self.stale_loss = torch.full((n,), math.nan, dtype=torch.float64)
        self.stale_step = torch.zeros(n, dtype=torch.float64)
        self.times_measured = torch.zeros(n, dtype=torch.float64)
        self.length = token_counts.double() / max(float(token_counts.max()) if n else 1.0, 1.0)
        self.ridge, self.forget = ridge, forget
        self._gram = torch.zeros(NUM_FEATURES, NUM_FEATURES, dtype=torch.float64)
        self._moment = torch.zeros(NUM_FEATURES, dtype=torch.float64)
        self.theta = PRIOR.clone()

    def features(self, ids: torch.Tensor, step: int) -> torch.Tensor:
        """(len(ids), 5) features known before the forward pass at optimizer step `step`."""
        return torch.stack([torch.ones(len(ids), dtype=torch.float64), self.stale_loss[ids],
                            torch.log1p(step - self.stale_step[ids]), torch.log1p(self.times_measured[ids]),
                            self.length[ids]], dim=1)

    def predict(self, ids: torch.Tensor, step: int) -> torch.Tensor:
        """Predicted loss per id; NaN for examples never measured."""
        return self.features(ids, step) @ self.theta

    def observe(self, ids: torch.Tensor, losses: torch.Tensor, step: int, fit: torch.Tensor | None = None) -> None:
        """Fit on the measured `losses` of `ids` (those with a stale loss, and only where the
        boolean mask `fit` is true when it is given), then refresh every one's stale loss."""
        features = self.features(ids, step)
        known = ~torch.isnan(features[:, 1])
        if fit is not None:
            known &= fit
        x, y = features[known], losses.double()[known]
        self._gram = self.forget * self._gram + x.T @ x
        self._moment = self.forget * self._moment + x.T @ y
        eye = torch.eye(NUM_FEATURES, dtype=torch.float64)
        self.theta = torch.linalg.solve(self._gram + self.ridge * eye, self._moment + self.ridge * PRIOR)
        self.stale_loss[ids] = losses.double()
        self.stale_step[ids] = float(step)
        self.times_measured[ids] += 1


class SkipRule:
    """Eligibility and the per-batch skip count, shared by the technique and its control."""

    def __init__(self, num_examples: int, skip_threshold: float, max_consecutive_skips: int) -> None:
        check_skip_settings(skip_threshold, max_consecutive_skips)
        self.skip_threshold, self.max_consecutive_skips = skip_threshold, max_consecutive_skips
        self._admitted = torch.zeros(num_examples, dtype=torch.long)
        self._skipped_in_a_row = torch.zeros(num_examples, dtype=torch.long)
        self.examples = 0
        self.eligible = 0  # examples that were eligible to skip when gated
        self.skipped = 0

    def keep_mask(self, ids: torch.Tensor, choose: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
        """Which examples of the batch `ids` go on; `choose(eligible, count)` picks the
        positions that skip among the eligible ones."""
        eligible = (self._admitted[ids] > 0) & (self._skipped_in_a_row[ids] < self.max_consecutive_skips)
        count = skip_count(len(ids), self.skip_threshold, int(eligible.sum()))
        self.eligible += int(eligible.sum())
        keep = torch.ones(len(ids), dtype=torch.bool)
        if count:
            keep[choose(eligible, count)] = False
        self._admitted.index_add_(0, ids[keep], torch.ones(int(keep.sum()), dtype=torch.long))
        self._skipped_in_a_row[ids[keep]] = 0
        self._skipped_in_a_row.index_add_(0, ids[~keep], torch.ones(int((~keep).sum()), dtype=torch.long))
        self.examples += len(ids)
        self.skipped += len(ids) - int(keep.sum())
        return keep

    @property
    def skip_rate(self) -> float:
        return self.skipped / max(self.examples, 1)

    def activity(self) -> dict[str, Any]:
        """The standard activity entry: the share of gated examples skipped, and when none was,
        why not."""
        summary = f"{percent(self.skip_rate)} of examples skipped"
        if self.skipped == 0 and self.examples:
            summary += (": no example was seen twice within the budget" if self.eligible == 0
                        else ": skip_threshold x batch size is under one example")
        return activity(self.skipped > 0, summary, self.skip_rate)


class PredictionQuality:
    """Predicted vs measured losses of the last `window` examples that had a prediction;
    `total` counts every pair ever added."""

    def __init__(self, window: int = HELD_OUT_WINDOW) -> None:
        self._pairs: deque[tuple[float, float, float]] = deque(maxlen=window)
        self.total = 0

    def add(self, predicted: torch.Tensor, stale: torch.Tensor, measured: torch.Tensor) -> None:
        known = ~torch.isnan(predicted)
        self._pairs.extend(zip(predicted[known].tolist(), stale[known].tolist(), measured[known].tolist(),
                               strict=True))
        self.total += int(known.sum())

    def figures(self) -> dict[str, float | int]:
        predicted, stale, measured = (torch.tensor(column, dtype=torch.float64) for column in
                                      (zip(*self._pairs, strict=True) if self._pairs else ([], [], [])))
        return {"predictor_spearman": spearman(predicted, measured),
                "stale_loss_spearman": spearman(stale, measured), "predictor_pairs": len(self._pairs)}


def predictor_beats_stale_loss(figures: Mapping[str, float | int]) -> bool:
    """Whether the predictor's Spearman (on held-out pairs) is higher than the bare stale loss's;
    False when either is undefined."""
    predictor, stale = figures["predictor_spearman"], figures["stale_loss_spearman"]
    return math.isfinite(predictor) and math.isfinite(stale) and predictor > stale


class SkipRanker:
    """What ranks examples for skipping: the `StaleLossPredictor` while it beats the bare stale
    loss on held-out pairs, else the stale loss (module docstring, "The predictor must earn its
    place"). `holdout_fraction` of the observed pairs, drawn with `generator`, are never fitted."""

    def __init__(self, token_counts: torch.Tensor, *, ridge: float, forget: float, holdout_fraction: float,
                 generator: torch.Generator) -> None:
        check_holdout_fraction(holdout_fraction)
        self.predictor = StaleLossPredictor(token_counts, ridge=ridge, forget=forget)
        self.held_out = PredictionQuality()
        self.holdout_fraction, self._generator = holdout_fraction, generator
        self.uses_predictor = False
        self._judged_at = 0  # held-out pairs at the last judgement

    def scores(self, predicted: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The ranking scores of `ids` (lower = skipped first), given the predictor's `predicted`."""
        return predicted if self.uses_predictor else self.predictor.stale_loss[ids]

    def observe(self, ids: torch.Tensor, predicted: torch.Tensor, losses: torch.Tensor,
                step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Learn from the measured `losses` of `ids`, whose predictions before the forward pass
        were `predicted` (NaN: none); returns the held-out (predicted, stale, measured) triples."""
        held_out = (torch.rand(len(ids), generator=self._generator) < self.holdout_fraction) & ~torch.isnan(predicted)
        triples = (predicted[held_out], self.predictor.stale_loss[ids][held_out], losses.double()[held_out])
        self.held_out.add(*triples)
        self.predictor.observe(ids, losses, step, fit=~held_out)
        if self.held_out.total - self._judged_at >= JUDGE_EVERY_PAIRS:
            self.uses_predictor = predictor_beats_stale_loss(self.held_out.figures())
            self._judged_at = self.held_out.total
        return triples

    def figures(self) -> dict[str, Any]:
        return {**self.held_out.figures(), "ranking": "predictor" if self.uses_predictor else "stale_loss",
                "predictor_theta": [round(float(v), 4) for v in self.predictor.theta]}


# -- the engine plug-ins ----------------------------------------------------------------------
class _SkipGate(GateStage):
    """Skips `SkipRule`'s count of examples per batch; subclasses choose which.

    State built in `__init__` is empty but valid (it checks the settings, and `stats` works even
    for a trial that failed before `setup`); `setup` sizes it to the training set.
    """

    def __init__(self, skip_threshold: float, max_consecutive_skips: int) -> None:
        self._skip_threshold, self._max_consecutive_skips = skip_threshold, max_consecutive_skips
        self._rule = SkipRule(0, skip_threshold, max_consecutive_skips)

    def setup(self, ctx: TrialContext) -> None:
        self._rule = SkipRule(len(ctx.train), self._skip_threshold, self._max_consecutive_skips)

    def gate(self, ctx: TrialContext, batch: Batch) -> Batch:
        with ctx.overhead():
            keep = self._rule.keep_mask(batch.ids, lambda eligible, count: self._choose(ctx, batch, eligible, count))
            return batch if bool(keep.all()) else batch.subset(keep.nonzero().squeeze(1))

    def _choose(self, ctx: TrialContext, batch: Batch, eligible: torch.Tensor, count: int) -> torch.Tensor:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {"activity": self._rule.activity(), "examples_gated": self._rule.examples,
                "examples_skipped": self._rule.skipped, "skip_rate": self._rule.skip_rate}


class PredictedEasiestGate(_SkipGate):
    """Skips the eligible examples ranked easiest by the `SkipRanker` (the predicted loss, or the
    stale loss while the predictor does not beat it on held-out pairs); learns from every training
    forward pass through `ctx.forward_observers`."""

    def __init__(self, skip_threshold: float, max_consecutive_skips: int, ridge: float, forget: float,
                 holdout_fraction: float) -> None:
        super().__init__(skip_threshold, max_consecutive_skips)
        self._settings = {"ridge": ridge, "forget": forget, "holdout_fraction": holdout_fraction}
        self._ranker = SkipRanker(torch.zeros(0), generator=torch.Generator(), **self._settings)
        self._ranked, self._ranked_by_predictor = 0, 0  # batches that skipped, and of those ranked by the predictor

    def setup(self, ctx: TrialContext) -> None:
        super().setup(ctx)
        self._ranker = SkipRanker(ctx.train.token_counts(), generator=ctx.torch_generator("difficulty-holdout"),
                                  **self._settings)
        self._predicted = torch.full((len(ctx.train),), math.nan, dtype=torch.float64)
        ctx.forward_observers.append(lambda batch, logits: self._observe(ctx, batch, logits))

    def gate(self, ctx: TrialContext, batch: Batch) -> Batch:
        with ctx.overhead():
            self._predicted[batch.ids] = self._ranker.predictor.predict(batch.ids, ctx.step)
        return super().gate(ctx, batch)

    def _choose(self, ctx: TrialContext, batch: Batch, eligible: torch.Tensor, count: int) -> torch.Tensor:
        self._ranked += 1
        self._ranked_by_predictor += self._ranker.uses_predictor
        return easiest(self._ranker.scores(self._predicted[batch.ids], batch.ids), eligible, count)

    def _observe(self, ctx: TrialContext, batch: Batch, logits: torch.Tensor) -> None:
        with ctx.overhead():
            losses = ctx.workload.per_example_loss(logits, batch.targets).double().cpu()
            self._ranker.observe(batch.ids, self._predicted[batch.ids], losses, ctx.step)
            self._predicted[batch.ids] = math.nan

    def stats(self) -> dict[str, Any]:
        stats = {**super().stats(), **self._ranker.figures(),
                 "predictor_ranked_share": self._ranked_by_predictor / max(self._ranked, 1)}
        ranked_by = "the predictor" if self._ranker.uses_predictor else "the stale loss"
        if stats["activity"]["fired"]:
            stats["activity"]["summary"] += f", ranked by {ranked_by} at the end"
        return stats


class RandomSkipGate(_SkipGate):
    """The control: the same eligibility and count per batch, skipped examples drawn uniformly."""

    def setup(self, ctx: TrialContext) -> None:
        super().setup(ctx)
        self._generator = ctx.torch_generator("difficulty-prediction-random")

    def _choose(self, ctx: TrialContext, batch: Batch, eligible: torch.Tensor, count: int) -> torch.Tensor:
        positions = eligible.nonzero().squeeze(1)
        return positions[torch.randperm(len(positions), generator=self._generator)[:count]]


DEFAULTS = {
    "skip_threshold": 0.2,  # fraction of each batch skipped: the seed's "20% examples skipped"
    "max_consecutive_skips": 2,  # then the example is trained, refreshing its stale loss
    "ridge": 1.0,  # pull toward "prediction = stale loss", in units of one pair's weight
    "forget": 0.99,  # weight left on older pairs per observed batch
    "holdout_fraction": 0.2,  # observed pairs never fitted, on which the predictor must beat the stale loss
}
CONTROL_DEFAULTS = {key: DEFAULTS[key] for key in ("skip_threshold", "max_consecutive_skips")}


def _rule_settings(config: Mapping[str, Any]) -> tuple[float, int]:
    return float(config["skip_threshold"]), int(config["max_consecutive_skips"])


def _build(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    gate = PredictedEasiestGate(*_rule_settings(config), float(config["ridge"]), float(config["forget"]),
                                float(config["holdout_fraction"]))
    return Plugin("difficulty_prediction", gate=gate)


def _build_control(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    return Plugin("difficulty_prediction_random", gate=RandomSkipGate(*_rule_settings(config)))


TECHNIQUES = (
    TechniqueSpec(
        name="difficulty_prediction",
        summary="skip the examples whose loss, predicted before the forward pass from stale losses, is lowest "
                "(Stale Selective Backprop, Jiang et al. 2019); predictor cost charged",
        stages=("gate",), build=_build, defaults=DEFAULTS, control="difficulty_prediction_random",
        as_specified={"skip_threshold": 0.5},  # the seed function's default, in its example
        grid=tuple({"skip_threshold": rate} for rate in (0.1, 0.2, 1 / 3, 0.5, 2 / 3, 0.75)),
        grid_source="skip rates: Selective Backprop (Jiang et al. 2019) keeps example i with probability "
                    "CDF(L_i)^beta, on average 1/(beta + 1): beta 1, 2, 3 skip 50%, 67%, 75% (Composer's version "
                    "keeps half); the seed's claimed 20% and its example's 50%; milder 10% and 33%"),
    TechniqueSpec(
        name="difficulty_prediction_random",
        summary="random control: the same eligibility and number of skips per batch, skipped examples drawn "
                "uniformly",
        stages=("gate",), build=_build_control, defaults=CONTROL_DEFAULTS, is_control=True),
)


# -- the seed document's function -------------------------------------------------------------
def per_example_criterion(criterion: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss per example, shape (B,), with `criterion`'s settings: `nn.CrossEntropyLoss` keeps its
    weight, ignore_index and label smoothing; other criteria with a `reduction` are copied with
    ``reduction='none'``. Sequence logits (B, T, V) give the mean over each example's
    non-ignored tokens (length-normalised)."""
    if isinstance(criterion, nn.CrossEntropyLoss):
        unreduced: nn.Module = nn.CrossEntropyLoss(weight=criterion.weight, ignore_index=criterion.ignore_index,
                                                   reduction="none", label_smoothing=criterion.label_smoothing)
    elif hasattr(criterion, "reduction"):
        unreduced = copy.copy(criterion)
        unreduced.reduction = "none"
    else:
        raise ValueError(f"criterion: {type(criterion).__name__} has no 'reduction' setting to compute "
                         "per-example losses with")
    ignore_index = getattr(criterion, "ignore_index", IGNORE_INDEX)

    def losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2:
            return unreduced(logits, targets)
        per_token = unreduced(logits.flatten(0, 1), targets.flatten()).view(targets.shape)
        counts = (targets != ignore_index).sum(dim=1).clamp(min=1)
        return per_token.sum(dim=1) / counts

    return losses


def _gather(train_dataset: torch.utils.data.Dataset, ids: torch.Tensor,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    items = [train_dataset[i] for i in ids.tolist()]
    if not all(isinstance(item, (tuple, list)) and len(item) == 2 for item in items):
        raise ValueError("train_dataset must yield (inputs, targets) pairs to train on")
    inputs, targets = torch.utils.data.default_collate(items)
    return inputs.to(device), targets.to(device)


def _token_counts(train_dataset: torch.utils.data.Dataset, ignore_index: int) -> torch.Tensor:
    counts = [int((torch.as_tensor(train_dataset[i][1]) != ignore_index).sum()) for i in range(len(train_dataset))]
    return torch.tensor(counts, dtype=torch.long)


def train_with_difficulty_prediction(model: nn.Module, train_dataset: torch.utils.data.Dataset,
                                     optimizer: torch.optim.Optimizer, criterion: nn.Module, num_epochs: int = 5,
                                     skip_threshold: float = 0.5, *, batch_size: int = 32,
                                     device: str | torch.device | None = None, seed: int = 0,
                                     max_consecutive_skips: int = 2, holdout_fraction: float = 0.2) -> dict[str, Any]:
    """Train `model` for `num_epochs` over `train_dataset` (items ``(inputs, targets)``), skipping
    in each batch the `skip_threshold` fraction ranked easiest (module docstring: the predicted
    loss while it beats the stale loss on the `holdout_fraction` of pairs it is not fitted on,
    else the stale loss), before their forward pass. The loss trained on is `criterion` over the
    kept examples.

    `device` defaults to the model's; `seed` fixes the data order and the held-out draws. Returns
    per-epoch lists ``epoch_loss`` (mean training loss of the kept examples, by batch),
    ``examples_seen`` (through forward and backward), ``examples_skipped``, ``skip_rate``,
    ``predictor_spearman`` and ``stale_loss_spearman`` (rank correlation of predicted, and of
    bare stale, loss with the measured loss, on that epoch's held-out pairs) and ``ranking``
    (``'predictor'`` or ``'stale_loss'``, in use at the epoch's end), and the totals
    ``total_examples_seen``, ``total_examples_skipped``, ``optimizer_steps`` and
    ``predictor_wall_s`` (seconds spent predicting, fitting and computing per-example losses:
    the predictor's cost).
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    rule = SkipRule(len(train_dataset), skip_threshold, max_consecutive_skips)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    example_losses = per_example_criterion(criterion)
    ranker = SkipRanker(_token_counts(train_dataset, getattr(criterion, "ignore_index", IGNORE_INDEX)), ridge=1.0,
                        forget=0.99, holdout_fraction=holdout_fraction,
                        generator=torch_generator(seed, "difficulty-prediction/holdout"))
    generator = torch_generator(seed, "difficulty-prediction/data-order")
    metrics: dict[str, Any] = {key: [] for key in ("epoch_loss", "examples_seen", "examples_skipped", "skip_rate",
                                                   "predictor_spearman", "stale_loss_spearman", "ranking")}
    steps, predictor_s = 0, 0.0
    for _ in range(num_epochs):
        quality, losses, seen_before, skipped_before = PredictionQuality(), [], rule.examples, rule.skipped
        for ids in torch.randperm(len(train_dataset), generator=generator).split(batch_size):
            start_s = time.perf_counter()
            predicted = ranker.predictor.predict(ids, steps)
            scores = ranker.scores(predicted, ids)
            keep = rule.keep_mask(ids, lambda eligible, count, scores=scores: easiest(scores, eligible, count))
            predictor_s += time.perf_counter() - start_s
            if not keep.any():
                continue
            ids = ids[keep]
            inputs, targets = _gather(train_dataset, ids, device)
            logits = model(inputs)
            loss = flat_criterion(criterion, logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            losses.append(float(loss.detach()))
            start_s = time.perf_counter()
            with torch.no_grad():
                measured = example_losses(logits.detach(), targets).double().cpu()
            quality.add(*ranker.observe(ids, predicted[keep], measured, steps))
            predictor_s += time.perf_counter() - start_s
        figures = quality.figures()
        seen = (rule.examples - seen_before) - (rule.skipped - skipped_before)
        metrics["epoch_loss"].append(sum(losses) / max(len(losses), 1))
        metrics["examples_seen"].append(seen)
        metrics["examples_skipped"].append(rule.skipped - skipped_before)
        metrics["skip_rate"].append((rule.skipped - skipped_before) / max(rule.examples - seen_before, 1))
        metrics["predictor_spearman"].append(figures["predictor_spearman"])
        metrics["stale_loss_spearman"].append(figures["stale_loss_spearman"])
        metrics["ranking"].append("predictor" if ranker.uses_predictor else "stale_loss")
    metrics.update(total_examples_seen=rule.examples - rule.skipped, total_examples_skipped=rule.skipped,
                   optimizer_steps=steps, predictor_wall_s=predictor_s)
    return metrics
