"""What a workload is: data, model, loss, evaluation, validation target and budget.

A workload owns everything that defines "the same validation quality" (AlgoPerf's rule), so
every arm of a comparison trains on the same data toward the same target within the same
budget. The data of a workload is fixed by its preset and `data_seed`; a trial's seed changes
the model's initialisation, the data order and the techniques' random draws, never the data.

Datasets are map-style: item ``i`` is ``(inputs, targets)`` and ``i`` is the example's id,
stable for the life of the dataset, so techniques can track difficulty and selection per
example. The engine does not go through a DataLoader: it gathers batches of ids straight
from the tensors (``ExampleDataset.gather``), which keeps the training loop overhead-free.
"""

from __future__ import annotations

import contextlib
import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from step7bench.errors import UserError

TaskKind = Literal["classification", "sequence"]

IGNORE_INDEX = -100
"""Target value of padding positions; the default `ignore_index` of `nn.CrossEntropyLoss`."""

PRESET_NAMES = ("micro", "small", "large")


@dataclass(frozen=True)
class Budget:
    """The baseline's budget, and where a trial stops if it has not reached its target.

    `max_steps` is the horizon every schedule and pacing plans for (the baseline's cosine decays
    to zero there); `max_seconds` counts training and technique-overhead wall time, never
    evaluation. A trial stops at `headroom` times both (`stop_steps`, `stop_seconds`), as AlgoPerf
    gives submissions about a third more runtime than its target-setting runs: an arm slowed by
    its technique's overhead still reaches the target within a seconds budget, and a crossing near
    the step budget can be confirmed. Past `max_steps` the schedules have decayed to zero, so an arm
    still above the target there does not reach it later: it is a miss, censored at what it spent,
    a bound, not a zero.
    """

    max_steps: int
    max_seconds: float
    headroom: float = 1.0

    @property
    def stop_steps(self) -> int:
        return math.ceil(self.max_steps * self.headroom)

    @property
    def stop_seconds(self) -> float:
        return self.max_seconds * self.headroom


@dataclass(frozen=True)
class Hyperparameters:
    """The baseline's optimizer and loop settings: AdamW, linear warm-up, cosine decayed to
    zero at `Budget.max_steps` (a fully decayed schedule; No Train No Gain, Kaddour et al. 2023).
    """

    lr: float
    batch_size: int
    warmup_steps: int
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip_norm: float | None = 1.0
    # Validation checks (off the cost clock; step7bench/engine/target.py says how they are placed).
    eval_every: int = 25  # coarse spacing in optimizer steps; technique feedback happens only here
    eval_every_fine: int = 0  # spacing near the target (0: no finer than eval_every)
    eval_fine_band: float = 0.0  # relative gap to the target under which checks are fine (inf: always)
    confirm_steps: int = 0  # the loss must stay at or below the target this many steps to count


@dataclass(frozen=True)
class Preset:
    """One size of a workload. `tuning` records the learning-rate grid tried and what won."""

    name: str
    budget: Budget
    hparams: Hyperparameters
    target_val_loss: float  # default target; `step7bench calibrate` writes measured ones
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    tuning: str = ""


@dataclass
class Batch:
    """A batch with the ids of its examples. `inputs`/`targets` share the first dimension."""

    ids: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        """The batch on `device`, its token count taken where it is now: read on a GPU, that count
        would make the host wait for the device every step."""
        moved = Batch(self.ids, self.inputs.to(device, non_blocking=True), self.targets.to(device, non_blocking=True))
        moved.__dict__["tokens"] = self.tokens
        return moved

    def subset(self, index: torch.Tensor) -> Batch:
        """The examples at `index` (positions or a boolean mask), in that order."""
        return Batch(self.ids[index.to(self.ids.device)], self.inputs[index], self.targets[index])

    @functools.cached_property
    def tokens(self) -> int:
        """Predicted positions: tokens that are not padding (sequences) or examples."""
        if self.targets.dim() == 1:
            return len(self)
        return int((self.targets != IGNORE_INDEX).sum())


class ExampleDataset(torch.utils.data.Dataset):
    """Examples held as two tensors; item i is `(inputs[i], targets[i])` and i is its id."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets differ in length: {inputs.shape[0]} != {targets.shape[0]}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def gather(self, ids: torch.Tensor) -> Batch:
        ids = torch.as_tensor(ids, dtype=torch.long)
        return Batch(ids, self.inputs[ids], self.targets[ids])

    def all_ids(self) -> torch.Tensor:
        return torch.arange(len(self))

    def token_counts(self) -> torch.Tensor:
        """Predicted tokens per example (1 for classification), shape (N,)."""
        if self.targets.dim() == 1:
            return torch.ones(len(self), dtype=torch.long)
        return (self.targets != IGNORE_INDEX).sum(dim=1)


def cross_entropy_terms(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of a batch as per-example terms: the summed cross-entropy (nats) over each
    example's predicted positions, and how many positions that is (1 for classification; the
    non-padding tokens of a sequence). Both shape (B,). Every loss of a workload (training,
    evaluation, per-example scoring) is made from these, so the three cannot disagree."""
    if logits.dim() == 2:
        losses = F.cross_entropy(logits, targets, reduction="none")
        return losses, torch.ones_like(losses)
    token_loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none",
                                 ignore_index=IGNORE_INDEX).view(targets.shape)
    return token_loss.sum(dim=1), (targets != IGNORE_INDEX).sum(dim=1).to(token_loss.dtype)


