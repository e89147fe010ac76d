"""Curriculum learning: rank examples by difficulty and admit the harder ones as training goes.

Seed API: `CurriculumLearningScheduler(train_dataset, model, difficulty_metric, device)`;
`.compute_difficulties(batch_size)` gives one difficulty per example (lower = easier) and
`.get_curriculum_dataloader(epoch, total_epochs, batch_size, strategy)` a DataLoader over the
examples the pacing admits at that epoch, easiest admitted first.

Pacing (`Pacing.fraction`): the fraction of the examples in play, easiest first, admitted at
a point of training. Like the competence of Platanios et al. (2019), a fraction c admits the
examples whose difficulty CDF is <= c. Epoch 0 admits a strict subset and the full set is in
play from `full_at` (a fraction of training) on, by the last epoch at the latest.

Difficulty metrics (lower = easier):

- ``perplexity`` -- length-normalised mean token NLL (nats, i.e. log-perplexity) under a
  scoring model. On classification data that is the example's cross-entropy, so there it
  coincides with ``loss``. In the seed API the scoring model is the model given. In the
  engine it is a *briefly trained reference*: a fresh model of the same architecture trained
  `reference_fraction` of the step budget on random batches, its training and scoring
  charged as overhead. Not the trial's current model: at step 0 that model is untrained and
  ranks everything alike (the curriculum would collapse into its own random control), and
  re-ranking with it as it learns would be self-paced learning, a different method.
- ``loss`` -- the example's cross-entropy under the scoring model (classification).
- ``length`` -- predicted (non-padding) tokens; sequences only (Platanios et al. 2019).
- ``rarity`` -- summed token rarity ``sum_t -log(count(w_t) / total)`` over the example's
  tokens, counts over the training set (DeepSpeed Data Efficiency, Li et al. 2022). Being a
  sum, it grows with length too.

Dynamic difficulty adjustment (`PaceClock`): the pacing function is read at a *curriculum
time* that runs faster while the validation loss improves and holds while it stalls,
competence-feedback in the spirit of self-paced learning (Kumar et al. 2010). It never lags
so far that the full set would be missed by the end of training.

Scoring sized to the run (`candidate_pool`, model metrics only). Scoring all 20,000 examples of
grammar-lm small costs a forward pass each, while a 300-step run draws only 9,600. So by default
the order stage scores, with the reference model, a uniformly random subset (the trial's seeded
generator) of the examples in play: ``candidate_pool`` x the examples the steps left before the
budget's horizon will draw (batch size x steps left), at most all in play -- at step 0,
``candidate_pool`` x steps x batch size. The ranking is the scored examples easiest first, then
the unscored ones in random order: the pacing admits easy scored examples first and, once it has
admitted every scored one, random unscored ones. When the examples in play change (active
learning's rounds), scoring tops the scored ones up to the quota of that moment. ``"all"``
scores every example in play, as the seed's `compute_difficulties` does. Every pass is charged
through `ctx.score`; token metrics (length, rarity) need no forward pass and rank everything.

The control (`curriculum_random`) keeps the same pacing over a random difficulty order: Wu,
Dyer & Neyshabur (ICLR 2021) found that random order with the same growing data set often
does as well, and only the difference to that control credits the ordering idea. It selects
what the technique would with scores drawn at random, so it pays no scoring pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from step7bench.engine.context import TrialContext
from step7bench.engine.loop import run_trial
from step7bench.engine.stages import OrderStage, Plugin
from step7bench.seeding import derive_seed, torch_generator
from step7bench.techniques._common import check_positive_int, cuda_indices, percent, user_device
from step7bench.techniques.pool_scoring import iter_batches, score_dataset
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import IGNORE_INDEX, Budget, Workload, per_example_loss

STRATEGIES = ("linear", "root", "exponential")
METRICS = ("perplexity", "loss", "length", "rarity")
MODEL_METRICS = frozenset({"perplexity", "loss"})
TOKEN_METRICS = frozenset({"length", "rarity"})

# Starting fractions from the papers that define each pacing: c0 = 0.01 (Platanios et al.
# 2019) for the competence functions, s = 0.04 (Hacohen & Weinshall 2019) for exponential.
DEFAULT_START_FRACTION = {"linear": 0.01, "root": 0.01, "exponential": 0.04}


# -- pacing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pacing:
    """A pacing function: the admitted fraction in (0, 1] at a fraction of training in [0, 1].

    With t = progress / full_at and c0 = `start_fraction`:

    - ``linear`` (Platanios et al. 2019): ``c = min(1, c0 + (1 - c0) t)``;
    - ``root`` (Platanios et al. 2019, root-p competence): ``c = min(1, (c0^p + (1 - c0^p) t)^(1/p))``,
      p = `root_power` (2: square root), fast early and slow late;
    - ``exponential`` (Hacohen & Weinshall 2019, "fixed exponential pacing"): a staircase
      ``c = min(1, c0 * g^floor(progress / L))`` with growth g = `growth` (1.9 in the paper),
      the step length L chosen so the last stair lands at `full_at`. This is H&W's meaning:
      the *admitted data* grows geometrically per stair. Wu et al. (2021) mean something else:
      a smooth ``N_b + (N - N_b)(e^(c t) - 1)/(e^c - 1)`` curve that grows slowly first.

    `full_at` is the fraction of training from which everything is admitted; the default 0.5
    (our choice: the second half of training, where the baseline's cosine schedule decays,
    sees the whole data set) stands in for Platanios et al.'s tuned curriculum length T.
    """

    strategy: str = "linear"
    start_fraction: float | None = None  # None: the strategy's cited default
    full_at: float = 0.5
    root_power: float = 2.0
    growth: float = 1.9

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.start_fraction is not None and not 0.0 < self.start_fraction <= 1.0:
            raise ValueError(f"start_fraction must be in (0, 1], got {self.start_fraction!r}")
        if not 0.0 < self.full_at <= 1.0:
            raise ValueError(f"full_at must be in (0, 1], got {self.full_at!r}")
        if not self.root_power >= 1.0:
            raise ValueError(f"root_power must be >= 1, got {self.root_power!r}")
        if not self.growth > 1.0:
            raise ValueError(f"growth must be > 1, got {self.growth!r}")

    @property
    def c0(self) -> float:
        return DEFAULT_START_FRACTION[self.strategy] if self.start_fraction is None else self.start_fraction

    def fraction(self, progress: float) -> float:
        """Admitted fraction at `progress` (clipped to [0, 1]); 1 from `full_at` on."""
        progress = min(max(progress, 0.0), 1.0)
        if progress >= self.full_at:
            return 1.0
        t, c0 = progress / self.full_at, self.c0
        if self.strategy == "linear":
            return min(1.0, c0 + (1.0 - c0) * t)
        if self.strategy == "root":
            p = self.root_power
            return min(1.0, (c0 ** p + (1.0 - c0 ** p) * t) ** (1.0 / p))
        stairs = max(1, math.ceil(math.log(1.0 / c0) / math.log(self.growth)))
        return min(1.0, c0 * self.growth ** math.floor(t * stairs))


def admitted_count(fraction: float, n_examples: int, minimum: int = 1) -> int:
    """Examples admitted at `fraction`: ceil(fraction * n), at least `minimum`, at most n."""
    return min(n_examples, max(minimum, math.ceil(fraction * n_examples)))


def epoch_progress(epoch: int, total_epochs: int) -> float:
    """Fraction of training at the start of `epoch`, scaled so the last epoch sits at 1 (and the
    full data set is in play by then whatever `full_at` is)."""
    check_positive_int(total_epochs, "total_epochs")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < total_epochs:
        raise ValueError(f"epoch must be an integer in [0, {total_epochs}), got {epoch!r}")
    return 1.0 if total_epochs == 1 else epoch / (total_epochs - 1)


def easiest_first(difficulties: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Positions of `difficulties` from easiest (lowest) to hardest; ties in random order, so
    a coarse metric such as length does not fall back to the data set's order."""
    shuffled = torch.randperm(len(difficulties), generator=generator)
    return shuffled[torch.argsort(difficulties[shuffled], stable=True)]


