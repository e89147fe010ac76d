"""FLOPs counted by torch's own counter, once per distinct example shape.

`torch.utils.flop_counter.FlopCounterMode` counts matmuls and convolutions at 2*M*K*N, and
nothing for elementwise ops, norms, softmax or the optimizer; it counts no-grad forwards
too, so scoring passes can be charged. It counts `scaled_dot_product_attention` on CUDA (the
flash, memory-efficient and cuDNN kernels) but not on the CPU, whose flash kernel it has no
formula for: this module registers torch's own SDPA formula for that kernel too (its two
matmuls, QK^T and AV, at their full T x T size, causal or not, as the CUDA kernels are
counted), so an attention costs the same FLOPs on every device. Counting runs on a deep copy of the model under a
forked RNG, so it neither touches the real model's gradients nor shifts any random stream:
a trial's numbers stay bit-identical whether or not a shape was counted before.

Counts are shared by every counter in the process for the same architecture (the model's
module tree, `repr(model)`), example shape and loss: a suite's hundred trials of one workload
count once, not a hundred times (a count costs about as much as a few training steps).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import (FlopCounterMode, register_flop_formula, sdpa_backward_flop_count,
                                      sdpa_flop_count)

_CPU_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_CPU_FLASH_BACKWARD = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


@register_flop_formula(_CPU_FLASH, get_raw=True)
def _cpu_flash_flops(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query.shape, key.shape, value.shape)


@register_flop_formula(_CPU_FLASH_BACKWARD, get_raw=True)
def _cpu_flash_backward_flops(grad_out, query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one forward and of one backward pass."""

    forward: int
    backward: int


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs torch's counter sees while `fn` runs."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


_SHARED_COUNTS: dict[tuple[str, str, tuple[int, ...], torch.dtype, bool], StepFlops] = {}


class FlopCounter:
    """Per-example forward and backward FLOPs of a model, cached per example shape.

    Every op the counter sees (matmul, convolution) has the batch as an outer dimension, so
    FLOPs are exactly linear in the batch size: one example of each shape is counted and the
    caller multiplies. Batches that a technique shrinks (gating, selection) then cost no new
    count. `loss_fn(logits, targets)` must return a scalar; the backward figure is
    (forward + backward) minus forward, counted on the same copy.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        self._model = model
        self._loss_fn = loss_fn
        self._architecture = repr(model)
        self._loss_name = getattr(loss_fn, "__qualname__", repr(loss_fn))

    def per_example(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepFlops:
        """FLOPs of one example shaped like `inputs[0]`."""
        key = (self._architecture, self._loss_name, tuple(inputs.shape[1:]), inputs.dtype, self._model.training)
        if key not in _SHARED_COUNTS:
            _SHARED_COUNTS[key] = self._count(inputs[:1], targets[:1])
        return _SHARED_COUNTS[key]

    def _count(self, inputs: torch.Tensor, targets: torch.Tensor) -> StepFlops:
        devices = [inputs.device] if inputs.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            replica = copy.deepcopy(self._model)
            replica.train(self._model.training)
            with torch.no_grad():
                forward = count_flops(lambda: replica(inputs))
            total = count_flops(lambda: self._loss_fn(replica(inputs), targets).backward())
        return StepFlops(forward=forward, backward=max(total - forward, 0))
