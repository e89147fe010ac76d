"""Stand-in techniques for harness tests: the real names and stages, baseline behaviour.

The harness only needs a technique's name, stages, control and tasks; these fakes fill the
same stages as the real techniques with the baseline's own stage classes, so trials are as
fast as the baseline and the harness is tested apart from the techniques themselves.
`install()` puts them in place of the built-in techniques where the registry reads them (also in
a subprocess, see `run_cli`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from step7bench.engine.stages import (AllExamples, FreshInit, GateStage, OneProcess, Plugin, PlainStep,
                                      ShuffledEpochs, TransformStage, WarmupCosine)
from step7bench.techniques import TechniqueSpec

HERE = Path(__file__).resolve().parent
SEQUENCE_ONLY = frozenset({"sequence"})


class PassGate(GateStage):
    def gate(self, ctx, batch):
        return batch


class PassTransform(TransformStage):
    def transform(self, ctx, batch):
        return batch


_STAGE_CLASSES = {"select": AllExamples, "order": ShuffledEpochs, "transform": PassTransform, "gate": PassGate,
                  "step": PlainStep, "schedule": WarmupCosine, "init": FreshInit, "prepare": OneProcess}


class Broken(Exception):
    """Raised by the `broken` technique's plugin builder."""


def _spec(name: str, *stages: str, control: str | None = None, is_control: bool = False,
          tasks: frozenset = frozenset({"classification", "sequence"}), defaults: dict | None = None,
          data_parallel: bool = False, positive_control: bool = False) -> TechniqueSpec:
    def build(workload, config):
        if config.get("explode"):
            raise Broken(f"{name} was told to explode")
        return Plugin(name, **{stage: _STAGE_CLASSES[stage]() for stage in stages})

    return TechniqueSpec(name=name, summary=f"fake {name}", stages=stages, build=build,
                         defaults={"explode": False, **(defaults or {})}, control=control,
                         is_control=is_control, tasks=tasks, data_parallel=data_parallel,
                         positive_control=positive_control)


def fake_specs() -> dict[str, TechniqueSpec]:
    specs = [
        _spec("curriculum", "order", control="curriculum_random", defaults={"full_at": 0.5}),
        _spec("curriculum_random", "order", is_control=True, defaults={"full_at": 0.5, "reuse_rate": 0.2}),
        _spec("active_learning", "select", control="active_learning_random"),
        _spec("active_learning_random", "select", is_control=True),
        _spec("gradient_caching", "step"),
        _spec("gradient_accumulation", "step"),
        _spec("transfer", "init"),
        _spec("difficulty_prediction", "gate", control="difficulty_prediction_random"),
        _spec("difficulty_prediction_random", "gate", is_control=True),
        _spec("augmentation", "transform", tasks=SEQUENCE_ONLY),
        _spec("dynamic_lr", "schedule"),
        _spec("distributed", "prepare", "transform", data_parallel=True),
        _spec("warm_start", "schedule", defaults={"handover_fraction": 0.25}, positive_control=True),
        _spec("lr_scale", "schedule", defaults={"factor": 0.25}, positive_control=True),
    ]
    return {spec.name: spec for spec in specs}


def install(monkeypatch) -> dict[str, TechniqueSpec]:
    specs = fake_specs()
    monkeypatch.setattr("step7bench.harness.registry.technique_specs", lambda: specs)
    return specs


_LAUNCHER = (
    "import sys; sys.path.insert(0, {here!r}); import harness_fakes, step7bench.harness.registry as r; "
    "specs = harness_fakes.fake_specs(); r.technique_specs = lambda: specs; "
    "from step7bench.cli import main; sys.exit(main(sys.argv[1:]))"
)


def cli_command(*args: str) -> list[str]:
    """`step7bench ARGS` in a fresh interpreter, with the fake techniques registered."""
    return [sys.executable, "-c", _LAUNCHER.format(here=str(HERE)), *args]


def run_cli(*args: str, cwd: Path | None = None, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run(cli_command(*args), capture_output=True, text=True, cwd=cwd, timeout=timeout_s,
                          check=False)


def mini_suite_text(*, seeds: int = 1, techniques: str = '["curriculum", "active_learning"]',
                    arms: str = '["baseline", "aa", "alone"]', extra: str = "") -> str:
    """A few very short digits trials: enough to exercise the runner, fast enough for unit tests."""
    return f"""
name = "mini"
seeds = {seeds}

[matrix]
techniques = {techniques}
arms = {arms}

[[workload]]
name = "digits"
preset = "micro"
max_steps = 21
target_val_loss = 2.2
{extra}
"""
