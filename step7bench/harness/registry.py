"""The registry: every technique and workload a run may use, resolved once when a suite loads.

Sources, in this order (a name registered twice is an error naming both sources):

1. the built-ins (`step7bench.techniques.technique_specs`, `step7bench.workloads.builtin_workloads`);
2. installed packages' entry points, groups `step7bench.techniques` and `step7bench.workloads`;
3. plugin modules named by a suite's `plugins = [...]` or the command line's `--plugin MODULE`.

The same object reached twice (a package both installed and named in `plugins`) counts once.

A plugin is an importable module name (``my_package.my_technique``) or a path to a ``.py``
file (a suite's own paths are relative to the suite file). A plugin module declares what it
adds in module-level tuples, the same protocol the built-in modules follow:

    TECHNIQUES = (TechniqueSpec(...), ...)      # step7bench.techniques.TechniqueSpec
    WORKLOADS = (MyWorkload, ...)               # subclasses of step7bench.workloads.Workload

An entry point may name such a module, a single `TechniqueSpec` or `Workload` subclass, or a
sequence of them. The registry remembers the plugin modules it imported (`plugin_modules`), so
a process that must rebuild it (a data-parallel rank under torchrun) imports the same ones; no
layer reads a global registry.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from step7bench.errors import UserError, unknown_name
from step7bench.techniques import TechniqueSpec, technique_specs
from step7bench.workloads import Workload, builtin_workloads

TECHNIQUE_GROUP = "step7bench.techniques"
WORKLOAD_GROUP = "step7bench.workloads"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class Registry:
    """Techniques and workloads by name, with where each came from."""

    techniques: Mapping[str, TechniqueSpec]
    workloads: Mapping[str, type[Workload]]
    plugin_modules: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # "technique NAME" / "workload NAME" -> source

    def technique(self, name: str) -> TechniqueSpec:
        if name not in self.techniques:
            raise unknown_name("technique", name, self.techniques)
        return self.techniques[name]

    def workload(self, name: str, preset: str = "small", data_seed: int = 0) -> Workload:
        """A fresh workload object; a UserError names the choices for an unknown name or preset."""
        if name not in self.workloads:
            raise unknown_name("workload", name, self.workloads)
        return self.workloads[name](preset=preset, data_seed=data_seed)

    def controls(self) -> dict[str, str]:
        """Technique name -> its random control's name, for every technique that has one."""
        return {spec.name: spec.control for spec in self.techniques.values() if spec.control}


def load_registry(plugins: Sequence[str] = (), *, relative_to: Path | None = None,
                  use_entry_points: bool = True) -> Registry:
    """The built-ins, installed entry points (unless `use_entry_points` is False) and `plugins`
    (module names or .py paths, paths relative to `relative_to` or the working directory)."""
    builder = _Builder()
    for spec in technique_specs().values():
        builder.add_technique(spec, BUILT_IN)
    for workload in builtin_workloads().values():
        builder.add_workload(workload, BUILT_IN)
    if use_entry_points:
        for group, adder in ((TECHNIQUE_GROUP, builder.add_technique), (WORKLOAD_GROUP, builder.add_workload)):
            for point in entry_points(group=group):
                source = f"entry point {point.name!r} of {point.dist.name if point.dist else point.value}"
                builder.add_declared(_load_entry_point(point, source), source, adder)
    modules = []
    for plugin in plugins:
        module, key = import_plugin(plugin, relative_to)
        modules.append(key)
        builder.add_module(module, f"plugin {plugin!r}")
    return Registry(dict(builder.techniques), dict(builder.workloads), tuple(modules), dict(builder.sources))


def import_plugin(plugin: str, relative_to: Path | None = None) -> tuple[ModuleType, str]:
    """Import a plugin module by name, or from a .py file; returns it and the key that imports it
    again (its module name, or its file's absolute path)."""
    from_file = plugin.endswith(".py")
    path = ((relative_to or Path.cwd()) / plugin).resolve()  # an absolute `plugin` stays itself
    if from_file and not path.is_file():
        raise UserError(f"plugin {plugin!r}: no file {path}")
    try:
        return (_import_file(path), str(path)) if from_file else (importlib.import_module(plugin), plugin)
    except UserError:
        raise
    except Exception as exc:  # the plugin's own code failed: say which plugin, in one line
        raise UserError(f"plugin {plugin!r}: cannot import it ({type(exc).__name__}: {exc})") from None


def _import_file(path: Path) -> ModuleType:
    """The module of a .py file, imported once per process under a name derived from its path."""
    name = f"step7bench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"plugin {str(path)!r}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


def _load_entry_point(point: Any, source: str) -> Any:
    try:
        return point.load()
    except Exception as exc:  # a broken installed package must say which one it is
        raise UserError(f"{source}: cannot load {point.value!r} ({type(exc).__name__}: {exc})") from None


class _Builder:
    def __init__(self) -> None:
        self.techniques: dict[str, TechniqueSpec] = {}
        self.workloads: dict[str, type[Workload]] = {}
        self.sources: dict[str, str] = {}

    def add_technique(self, spec: Any, source: str) -> None:
        if not isinstance(spec, TechniqueSpec):
            raise UserError(f"{source}: {spec!r} is not a step7bench.techniques.TechniqueSpec")
        if self.techniques.get(spec.name) is not spec:  # the same object twice (entry point and plugins) is one
            self._claim(f"technique {spec.name}", source)
            self.techniques[spec.name] = spec

    def add_workload(self, workload: Any, source: str) -> None:
        if not (isinstance(workload, type) and issubclass(workload, Workload)):
            raise UserError(f"{source}: {workload!r} is not a subclass of step7bench.workloads.Workload")
        if self.workloads.get(workload.name) is not workload:
            self._claim(f"workload {workload.name}", source)
            self.workloads[workload.name] = workload

    def add_module(self, module: ModuleType, source: str) -> None:
        declared = [name for name in ("TECHNIQUES", "WORKLOADS") if hasattr(module, name)]
        if not declared:
            raise UserError(f"{source}: module {module.__name__} declares neither TECHNIQUES nor WORKLOADS")
        for spec in _sequence(getattr(module, "TECHNIQUES", ()), source, "TECHNIQUES"):
            self.add_technique(spec, source)
        for workload in _sequence(getattr(module, "WORKLOADS", ()), source, "WORKLOADS"):
            self.add_workload(workload, source)

    def add_declared(self, declared: Any, source: str, adder: Any) -> None:
        """An entry point's object: a plugin module, one spec or workload class, or a sequence."""
        if isinstance(declared, ModuleType):
            self.add_module(declared, source)
        elif isinstance(declared, (TechniqueSpec, type)):
            adder(declared, source)
        else:
            for item in _sequence(declared, source, "the entry point"):
                adder(item, source)

    def _claim(self, key: str, source: str) -> None:
        if key in self.sources:
            raise UserError(f"{key} is registered twice: by {self.sources[key]} and by {source}")
        self.sources[key] = source


def _sequence(value: Any, source: str, what: str) -> Iterable[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise UserError(f"{source}: {what} must be a tuple or list, got {type(value).__name__}")
    return value
