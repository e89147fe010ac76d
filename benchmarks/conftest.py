"""Benchmarks run apart from the tests: `make benchmark` (pytest-benchmark). Each sets the torch
threads it measures at; ratios are taken within one run."""