# -- dynamic difficulty adjustment -----------------------------------------------------------------


def next_pace_rate(rate: float, improved: bool, *, speedup: float, max_rate: float) -> float:
    """The curriculum clock's speed after a validation check: x `speedup` (at most `max_rate`)
    while the loss improves, 0 (hold) while it stalls; after a hold it restarts at 1."""
    if not improved:
        return 0.0
    return 1.0 if rate == 0.0 else min(max_rate, rate * speedup)


class PaceClock:
    """Curriculum time for dynamic pacing, in units of training progress.

    Time runs at `rate` x training progress, the rate set by `next_pace_rate` at each
    validation check after the first; an improvement is a loss below (1 - `min_improvement`)
    x the best so far. Time never falls below ``progress * full_at``, so even a curriculum that holds all
    along has the full data set in play at the end of training.
    """

    def __init__(self, full_at: float, *, speedup: float = 1.5, max_rate: float = 4.0,
                 min_improvement: float = 1e-3) -> None:
        if not speedup >= 1.0:
            raise ValueError(f"dynamic_speedup must be >= 1, got {speedup!r}")
        if not max_rate >= 1.0:
            raise ValueError(f"dynamic_max_rate must be >= 1, got {max_rate!r}")
        if not 0.0 <= min_improvement < 1.0:
            raise ValueError(f"dynamic_min_improvement must be in [0, 1), got {min_improvement!r}")
        self.full_at, self.speedup, self.max_rate = full_at, speedup, max_rate
        self.min_improvement = min_improvement
        self.rate, self.time, self.best_val_loss = 1.0, 0.0, math.inf
        self._progress = 0.0

    def time_at(self, progress: float) -> float:
        """Advance the clock to `progress` at the current rate; the curriculum time then."""
        if progress > self._progress:
            self.time += self.rate * (progress - self._progress)
            self._progress = progress
        self.time = max(self.time, progress * self.full_at)
        return self.time

    def observe(self, val_loss: float) -> None:
        """Set the rate from a validation loss; the first one only sets the reference."""
        if self.best_val_loss < math.inf:
            improved = val_loss < self.best_val_loss * (1.0 - self.min_improvement)
            self.rate = next_pace_rate(self.rate, improved, speedup=self.speedup, max_rate=self.max_rate)
        self.best_val_loss = min(self.best_val_loss, val_loss)


