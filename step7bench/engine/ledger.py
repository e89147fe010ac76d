"""The cost ledger: everything a trial spent, by kind, with units in the names.

Buckets are exclusive, so costs add up without double counting:

- training: the baseline's own work (forward, backward, optimizer, data gathering);
- overhead: what techniques add on top (scoring passes, predictors, cache look-ups,
  augmentation), timed by `TrialContext.overhead()`;
- evaluation: the validation checks for the target, untimed for cost (AlgoPerf), kept apart;
- pretraining: transfer learning's source-task training, kept apart so analysis can report
  speedups *finetune only* (as the seed counts them) and *all-in*.

The cost to target on the wall clock is `wall_train_s + wall_overhead_s` (+ `wall_pretrain_s`
all-in); `device_s` is that wall time times the number of devices that spent it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

EnergyBucket = Literal["train", "eval", "audit"]
_ENERGY_FIELDS: dict[str, str] = {"train": "energy_j", "eval": "energy_eval_j", "audit": "energy_audit_j"}


_KEPT_ON_MOVE = frozenset({"energy_method", "world_size", "peak_memory_bytes", "wall_eval_s", "energy_eval_j",
                           "wall_audit_s", "flops_audit", "energy_audit_j"})
"""Fields `move_to_pretraining` leaves where they are: labels and the buckets that are never cost
(the pretraining fields stay too: what was pretraining already remains so)."""


@dataclass
class Ledger:
    # Optimizer steps taken (micro-steps of gradient accumulation do not count).
    steps: int = 0
    # Training examples/tokens (non-padding targets) through the forward and the backward pass.
    examples_forward: int = 0
    examples_backward: int = 0
    tokens_forward: int = 0
    tokens_backward: int = 0
    # Forward passes a technique adds (difficulty scoring, pool scoring, loss prediction).
    examples_overhead: int = 0
    # FLOPs counted by torch's flop counter (matmuls/convolutions; see measure/flops.py).
    flops_forward: int = 0
    flops_backward: int = 0
    flops_overhead: int = 0
    # Wall seconds, device-synchronised at every bucket edge.
    wall_train_s: float = 0.0
    wall_overhead_s: float = 0.0
    wall_eval_s: float = 0.0
    # (wall_train_s + wall_overhead_s) x devices that ran the trial.
    device_s: float = 0.0
    # Energy of training + overhead, and of evaluation apart (audit energy: see below);
    # `energy_method` names the meter.
    energy_j: float = 0.0
    energy_eval_j: float = 0.0
    energy_method: str = ""
    peak_memory_bytes: int = 0
    # Transfer learning's pretraining, all of it, even when its weights came from a cache.
    steps_pretrain: int = 0
    examples_pretrain: int = 0
    flops_pretrain: int = 0
    wall_pretrain_s: float = 0.0
    device_pretrain_s: float = 0.0
    energy_pretrain_j: float = 0.0
    # Work done to *audit* a technique (e.g. checking cached gradients against fresh ones):
    # reported, never charged to the technique's cost.
    wall_audit_s: float = 0.0
    flops_audit: int = 0
    energy_audit_j: float = 0.0
    # Ranks that trained in data parallel; examples are counted once across ranks.
    world_size: int = 1
    _methods: list[str] = field(default_factory=list, repr=False)

    # -- charging -----------------------------------------------------------------------
    def charge_forward(self, examples: int, tokens: int, flops: int) -> None:
        self.examples_forward += examples
        self.tokens_forward += tokens
        self.flops_forward += flops

    def charge_backward(self, examples: int, tokens: int, flops: int) -> None:
        self.examples_backward += examples
        self.tokens_backward += tokens
        self.flops_backward += flops

    def charge_overhead(self, examples: int, flops: int) -> None:
        self.examples_overhead += examples
        self.flops_overhead += flops

    def charge_energy(self, energy_j: float, method: str, *, bucket: EnergyBucket = "train") -> None:
        """Book joules to training + overhead (`energy_j`), evaluation or audit; `method` names
        the meter that measured them."""
        if bucket not in _ENERGY_FIELDS:
            raise ValueError(f"bucket must be one of {sorted(_ENERGY_FIELDS)}, got {bucket!r}")
        field_name = _ENERGY_FIELDS[bucket]
        setattr(self, field_name, getattr(self, field_name) + energy_j)
        if method not in self._methods:
            self._methods.append(method)
            self.energy_method = "+".join(self._methods)

    def charge_pretraining(self, pretraining: Ledger) -> None:
        """Book a whole pretraining run (its training and overhead) under the pretrain heading."""
        self.steps_pretrain += pretraining.steps
        self.examples_pretrain += pretraining.examples_forward
        self.flops_pretrain += pretraining.flops_total
        self.wall_pretrain_s += pretraining.wall_s
        self.device_pretrain_s += pretraining.device_s
        self.energy_pretrain_j += pretraining.energy_j

    def move_to_pretraining(self) -> None:
        """Book everything charged so far as pretraining and start the trial's own count afresh
        (the warm-start positive control: the run up to here becomes its pretraining)."""
        spent = dataclasses.replace(self)
        for name in self.field_names():
            if name not in _KEPT_ON_MOVE and not name.endswith(("_pretrain", "_pretrain_s", "_pretrain_j")):
                setattr(self, name, 0 if isinstance(getattr(self, name), int) else 0.0)
        self.charge_pretraining(spent)

    # -- derived totals -------------------------------------------------------------------
    @property
    def wall_s(self) -> float:
        """Wall seconds that count as cost: training plus technique overhead."""
        return self.wall_train_s + self.wall_overhead_s

    @property
    def flops_total(self) -> int:
        return self.flops_forward + self.flops_backward + self.flops_overhead

    def snapshot(self) -> dict[str, Any]:
        """Every field and the derived totals, as plain JSON-ready values."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        values.update(wall_s=self.wall_s, flops_total=self.flops_total)
        return values

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Ledger:
        """The ledger `snapshot` was taken of (its derived totals are recomputed, not read)."""
        return cls(**{name: snapshot[name] for name in cls.field_names()})
