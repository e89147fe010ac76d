"""Seeds from (seed, purpose): streams differ by purpose and repeat by seed, on any device."""

from __future__ import annotations

import torch

from step7bench.seeding import derive_seed, torch_generator


def test_purposes_never_share_a_stream_and_a_seed_repeats_its_own():
    assert derive_seed(0, "data-order") != derive_seed(0, "augmentation")
    assert 0 <= derive_seed(7, "x") < 2**63
    first = torch.rand(4, generator=torch_generator(3, "augmentation"))
    again = torch.rand(4, generator=torch_generator(3, "augmentation"))
    other = torch.rand(4, generator=torch_generator(3, "data-order"))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_a_generator_lives_on_the_device_asked_for():
    assert torch_generator(0, "x").device == torch.device("cpu")
    generator = torch_generator(0, "x", "cpu")
    assert torch.equal(torch.rand(3, generator=generator), torch.rand(3, generator=torch_generator(0, "x")))
    if torch.cuda.is_available():
        assert torch_generator(0, "x", "cuda").device.type == "cuda"
