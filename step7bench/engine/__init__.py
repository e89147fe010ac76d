"""The training engine: one loop with named stages, and the cost ledger.

Knows stages, not techniques by name.
"""

from step7bench.engine.context import TrialContext
from step7bench.engine.ledger import Ledger
from step7bench.engine.loop import EvalPoint, TrialResult, build_optimizer, resolve_device, run_trial
from step7bench.engine.stages import (CHAINABLE_STAGES, STAGE_ORDER, GateStage, InitStage, OrderStage, Plugin,
                                      ScheduleStage, SelectStage, Stage, StageConflict, StageSet, StepStage,
                                      TransformStage, check_compatible, compose)

__all__ = ["CHAINABLE_STAGES", "STAGE_ORDER", "EvalPoint", "GateStage", "InitStage", "Ledger", "OrderStage",
           "Plugin", "ScheduleStage", "SelectStage", "Stage", "StageConflict", "StageSet", "StepStage",
           "TransformStage", "TrialContext", "TrialResult", "build_optimizer", "check_compatible", "compose",
           "resolve_device", "run_trial"]
