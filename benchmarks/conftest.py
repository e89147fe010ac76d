"""Benchmarks run apart from the tests: `make benchmark` (pytest-benchmark)."""

import torch

torch.set_num_threads(max(1, torch.get_num_threads()))
