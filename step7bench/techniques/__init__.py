"""The eight techniques of the seed document, their random controls and the positive controls:
each technique module keeps the seed's API for use in a user's own loop, and declares a
`TechniqueSpec` whose plugin fills the engine's stages.

Techniques never own the loop.
"""

from __future__ import annotations

import importlib

from step7bench.errors import unknown_name
from step7bench.techniques.registry import TechniqueSpec

# Each module lists its specs (the technique and, where it has one, its random control, or an
# extra variant such as gradient accumulation) in a module-level TECHNIQUES tuple, the same
# protocol a plugin module follows.
TECHNIQUE_MODULES = ("curriculum_learning", "active_learning", "data_augmentation", "transfer_learning",
                     "gradient_caching", "difficulty_prediction", "dynamic_lr_scheduler",
                     "distributed_optimizations", "positive_controls")


def technique_specs() -> dict[str, TechniqueSpec]:
    """Every built-in technique and control, by name (the harness's registry adds plugins')."""
    return {spec.name: spec
            for module in TECHNIQUE_MODULES
            for spec in importlib.import_module(f"step7bench.techniques.{module}").TECHNIQUES}


def get_technique(name: str) -> TechniqueSpec:
    """The built-in technique `name`."""
    specs = technique_specs()
    if name not in specs:
        raise unknown_name("technique", name, specs)
    return specs[name]


__all__ = ["TECHNIQUE_MODULES", "TechniqueSpec", "get_technique", "technique_specs"]