# -- difficulty metrics --------------------------------------------------------------------------


def check_metric(metric: str, name: str = "difficulty_metric") -> None:
    if metric not in METRICS:
        raise ValueError(f"{name} must be one of {', '.join(METRICS)}, got {metric!r}")


def token_mask(inputs: torch.Tensor, targets: torch.Tensor | None, pad_id: int | None) -> torch.Tensor:
    """Positions of `inputs` (B, T) that hold a real token: where the targets are not padding
    when they are known, else where the input is not `pad_id`, else all."""
    if targets is not None and targets.shape == inputs.shape:
        return targets != IGNORE_INDEX
    if pad_id is not None:
        return inputs != pad_id
    return torch.ones_like(inputs, dtype=torch.bool)


def length_difficulty(mask: torch.Tensor) -> torch.Tensor:
    """Real tokens per example, float (B,)."""
    return mask.sum(dim=1).float()


def token_rarity(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """-log(count / total) of every token id up to the largest seen, over the masked tokens;
    ids never seen get +inf (they cannot occur in the same data set)."""
    counts = torch.bincount(tokens[mask].flatten()).double()
    return (-torch.log(counts / counts.sum())).float()


def rarity_difficulty(tokens: torch.Tensor, mask: torch.Tensor, rarity: torch.Tensor) -> torch.Tensor:
    """Summed rarity of each example's masked tokens, float (B,) (DeepSpeed's vocabulary rarity)."""
    per_token = rarity[tokens.clamp(max=len(rarity) - 1)]
    return torch.where(mask, per_token, torch.zeros_like(per_token)).sum(dim=1)


def next_token_targets(inputs: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Language-model targets of token inputs that come without targets: the next token, the
    last position and padding ignored."""
    targets = inputs.roll(-1, dims=1)
    targets[:, -1] = IGNORE_INDEX
    if pad_id is not None:
        targets[targets == pad_id] = IGNORE_INDEX
    return targets


def nll_difficulty(logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor | None,
                   pad_id: int | None = None) -> torch.Tensor:
    """Length-normalised NLL (nats per predicted token) of each example under the model."""
    if targets is None:
        if logits.dim() != 3:
            raise ValueError("difficulty_metric 'perplexity'/'loss' on a classifier needs (inputs, targets) items")
        targets = next_token_targets(inputs, pad_id)
    return per_example_loss(logits.float(), targets)


# -- the seed's API ----------------------------------------------------------------------------


class CurriculumLearningScheduler:
    """Difficulty-ordered, paced access to `train_dataset` for a user's own training loop.

    Items are `inputs`, `(inputs,)` or `(inputs, targets)`; token inputs without targets are
    scored as a language model on their next tokens. `pad_id` marks padding in token inputs
    (not needed when targets carry IGNORE_INDEX padding). `pacing` holds the pacing settings
    other than the strategy (start fraction, `full_at`...); `dynamic=True` reads the pacing at
    a `PaceClock` fed by `observe_validation_loss`. `seed` fixes tie-breaking and shuffling.
    """

    def __init__(self, train_dataset: Dataset, model: nn.Module, difficulty_metric: str = "perplexity",
                 device: str = "cuda", *, pacing: Pacing | None = None, dynamic: bool = False,
                 pad_id: int | None = None, seed: int = 0) -> None:
        check_metric(difficulty_metric)
        self.device = user_device(device)
        self.train_dataset = train_dataset
        self.model = model.to(self.device)
        self.difficulty_metric = difficulty_metric
        self.pacing = pacing or Pacing()
        self.clock = PaceClock(self.pacing.full_at) if dynamic else None
        self.pad_id, self.seed = pad_id, seed
        self.difficulties: torch.Tensor | None = None
        self._ranked: torch.Tensor | None = None

    def compute_difficulties(self, batch_size: int = 32) -> torch.Tensor:
        """One difficulty per example (lower = easier), float (N,) on the CPU; also kept for
        the dataloaders."""
        check_positive_int(batch_size, "batch_size")
        if self.difficulty_metric in MODEL_METRICS:
            self.difficulties = score_dataset(
                self.model, self.train_dataset,
                lambda logits, inputs, targets: nll_difficulty(logits, inputs, targets, self.pad_id),
                batch_size=batch_size, device=self.device)
        else:
            self.difficulties = self._token_difficulties(batch_size)
        self._ranked = easiest_first(self.difficulties, torch_generator(self.seed, "curriculum/ties"))
        return self.difficulties

    def get_curriculum_dataloader(self, epoch: int, total_epochs: int, batch_size: int = 32,
                                  strategy: str = "linear") -> DataLoader:
        """A shuffled DataLoader over the examples admitted at `epoch` of `total_epochs`."""
        progress = epoch_progress(epoch, total_epochs)
        check_positive_int(batch_size, "batch_size")
        pacing = dataclasses.replace(self.pacing, strategy=strategy)
        if self._ranked is None:
            self.compute_difficulties(batch_size)
        time = self.clock.time_at(progress) if self.clock is not None else progress
        admitted = self._ranked[: admitted_count(pacing.fraction(time), len(self._ranked))]
        return DataLoader(Subset(self.train_dataset, admitted.tolist()), batch_size=batch_size, shuffle=True,
                          generator=torch_generator(self.seed, f"curriculum/epoch-{epoch}"))

    def observe_validation_loss(self, val_loss: float) -> None:
        """Feedback for dynamic pacing (call after each epoch's validation)."""
        if self.clock is None:
            raise ValueError("observe_validation_loss needs CurriculumLearningScheduler(..., dynamic=True)")
        self.clock.observe(val_loss)

    def _token_difficulties(self, batch_size: int) -> torch.Tensor:
        batches = list(iter_batches(self.train_dataset, batch_size, torch.device("cpu")))
        inputs = torch.cat([b[0] for b in batches])
        if inputs.is_floating_point() or inputs.dim() != 2:
            raise ValueError(f"difficulty_metric={self.difficulty_metric!r} needs (N, T) token-id inputs")
        targets = torch.cat([b[1] for b in batches]) if batches[0][1] is not None else None
        return token_difficulties(self.difficulty_metric, inputs, token_mask(inputs, targets, self.pad_id))


def token_difficulties(metric: str, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`length` or `rarity` of every example of a token data set, float (N,)."""
    if metric == "length":
        return length_difficulty(mask)
    return rarity_difficulty(tokens, mask, token_rarity(tokens, mask))


# -- the engine plug-in --------------------------------------------------------------------------


class _Difficulty:
    """Where an order stage gets difficulties from; `of(ctx, ids)` is called inside overhead."""

    def of(self, ctx: TrialContext, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        return {}


class _WholeSetDifficulty(_Difficulty):
    """Difficulties computed once for the whole training set: token metrics, or random (the
    control)."""

    def __init__(self, metric: str | None) -> None:
        self.metric = metric  # None: a random order
        self._all: torch.Tensor | None = None

    def of(self, ctx: TrialContext, ids: torch.Tensor) -> torch.Tensor:
        if self._all is None:
            train = ctx.train
            if self.metric is None:
                self._all = torch.rand(len(train), generator=ctx.torch_generator("curriculum/random-difficulty"))
            else:
                self._all = token_difficulties(self.metric, train.inputs, token_mask(train.inputs, train.targets, None))
        return self._all[ids]

    def stats(self) -> dict[str, Any]:
        return {"difficulty_metric": self.metric or "random"}


class _ReferenceModelDifficulty(_Difficulty):
    """Length-normalised NLL under a briefly trained reference model, scored on demand (only
    the examples a select stage puts in play), every pass charged as overhead."""

    def __init__(self, metric: str, reference_fraction: float, score_batch_size: int) -> None:
        self.metric, self.reference_fraction, self.score_batch_size = metric, reference_fraction, score_batch_size
        self.reference: nn.Module | None = None
        self.reference_steps = 0
        self.examples_scored = 0

    def of(self, ctx: TrialContext, ids: torch.Tensor) -> torch.Tensor:
        if self.reference is None:
            self.reference = self._train_reference(ctx)
        self.examples_scored += len(ids)
        return torch.cat([self._score(ctx, chunk) for chunk in ids.split(self.score_batch_size)])

    def _score(self, ctx: TrialContext, ids: torch.Tensor) -> torch.Tensor:
        batch = ctx.train.gather(ids).to(ctx.device)
        return ctx.workload.per_example_loss(ctx.score(batch, model=self.reference).float(), batch.targets).cpu()

    def _train_reference(self, ctx: TrialContext) -> nn.Module:
        """A fresh model of the trial's architecture, trained through the engine on the training
        set for `reference_fraction` of the step budget with the baseline's recipe (warm-up a
        tenth of it, cosine decayed at its end), without validation checks. Its whole ledger is
        charged to this trial as overhead: its passes here, its seconds by the caller's
        `ctx.overhead()` window."""
        steps = max(1, round(self.reference_fraction * ctx.budget.max_steps))
        # No validation check at all: neither coarse (eval_every) nor fine ones near a target.
        hparams = dataclasses.replace(ctx.hparams, warmup_steps=max(1, steps // 10), eval_every=0,
                                      eval_every_fine=0)
        # The nested trial seeds the global RNG: fork it so this trial's own stream is untouched.
        with torch.random.fork_rng(devices=cuda_indices(ctx.device)):
            result = run_trial(ctx.workload, derive_seed(ctx.seed, "curriculum/reference"), device=ctx.device,
                               target_val_loss=-math.inf, budget=Budget(steps, math.inf), hparams=hparams,
                               train=ctx.train, keep_model=True)
        if result.status != "missed" or result.model is None:  # 'missed' is the only normal end here
            raise RuntimeError(f"curriculum's reference model ended {result.status!r}: {result.error}")
        ctx.ledger.charge_overhead(result.ledger.examples_forward, result.ledger.flops_total)
        self.reference_steps = result.ledger.steps
        return result.model

    def stats(self) -> dict[str, Any]:
        return {"difficulty_metric": self.metric, "reference_steps": self.reference_steps,
                "examples_scored": self.examples_scored}


def scoring_quota(in_play: int, draws_left: int, factor: float | None) -> int:
    """Examples in play that should have a difficulty: all of them when `factor` is None
    (``candidate_pool = "all"``), else `factor` x the examples the steps left will draw, rounded
    up, at most all in play."""
    return in_play if factor is None else min(in_play, math.ceil(factor * draws_left))


class PacedOrder(OrderStage):
    """Batches drawn uniformly from the easiest admitted examples of those in play.

    Each batch is sampled without replacement from the admitted prefix of the in-play
    examples ranked easiest first (Platanios et al. 2019 sample the same way); at least one
    batch's worth is always admitted. A new set in play (active learning's rounds) is ranked
    afresh, scoring only examples not scored before, and no more than the scoring quota
    (`scoring_quota`, module docstring) needs; unscored examples rank after the scored ones, in
    random order.
    """

    def __init__(self, pacing: Pacing, difficulty: _Difficulty, clock: PaceClock | None,
                 candidate_factor: float | None) -> None:
        self.pacing, self.difficulty, self.clock = pacing, difficulty, clock
        self.candidate_factor = candidate_factor
        self.admitted_fraction = self.first_admitted_fraction = 0.0  # at the last and at the first step paced
        self.first_step, self.steps_paced, self.steps_on_a_subset = 0, 0, 0

    def setup(self, ctx: TrialContext) -> None:
        self._batch_generator = ctx.torch_generator("curriculum/batches")
        self._tie_generator = ctx.torch_generator("curriculum/ties")
        self._candidate_generator = ctx.torch_generator("curriculum/candidates")
        self._known = torch.full((len(ctx.train),), math.nan)
        self._source: torch.Tensor | None = None
        self._ranked = torch.empty(0, dtype=torch.long)

    def next_ids(self, ctx: TrialContext, in_play: torch.Tensor, batch_size: int) -> torch.Tensor:
        if in_play is not self._source:
            self._source, self._ranked = in_play, self._rank(ctx, in_play)
        time = self.clock.time_at(ctx.progress) if self.clock is not None else ctx.progress
        n_admitted = admitted_count(self.pacing.fraction(time), len(in_play), minimum=min(batch_size, len(in_play)))
        self.admitted_fraction = n_admitted / len(in_play)
        if not self.steps_paced:
            self.first_admitted_fraction, self.first_step = self.admitted_fraction, ctx.step
        self.steps_paced += 1
        self.steps_on_a_subset += n_admitted < len(in_play)
        picks = torch.randperm(n_admitted, generator=self._batch_generator)[:batch_size]
        return self._ranked[picks]

    def _rank(self, ctx: TrialContext, in_play: torch.Tensor) -> torch.Tensor:
        with ctx.overhead():
            unknown = in_play[torch.isnan(self._known[in_play])]
            draws_left = max(0, ctx.budget.max_steps - ctx.step) * ctx.hparams.batch_size
            wanted = scoring_quota(len(in_play), draws_left, self.candidate_factor) - (len(in_play) - len(unknown))
            if wanted > 0:
                chosen = unknown[torch.randperm(len(unknown), generator=self._candidate_generator)[:wanted]]
                self._known[chosen] = self.difficulty.of(ctx, chosen)
            scored = ~torch.isnan(self._known[in_play])
            known, rest = in_play[scored], in_play[~scored]
            return torch.cat([known[easiest_first(self._known[known], self._tie_generator)],
                              rest[torch.randperm(len(rest), generator=self._candidate_generator)]])

    def on_eval(self, ctx: TrialContext, val_loss: float) -> None:
        if self.clock is not None:
            self.clock.observe(val_loss)

    def stats(self) -> dict[str, Any]:
        subset_share = self.steps_on_a_subset / max(self.steps_paced, 1)
        summary = (f"admitted {percent(self.first_admitted_fraction)} of the data at step {self.first_step}; "
                   f"{percent(subset_share)} of steps saw a strict subset")
        stats = {"activity": activity(self.steps_on_a_subset > 0, summary, subset_share),
                 "strategy": self.pacing.strategy, "admitted_fraction": self.admitted_fraction,
                 "steps_on_a_subset": self.steps_on_a_subset, **self.difficulty.stats()}
        if self.clock is not None:
            stats.update(pace_time=self.clock.time, pace_rate=self.clock.rate)
        return stats


DEFAULTS: dict[str, Any] = {
    "difficulty_metric": "perplexity",  # the seed's default; the control ignores it
    "strategy": "linear",               # the seed's default
    "start_fraction": None,             # None: 0.01 (Platanios et al.) or 0.04 for exponential (H&W)
    "full_at": 0.5,                     # fraction of the step budget from which all data is in play
    "root_power": 2.0,                  # p of the root strategy (2: square root)
    "exponential_growth": 1.9,          # Hacohen & Weinshall's increase factor per stair
    "dynamic": False,                   # pace by validation feedback (PaceClock)
    "dynamic_speedup": 1.5,             # clock speed-up per improving validation check
    "dynamic_max_rate": 4.0,            # at most this many times the static pace
    "dynamic_min_improvement": 1e-3,    # relative drop of the best validation loss that counts
    "reference_fraction": 0.1,          # reference model's training, as a fraction of the step budget
    "candidate_pool": 1,                # examples scored, x what the steps left draw (the baseline's own use); or "all"
    "score_batch_size": 256,            # examples per scoring pass
}


def _pacing_and_clock(config: Mapping[str, Any]) -> tuple[Pacing, PaceClock | None]:
    pacing = Pacing(config["strategy"], config["start_fraction"], config["full_at"], config["root_power"],
                    config["exponential_growth"])
    clock = (PaceClock(pacing.full_at, speedup=config["dynamic_speedup"], max_rate=config["dynamic_max_rate"],
                       min_improvement=config["dynamic_min_improvement"]) if config["dynamic"] else None)
    return pacing, clock


def _candidate_factor(config: Mapping[str, Any]) -> float | None:
    factor = config["candidate_pool"]
    if factor == "all":
        return None
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ValueError(f"candidate_pool must be 'all' or a number > 0 (x the examples the steps left will "
                         f"draw), got {factor!r}")
    return float(factor)


def _build(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    metric = config["difficulty_metric"]
    check_metric(metric)
    if metric in TOKEN_METRICS and workload.task != "sequence":
        raise ValueError(f"difficulty_metric={metric!r} needs a sequence workload; {workload.name!r} is "
                         f"{workload.task}")
    if not 0.0 < config["reference_fraction"] <= 1.0:
        raise ValueError(f"reference_fraction must be in (0, 1], got {config['reference_fraction']!r}")
    check_positive_int(config["score_batch_size"], "score_batch_size")
    factor = _candidate_factor(config)
    pacing, clock = _pacing_and_clock(config)
    if metric in MODEL_METRICS:
        difficulty: _Difficulty = _ReferenceModelDifficulty(metric, config["reference_fraction"],
                                                            config["score_batch_size"])
    else:  # token metrics cost no forward pass: rank everything in play
        difficulty, factor = _WholeSetDifficulty(metric), None
    return Plugin("curriculum", order=PacedOrder(pacing, difficulty, clock, factor))


def _build_random(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    _candidate_factor(config)  # the same settings are refused as for the technique
    pacing, clock = _pacing_and_clock(config)
    return Plugin("curriculum_random", order=PacedOrder(pacing, _WholeSetDifficulty(None), clock, None))


TECHNIQUES = (
    TechniqueSpec(
        name="curriculum",
        summary="paced easiest-first order over the examples in play, difficulty from a charged scoring pass",
        stages=("order",), build=_build, defaults=DEFAULTS, control="curriculum_random",
        # The seed's example: perplexity, linear pacing, every example scored (compute_difficulties).
        as_specified={"difficulty_metric": "perplexity", "strategy": "linear", "candidate_pool": "all"},
        grid=(
            {"strategy": "linear", "start_fraction": 0.01, "full_at": 0.5},  # Platanios et al.'s c0
            {"strategy": "root", "start_fraction": 0.01, "full_at": 0.5},    # their square-root competence
            {"strategy": "linear", "start_fraction": 0.2, "full_at": 0.2},   # mild: reached the target where
            {"strategy": "root", "start_fraction": 0.2, "full_at": 0.2},     # 0.01 / 0.5 missed
            {"strategy": "exponential", "start_fraction": 0.04, "full_at": 0.2},  # Hacohen & Weinshall's s, x1.9
            {"strategy": "linear", "start_fraction": 0.1, "full_at": 0.1},   # the whole set within a tenth
        ),
        grid_source="competence pacing (Platanios et al. 2019: c0 = 0.01, linear and square-root); fixed "
                    "exponential pacing (Hacohen & Weinshall 2019: s = 0.04, growth 1.9); short pacing with the "
                    "whole set early, where curricula helped under tight budgets (Wu, Dyer & Neyshabur 2021); "
                    "full_at 0.2 / start 0.2 reached the target on grammar-lm where 0.5 / 0.01 missed"),
    TechniqueSpec(
        name="curriculum_random",
        summary="control: the same pacing over a random difficulty order",
        stages=("order",), build=_build_random, defaults=DEFAULTS, is_control=True),
)
