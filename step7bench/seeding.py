"""Every random source is seeded from (seed, purpose), so one seed gives one run.

Two purposes never share a stream: adding a random draw for one technique does not
shift the data order of the baseline.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed determined by `seed` and `purpose` alone."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def numpy_rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, purpose))


def torch_generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator seeded from (seed, purpose); on `device`, so draws that feed tensors on
    a GPU happen there without a copy."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, purpose))
    return generator
