"""Scoring every example of a user's dataset with a model: the shared part of the seed API's
curriculum scheduler and active-learning selector.

A user's dataset is any map-style torch dataset whose items are `inputs`, `(inputs,)` or
`(inputs, targets)`; the model maps a batch of inputs to `(B, C)` or `(B, T, V)` logits. The
pass is batched, runs in `torch.inference_mode` with the model in eval mode (its mode is
restored afterwards), and never shuffles, so score `i` belongs to example `i`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from step7bench.techniques._common import check_positive_int

ExampleScorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
"""(logits, inputs, targets or None) -> one score per example, shape (B,)."""


def split_item_batch(batch: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs, targets or None) from a collated batch of `inputs`, `(inputs,)` or
    `(inputs, targets)` items."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, (list, tuple)) and len(batch) in (1, 2):
        return batch[0], (batch[1] if len(batch) == 2 else None)
    raise ValueError("dataset items must be inputs, (inputs,) or (inputs, targets) tensors")


def iter_batches(dataset: Dataset, batch_size: int,
                 device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """The dataset in order, `batch_size` examples at a time, on `device`."""
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        inputs, targets = split_item_batch(batch)
        yield inputs.to(device), (targets.to(device) if targets is not None else None)


def score_dataset(model: nn.Module, dataset: Dataset, scorer: ExampleScorer, *, batch_size: int,
                  device: torch.device) -> torch.Tensor:
    """`scorer` applied to the model's logits on every example, shape (N,), float32 on the CPU."""
    check_positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.inference_mode():
            for inputs, targets in iter_batches(dataset, batch_size, device):
                scores.append(scorer(model(inputs), inputs, targets).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(scores) if scores else torch.empty(0)
