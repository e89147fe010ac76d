"""How the harness knows a technique: its `TechniqueSpec`.

A technique module declares one spec (and one for its random control, where the technique
shrinks, reorders or skips data) in a module-level `TECHNIQUES` tuple. The harness builds a
fresh `Plugin` per trial from a spec and the arm's configuration, and checks stage conflicts
from `stages` at suite load, before anything trains. The built-in eight are listed in
`techniques/__init__.py`; a technique of one's own registers as a plugin (README, "Write your
own technique"): nothing in step7bench changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from step7bench.engine.stages import Plugin
from step7bench.workloads.base import TaskKind, Workload

PluginBuilder = Callable[[Workload, Mapping[str, Any]], Plugin]

MAX_GRID_POINTS = 6
"""A technique's tuning grid is small: about the effort the baseline's learning-rate grid got."""


def activity(fired: bool, summary: str, value: float) -> dict[str, Any]:
    """The standard `activity` entry of a technique's stats: whether its mechanism did anything
    in this trial, one line saying what it did ("0% of steps reused a gradient"), and that share
    or figure as a number. The report labels a verdict whose mechanism never fired as inactive."""
    return {"fired": bool(fired), "summary": summary, "value": float(value)}


@dataclass(frozen=True)
class TechniqueSpec:
    """How to build one technique's plugin.

    `build(workload, config)` returns a fresh Plugin named `name`; it raises ValueError naming
    the key for an unknown or out-of-range configuration value. `defaults` documents every
    configuration key and its default. `control` names the spec of the random control at the
    same rate (None where the technique changes no data); `is_control` marks a control's own
    spec. `tasks` are the workload kinds the technique applies to. `data_parallel` marks a
    technique whose trials the harness runs on several ranks under torchrun when asked to
    (`run --nproc-per-node N`); its plugin then finds an initialised process group.
    `positive_control` marks an arm of known speedup (techniques/positive_controls.py) that a suite
    runs through its `positive_controls` arm group, never as a technique of its matrix.

    Tuning parity (the baseline was tuned; so is every technique, with the same effort):
    `as_specified` holds the settings the seed document states (the arm judged "as specified");
    `grid` holds at most `MAX_GRID_POINTS` settings to try (each overrides `defaults`), chosen from
    the literature, and `grid_source` says where each comes from. `calibrate` tunes every technique
    over its grid on calibration seeds, never the judged ones.
    """

    name: str
    summary: str
    stages: tuple[str, ...]
    build: PluginBuilder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    control: str | None = None
    is_control: bool = False
    tasks: frozenset[TaskKind] = frozenset({"classification", "sequence"})
    data_parallel: bool = False
    positive_control: bool = False
    as_specified: Mapping[str, Any] = field(default_factory=dict)
    grid: tuple[Mapping[str, Any], ...] = ()
    grid_source: str = ""

    def __post_init__(self) -> None:
        for where, settings in (("as_specified", self.as_specified), *(("grid", point) for point in self.grid)):
            unknown = sorted(set(settings) - set(self.defaults))
            if unknown:
                raise ValueError(f"technique {self.name!r}: {where} names {unknown[0]!r}, not one of its settings")
        if len(self.grid) > MAX_GRID_POINTS:
            raise ValueError(f"technique {self.name!r}: a grid of {len(self.grid)} points; at most {MAX_GRID_POINTS}")

    def plugin(self, workload: Workload, config: Mapping[str, Any] | None = None) -> Plugin:
        config = dict(config or {})
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ValueError(f"technique {self.name!r} has no setting {unknown[0]!r} "
                             f"(settings: {', '.join(sorted(self.defaults)) or 'none'})")
        if workload.task not in self.tasks:
            raise ValueError(f"technique {self.name!r} does not apply to {workload.task} workload "
                             f"{workload.name!r}")
        plugin = self.build(workload, {**self.defaults, **config})
        if plugin.name != self.name or set(plugin.filled_stages()) != set(self.stages):
            raise AssertionError(f"technique {self.name!r} built a plugin that does not match its spec")
        return plugin
