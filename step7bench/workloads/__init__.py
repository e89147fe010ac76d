"""Workloads: each owns data, model, loss, evaluation, target and budget (see base.py)."""

from __future__ import annotations

from step7bench.errors import unknown_name
from step7bench.workloads.base import (IGNORE_INDEX, PRESET_NAMES, Batch, Budget, ExampleDataset,
                                       Hyperparameters, Preset, Workload)


def builtin_workloads() -> dict[str, type[Workload]]:
    """The workloads step7bench ships, by name (the harness's registry adds plugins' own)."""
    # Imported here so that importing the package does not build any corpus.
    from step7bench.workloads.code_lm import CodeLM
    from step7bench.workloads.digits import Digits
    from step7bench.workloads.grammar_lm import GrammarLM

    return {cls.name: cls for cls in (GrammarLM, CodeLM, Digits)}


def workload_names() -> list[str]:
    return sorted(builtin_workloads())


def get_workload(name: str, preset: str = "small", data_seed: int = 0) -> Workload:
    """The built-in workload `name` at `preset`; a UserError names the choices if either is unknown."""
    registry = builtin_workloads()
    if name not in registry:
        raise unknown_name("workload", name, registry)
    return registry[name](preset=preset, data_seed=data_seed)


__all__ = ["IGNORE_INDEX", "PRESET_NAMES", "Batch", "Budget", "ExampleDataset", "Hyperparameters",
           "Preset", "Workload", "builtin_workloads", "get_workload", "workload_names"]
