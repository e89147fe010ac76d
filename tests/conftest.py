"""Shared fixtures. Tests run on the CPU with two threads, whatever the machine has."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def digits_micro():
    from step7bench.workloads.digits import Digits

    return Digits("micro")
