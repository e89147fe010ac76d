"""FLOP counting: torch's counter once per example shape, without touching the model or RNG."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from step7bench.measure.flops import FlopCounter, count_flops

LINEAR_FLOPS_PER_EXAMPLE = 2 * 8 * 4  # one (1 x 8) @ (8 x 4) matmul


def test_matmul_counts_two_m_k_n():
    a, b = torch.ones(3, 5), torch.ones(5, 7)
    assert count_flops(lambda: a @ b) == 2 * 3 * 5 * 7


def linear_counter() -> tuple[nn.Linear, FlopCounter]:
    model = nn.Linear(8, 4)
    return model, FlopCounter(model, F.cross_entropy)


def test_linear_forward_and_backward_per_example():
    _, counter = linear_counter()
    flops = counter.per_example(torch.ones(16, 8), torch.zeros(16, dtype=torch.long))
    assert flops.forward == LINEAR_FLOPS_PER_EXAMPLE
    # Inputs need no gradient: backward computes the weight gradient only, one more matmul.
    assert flops.backward == LINEAR_FLOPS_PER_EXAMPLE


def test_counting_is_cached_per_example_shape_and_leaves_model_and_rng_alone():
    model, counter = linear_counter()
    weights = model.weight.detach().clone()
    rng_before = torch.random.get_rng_state()
    first = counter.per_example(torch.ones(16, 8), torch.zeros(16, dtype=torch.long))
    assert counter.per_example(torch.zeros(3, 8), torch.ones(3, dtype=torch.long)) is first  # batch size aside
    assert model.weight.grad is None
    assert torch.equal(model.weight, weights)
    assert torch.equal(torch.random.get_rng_state(), rng_before)
