"""The public API for writing a technique or a workload of one's own: everything a plugin needs,
importable from one place (`from step7bench.api import ...`). See the README's "Write your own
technique" and "Write your own workload".

Technique: a `TechniqueSpec` whose `build(workload, config)` returns a `Plugin` filling one or more
stages (subclasses of the stage bases below), listed in a module-level `TECHNIQUES` tuple.
Workload: a `Workload` subclass (data, model, loss, evaluation, target, budget, presets), listed in
a module-level `WORKLOADS` tuple. Register the module through an entry point (groups
`step7bench.techniques` / `step7bench.workloads`), a suite's `plugins = [...]` or `--plugin`.
"""

from step7bench.engine import (GateStage, InitStage, OrderStage, Plugin, PrepareStage, ScheduleStage, SelectStage,
                               Stage, StepStage, TransformStage, TrialContext, run_trial)
from step7bench.seeding import derive_seed, numpy_rng, torch_generator
from step7bench.techniques import TechniqueSpec
from step7bench.techniques.registry import activity
from step7bench.workloads import Batch, Budget, ExampleDataset, Hyperparameters, Preset, Workload
from step7bench.workloads.base import IGNORE_INDEX, cross_entropy_terms
from step7bench.workloads.models import MLPClassifier, TinyGPT

__all__ = ["IGNORE_INDEX", "Batch", "Budget", "ExampleDataset", "GateStage", "Hyperparameters", "InitStage",
           "MLPClassifier", "OrderStage", "Plugin", "PrepareStage", "Preset", "ScheduleStage", "SelectStage", "Stage",
           "StepStage", "TechniqueSpec", "TinyGPT", "TransformStage", "TrialContext", "Workload",
           "activity", "cross_entropy_terms", "derive_seed", "numpy_rng", "run_trial", "torch_generator"]