def per_example_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per example, shape (B,): the mean over an example's non-padding tokens
    for sequences (length-normalised), the plain loss for classification."""
    sums, counts = cross_entropy_terms(logits, targets)
    return sums / counts.clamp(min=1)


def mean_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training loss: cross-entropy averaged over every predicted token of the batch."""
    sums, counts = cross_entropy_terms(logits, targets)
    return sums.sum() / counts.sum().clamp(min=1)


def mixed_precision(device: torch.device | str) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on a CUDA device (matmuls and attention in bf16, reductions and the loss in
    fp32, as torch's autocast lists decide), plain fp32 on the CPU: the precision every forward
    pass of a trial runs at, training, scoring and evaluation alike."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _trim_padding(batch: Batch) -> Batch:
    """Drop the trailing columns where every example is padding. The language models are
    causal, so the kept positions' logits do not depend on the dropped ones; evaluation of
    short sentences in long padded rows gets several times cheaper."""
    if batch.targets.dim() < 2:
        return batch
    scored = (batch.targets != IGNORE_INDEX).any(dim=0).nonzero()
    length = int(scored.max()) + 1 if len(scored) else 1
    return Batch(batch.ids, batch.inputs[:, :length], batch.targets[:, :length])


class Workload(ABC):
    """Data + model + loss + evaluation + target + budget, at one size preset.

    Subclasses set `name`, `task`, `presets` and implement `_build_data` and `build_model`.
    The validation metric is the loss of `loss_terms` on `val`, per predicted position
    (cross-entropy in nats/token by default); lower is better and the target is reached when
    `evaluate(...) <= target_val_loss`.
    """

    name: ClassVar[str]
    task: ClassVar[TaskKind]
    presets: ClassVar[dict[str, Preset]]
    description: ClassVar[str] = ""

    def __init__(self, preset: str = "small", data_seed: int = 0) -> None:
        if preset not in self.presets:
            raise UserError(f"workload {self.name!r} has no preset {preset!r} "
                            f"(choose from {', '.join(self.presets)})")
        self.preset: Preset = self.presets[preset]
        self.data_seed = data_seed

    # -- data ---------------------------------------------------------------------------
    @functools.cached_property
    def _data(self) -> dict[str, ExampleDataset | None]:
        return self._build_data()

    @abstractmethod
    def _build_data(self) -> dict[str, ExampleDataset | None]:
        """Return {'train', 'val', 'source_train', 'source_val'}; the source keys hold the
        related data used to pretrain for transfer learning (None if the workload has none)."""

    @property
    def train(self) -> ExampleDataset:
        return self._data["train"]

    @property
    def val(self) -> ExampleDataset:
        return self._data["val"]

    @property
    def source_train(self) -> ExampleDataset | None:
        return self._data.get("source_train")

    @property
    def source_val(self) -> ExampleDataset | None:
        return self._data.get("source_val")

    # -- model and loss -----------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model, initialised from torch's current RNG (the engine seeds it)."""

    @property
    def num_classes(self) -> int:
        """Classes (classification) or vocabulary size (sequence): the logits' last dimension."""
        raise NotImplementedError

    def loss_terms(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per example, the summed loss over its predicted positions and their count, both (B,).
        The one definition of the workload's loss: override it (and only it) for another loss;
        `loss`, `per_example_loss` and `evaluate` derive from it. Default: cross-entropy."""
        return cross_entropy_terms(logits, targets)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch: its summed loss over its predicted positions, per position
        (in fp32 whatever precision the logits came in: a no-op on the CPU)."""
        sums, counts = self.loss_terms(logits.float(), targets)
        return sums.sum() / counts.sum().clamp(min=1)

    def per_example_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Each example's loss per predicted position, (B,): what scoring techniques rank by."""
        sums, counts = self.loss_terms(logits.float(), targets)
        return sums / counts.clamp(min=1)

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, device: torch.device | str,
                 dataset: ExampleDataset | None = None, batch_size: int = 256) -> float:
        """The loss of `model` on `dataset` (default: val), weighted by predicted position (nats
        per token for the language models), from `loss_terms` as training's."""
        dataset = self.val if dataset is None else dataset
        was_training = model.training
        model.eval()
        total_loss = torch.zeros((), dtype=torch.float64, device=device)
        total_count = torch.zeros((), dtype=torch.float64, device=device)
        # Shortest examples first, so each batch can drop most of its padding columns.
        by_length = dataset.token_counts().argsort(stable=True)
        for start in range(0, len(dataset), batch_size):
            batch = _trim_padding(dataset.gather(by_length[start:start + batch_size])).to(device)
            with mixed_precision(device):
                logits = model(batch.inputs)
            sums, counts = self.loss_terms(logits.float(), batch.targets)
            total_loss += sums.double().sum()
            total_count += counts.double().sum()
        model.train(was_training)
        return float(total_loss / total_count.clamp(min=1))

    # -- what defines "the same quality" ----------------------------------------------------
    @property
    def target_val_loss(self) -> float:
        return self.preset.target_val_loss

    @property
    def budget(self) -> Budget:
        return self.preset.budget

    @property
    def hparams(self) -> Hyperparameters:
        return self.preset.hparams

    # -- optional knowledge some techniques use ------------------------------------------------
    @property
    def loss_floor(self) -> float | None:
        """The lowest validation loss any model can reach (nats/token), where it is known."""
        return None

    @property
    def vocab(self) -> dict[str, int] | None:
        """Token string -> id, for sequence workloads."""
        return None

    @property
    def synonym_classes(self) -> list[list[int]] | None:
        """Groups of token ids that may replace one another, where they are known."""
        return None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this workload's data and model, for provenance."""
        return {"workload": self.name, "preset": self.preset.name, "data_seed": self.data_seed,
                "train_examples": len(self.train), "val_examples": len(self.val)}
