"""The training engine: one loop with named stages, and the cost ledger.

Knows stages, not techniques by name.
"""

from step7bench.engine.context import TrialContext
from step7bench.engine.costs import CostClock
from step7bench.engine.ledger import Ledger
from step7bench.engine.loop import (STOP_REASONS, TIME_BOUND, EvalPoint, StopReason, TrialResult, build_optimizer,
                                    resolve_device, run_trial)
from step7bench.engine.stages import (CHAINABLE_STAGES, STAGE_ORDER, STAGES, GateStage, InitStage, OrderStage, Plugin,
                                      PrepareStage, ScheduleStage, SelectStage, Stage, StageConflict, StageSet,
                                      StepStage, TransformStage, check_compatible, compose)

__all__ = ["CHAINABLE_STAGES", "STAGES", "STAGE_ORDER", "STOP_REASONS", "TIME_BOUND", "CostClock", "EvalPoint",
           "GateStage", "InitStage", "Ledger", "OrderStage", "Plugin", "PrepareStage", "ScheduleStage", "SelectStage",
           "Stage", "StageConflict", "StageSet", "StepStage", "StopReason", "TransformStage", "TrialContext",
           "TrialResult", "build_optimizer", "check_compatible", "compose", "resolve_device", "run_trial"]
