"""A grammar-lm small training step before and after the step's optimisations, in one run:
explicit attention (matmul, mask, softmax, matmul) with the per-tensor AdamW loop, against
`scaled_dot_product_attention` with the fused AdamW the engine now uses. One CPU thread, the
same model, batch and seed; the best of interleaved rounds. Goal: >= 1.5x."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from step7bench.engine import build_optimizer
from step7bench.workloads import get_workload
from step7bench.workloads.models import CausalSelfAttention

STEPS, ROUNDS = 60, 5


class ExplicitAttention(CausalSelfAttention):
    """The attention as it was written before: two matmuls, an additive causal mask, a softmax."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head_dim = width // self.n_heads
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, head_dim).permute(2, 0, 3, 1, 4)
        mask = torch.full((length, length), float("-inf")).triu(1)
        weights = torch.softmax((q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(head_dim)) + mask, dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(batch, length, width))


def _setup(before: bool):
    workload = get_workload("grammar-lm", "small")
    torch.manual_seed(0)
    model = workload.build_model()
    if before:
        for block in model.blocks:
            explicit = ExplicitAttention.__new__(ExplicitAttention)
            nn.Module.__init__(explicit)
            explicit.n_heads, explicit.qkv, explicit.proj = block.attn.n_heads, block.attn.qkv, block.attn.proj
            block.attn = explicit
    hp = workload.hparams
    optimizer = (torch.optim.AdamW(model.parameters(), lr=hp.lr, betas=hp.betas, foreach=False) if before
                 else build_optimizer(model, hp))
    torch.manual_seed(1)
    batch = workload.train.gather(torch.randint(len(workload.train), (hp.batch_size,)))
    return workload, model, optimizer, batch


def _seconds_per_step(workload, model, optimizer, batch) -> float:
    start = time.perf_counter()
    for _ in range(STEPS):
        workload.loss(model(batch.inputs), batch.targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / STEPS


def test_a_training_step_before_and_after(benchmark):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        before, after = _setup(True), _setup(False)
        _seconds_per_step(*before), _seconds_per_step(*after)  # warm-up
        timings = {"before": [], "after": []}
        for _ in range(ROUNDS):
            timings["before"].append(_seconds_per_step(*before))
            timings["after"].append(_seconds_per_step(*after))
        ratio = min(timings["before"]) / min(timings["after"])
        benchmark.extra_info.update(before_ms=1e3 * min(timings["before"]), after_ms=1e3 * min(timings["after"]),
                                    speedup=ratio)
        print(f"\ngrammar-lm small step: before {1e3 * min(timings['before']):.2f} ms, after "
              f"{1e3 * min(timings['after']):.2f} ms, {ratio:.2f}x (goal >= 1.5x)")
        benchmark.pedantic(_seconds_per_step, args=after, rounds=1, iterations=1)
    finally:
        torch.set_num_threads(threads)
