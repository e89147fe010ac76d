"""The techniques the harness can put in an arm, by name.

Each technique module declares one `TechniqueSpec` (and one for its random control, where the
technique shrinks, reorders or skips data). The harness builds a fresh `Plugin` per trial
from a spec and the arm's configuration, and checks stage conflicts from `stages` at suite
load, before anything trains. A new technique is a new module with a spec, registered in
`techniques/__init__.py`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from step7bench.engine.stages import Plugin
from step7bench.workloads.base import TaskKind, Workload

PluginBuilder = Callable[[Workload, Mapping[str, Any]], Plugin]


@dataclass(frozen=True)
class TechniqueSpec:
    """How to build one technique's plugin.

    `build(workload, config)` returns a fresh Plugin named `name`; it raises ValueError naming
    the key for an unknown or out-of-range configuration value. `defaults` documents every
    configuration key and its default. `control` names the spec of the random control at the
    same rate (None where the technique changes no data); `is_control` marks a control's own
    spec. `tasks` are the workload kinds the technique applies to.
    """

    name: str
    summary: str
    stages: tuple[str, ...]
    build: PluginBuilder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    control: str | None = None
    is_control: bool = False
    tasks: frozenset[TaskKind] = frozenset({"classification", "sequence"})

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
