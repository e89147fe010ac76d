"""Shared fixtures. Tests run on the CPU with two threads, whatever the machine has."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture
def digits_micro():
    from step7bench.workloads.digits import Digits

    return Digits("micro")


@pytest.fixture(scope="session")
def grammar_micro():
    """grammar-lm at micro size, built once: its data is read-only to every test."""
    from step7bench.workloads.grammar_lm import GrammarLM

    return GrammarLM("micro")
