"""When to check the validation loss, and when the target counts as reached.

Time to target is read where the validation loss first reaches the target, so its resolution
is the spacing of the checks around that point. Checks are untimed (AlgoPerf), but not free: a
grammar-lm small check costs about four training steps of wall time. So checks are *adaptive*:

- every `CheckRule.every` steps (the coarse schedule; technique feedback such as dynamic LR's
  plateau rule and dynamic pacing sees only these, so denser measuring never changes how a
  technique behaves);
- closer near the target: once the loss is within `fine_band` (relative) of the target, every
  `fine_every` steps; further out, at half the steps the last two checks' slope says are left
  (never closer than `fine_every`, never further than `every`).

A target reached at one check can be a lucky dip: a noisy validation loss touches the target
and rises again. The target counts as reached only when the loss stays at or below it for
`confirm_steps` steps (every check in that span); the time to target is the first check of that
span, and the cost is the ledger there. The steps trained to confirm it are not charged. What the
resolution was (the steps between the crossing check and the check before it) is reported with
every reached trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from step7bench.workloads.base import Hyperparameters


@dataclass(frozen=True)
class CheckRule:
    """How a trial checks its validation loss against the target (units: optimizer steps);
    `every` = 0 never checks (a technique's helper model trained through the engine)."""

    every: int
    fine_every: int
    fine_band: float = 0.0
    confirm_steps: int = 0

    def __post_init__(self) -> None:
        if self.every < 0 or not 1 <= self.fine_every <= max(self.every, 1):
            raise ValueError(f"check spacing must satisfy 1 <= fine_every <= every, got every={self.every}, "
                             f"fine_every={self.fine_every}")
        if self.fine_band < 0 or self.confirm_steps < 0:
            raise ValueError("fine_band and confirm_steps must be >= 0")

    @classmethod
    def of(cls, hparams: Hyperparameters) -> CheckRule:
        if hparams.eval_every == 0:
            return cls(0, 1)
        return cls(hparams.eval_every, hparams.eval_every_fine or hparams.eval_every, hparams.eval_fine_band,
                   hparams.confirm_steps)


@dataclass(frozen=True)
class Crossing:
    """A confirmed target: the step of the first check of the span below the target, and the
    steps between that check and the one before it (the resolution of the crossing)."""

    step: int
    resolution_steps: int


class TargetWatch:
    """Follows one trial's checks: says when to check next and when the target is reached."""

    def __init__(self, rule: CheckRule, target: float) -> None:
        self.rule, self.target = rule, target
        dense_from_start = rule.fine_band == math.inf and math.isfinite(target)
        self.next_step = rule.fine_every if dense_from_start else rule.every
        self._last: tuple[int, float] | None = None  # (step, loss) of the previous check
        self._run: Crossing | None = None  # the first check of the current span at or below target

    @property
    def confirming(self) -> bool:
        """Whether the loss is at or below the target and the span is not yet long enough."""
        return self._run is not None

    def due(self, step: int) -> bool:
        """Whether to check at `step`: the coarse schedule, or the adaptive one."""
        return self.rule.every > 0 and (self.feedback_due(step) or step >= self.next_step)

    def feedback_due(self, step: int) -> bool:
        """Whether `step` is on the coarse schedule, the only checks techniques are told of."""
        return self.rule.every > 0 and step % self.rule.every == 0

    def record(self, step: int, val_loss: float) -> Crossing | None:
        """Take a check's loss; the crossing once it is confirmed, else None (and `next_step` set)."""
        previous, self._last = self._last, (step, val_loss)
        if val_loss <= self.target:
            if self._run is None:
                self._run = Crossing(step, step - previous[0] if previous else step)
            if step - self._run.step >= self.rule.confirm_steps:
                return self._run
            self.next_step = step + min(self.rule.fine_every, self._run.step + self.rule.confirm_steps - step)
            return None
        self._run = None
        self.next_step = step + self._spacing(previous, step, val_loss)
        return None

    def _spacing(self, previous: tuple[int, float] | None, step: int, val_loss: float) -> int:
        rule = self.rule
        if not math.isfinite(self.target):  # no target to near (transfer's pretraining trains to -inf)
            return rule.every
        gap = (val_loss - self.target) / abs(self.target) if self.target else math.inf
        if gap <= rule.fine_band:
            return rule.fine_every
        if previous is None or previous[1] <= val_loss:
            return rule.every
        slope = (previous[1] - val_loss) / (step - previous[0])
        steps_left = (val_loss - self.target) / slope
        return int(min(rule.every, max(rule.fine_every, steps_left // 2)))
