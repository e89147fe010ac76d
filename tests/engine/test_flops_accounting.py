"""The ledger's FLOPs are counted, and the count agrees with the analytic figure for a GPT."""

from __future__ import annotations

import torch
from torch import nn

from step7bench.measure.flops import FlopCounter
from step7bench.workloads.base import mean_loss
from step7bench.workloads.models import TinyGPT


def _linear_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def test_gpt_training_flops_equal_the_analytic_count_and_approach_6nd():
    vocab, width, layers, heads, length, batch = 50, 64, 2, 4, 16, 8
    torch.manual_seed(0)
    model = TinyGPT(vocab, width, layers, heads, length)
    tokens = torch.randint(0, vocab, (batch, length))
    flops = FlopCounter(model, mean_loss).per_example(tokens, tokens)

    positions = batch * length
    matmul_params = _linear_params(model)  # every Linear, the tied output head included once
    attention = 4 * layers * length * width * positions  # QK^T and AV at full T x T, 2 FLOPs per multiply-add
    forward = batch * flops.forward
    assert forward == 2 * matmul_params * positions + attention
    # Backward: gradients w.r.t. inputs and weights of every linear layer (twice its forward),
    # and the flash attention kernel's backward, which recomputes QK^T (2.5 times its forward).
    assert batch * flops.backward == 2 * (2 * matmul_params * positions) + 2.5 * attention
    six_nd = 6 * matmul_params * positions
    assert 1.0 <= (forward + batch * flops.backward) / six_nd < 1.2


def test_counting_leaves_the_model_and_random_streams_untouched():
    torch.manual_seed(0)
    model = TinyGPT(20, 32, 1, 2, 8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tokens = torch.randint(0, 20, (4, 8))
    state = torch.get_rng_state()
    FlopCounter(model, mean_loss).per_example(tokens, tokens)
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_flops_scale_exactly_with_batch_size():
    torch.manual_seed(0)
    model = TinyGPT(20, 32, 1, 2, 8)
    counter = FlopCounter(model, mean_loss)
    tokens = torch.randint(0, 20, (6, 8))
    from step7bench.measure.flops import count_flops

    with torch.no_grad():
        measured = count_flops(lambda: model(tokens))
    assert measured == 6 * counter.per_example(tokens, tokens).forward
