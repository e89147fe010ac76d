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


def test_counters_of_one_architecture_share_their_counts(monkeypatch):
    monkeypatch.setattr("step7bench.measure.flops._SHARED_COUNTS", {})
    counted = []
    count = FlopCounter._count
    monkeypatch.setattr(FlopCounter, "_count", lambda self, *args: counted.append(1) or count(self, *args))
    loss = torch.nn.functional.cross_entropy
    inputs, targets = torch.ones(4, 8), torch.zeros(4, dtype=torch.long)
    first = FlopCounter(torch.nn.Linear(8, 3), loss).per_example(inputs, targets)
    again = FlopCounter(torch.nn.Linear(8, 3), loss).per_example(inputs, targets)
    other = FlopCounter(torch.nn.Linear(8, 5), loss).per_example(inputs, targets)
    assert again == first and other.forward == first.forward * 5 // 3
    assert len(counted) == 2  # the second Linear(8, 3) reused the first one's count
