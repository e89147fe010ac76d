"""Workloads: each owns data, model, loss, evaluation, target and budget (see base.py)."""

from __future__ import annotations

from step7bench.errors import UserError
from step7bench.workloads.base import (IGNORE_INDEX, PRESET_NAMES, Batch, Budget, ExampleDataset,
                                       Hyperparameters, Preset, Workload)

def _registry() -> dict[str, type[Workload]]:
    # Imported here so that importing the package does not build any corpus.
    from step7bench.workloads.code_lm import CodeLM
    from step7bench.workloads.digits import Digits
    from step7bench.workloads.grammar_lm import GrammarLM

    return {cls.name: cls for cls in (GrammarLM, CodeLM, Digits)}


def workload_names() -> list[str]:
    return sorted(_registry())


def get_workload(name: str, preset: str = "small", data_seed: int = 0) -> Workload:
    """The workload `name` at `preset`; a UserError names the choices if either is unknown."""
    registry = _registry()
    if name not in registry:
        raise UserError(f"unknown workload {name!r} (choose from {', '.join(sorted(registry))})")
    return registry[name](preset=preset, data_seed=data_seed)


__all__ = ["IGNORE_INDEX", "PRESET_NAMES", "Batch", "Budget", "ExampleDataset", "Hyperparameters",
           "Preset", "Workload", "get_workload", "workload_names"]
