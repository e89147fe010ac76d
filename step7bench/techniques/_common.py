"""What the techniques share: the device they run on, the CUDA devices whose RNG a nested
training run must leave alone, the check of a count argument, a criterion applied to
classification or sequence logits, and how a share is written."""

from __future__ import annotations

from collections.abc import Callable

import torch

from step7bench.engine.loop import resolve_device
from step7bench.errors import UserError

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def user_device(device: str | torch.device) -> torch.device:
    """The engine's device resolution ('auto', 'cpu', 'cuda[:i]'; CUDA must be present), with a
    ValueError naming `device`, as a Python API argument error should."""
    try:
        return resolve_device(device)
    except UserError as error:
        raise ValueError(f"device: {error}") from None


def cuda_indices(device: torch.device) -> list[int]:
    """The CUDA devices `torch.random.fork_rng` must fork around a nested training run on `device`."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def check_positive_int(value: object, name: str) -> None:
    """ValueError naming `name` unless `value` is an int >= 1 (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def flat_criterion(criterion: Criterion, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """`criterion` on (B, C) logits as given and on (B, T, V) logits flattened to one row per
    prediction, (B*T, V) against (B*T,) targets; so `nn.CrossEntropyLoss()` averages over every
    predicted token and skips its `ignore_index`."""
    return criterion(logits.flatten(0, -2), targets.flatten()) if logits.dim() == 3 else criterion(logits, targets)


def percent(share: float) -> str:
    """`share` (a fraction in [0, 1]) as a percentage for an activity summary: whole percents,
    one decimal under 10%, never "0%" for a share above zero and never "100%" for one below
    one (a mechanism that fired once in a thousand steps must not read as one that never did)."""
    if share <= 0.0:
        return "0%"
    if share < 0.001:
        return "<0.1%"
    if share < 0.1:
        return f"{share:.1%}"
    return f"{share:.0%}" if share >= 1.0 or share < 0.995 else ">99%"
