"""The eight techniques of the seed document: each module keeps the seed's API for use in a
user's own loop, and declares a `TechniqueSpec` whose plugin fills the engine's stages.

Techniques never own the loop.
"""

from __future__ import annotations

from step7bench.errors import UserError
from step7bench.techniques.registry import TechniqueSpec


def _specs() -> list[TechniqueSpec]:
    # Each technique module lists its specs (the technique and, where it has one, its random
    # control) in a module-level SPECS tuple. Modules join here as they land.
    import importlib

    specs: list[TechniqueSpec] = []
    for module in _MODULES:
        specs.extend(importlib.import_module(f"step7bench.techniques.{module}").SPECS)
    return specs


_MODULES: tuple[str, ...] = ("data_augmentation", "transfer_learning", "dynamic_lr_scheduler", "curriculum_learning",
                             "active_learning", "difficulty_prediction", "gradient_caching", "distributed_optimizations")


def technique_specs() -> dict[str, TechniqueSpec]:
    return {spec.name: spec for spec in _specs()}


def get_technique(name: str) -> TechniqueSpec:
    specs = technique_specs()
    if name not in specs:
        raise UserError(f"unknown technique {name!r} (choose from {', '.join(sorted(specs)) or 'none yet'})")
    return specs[name]


__all__ = ["TechniqueSpec", "get_technique", "technique_specs"]
