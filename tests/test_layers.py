"""Imports point down the layers (DESIGN.md §3): workloads and measure know nothing above them,
the engine knows stages not techniques, techniques never import the harness, the analysis reads
results and never trains, the report only draws, the command line sits on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "step7bench"
# The rank of each layer: a module may import its own layer and the ones below, never above.
LAYERS = {"errors": 0, "seeding": 0, "paths": 0, "metric_names": 0, "workloads": 1, "measure": 1, "engine": 2,
          "techniques": 3, "api": 3, "harness": 4, "analysis": 5, "report": 6, "cli": 7, "__init__": 0}


def _layer(module: str) -> str:
    """`step7bench.harness.suite` -> "harness"; `step7bench.api` -> "api"."""
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """step7bench modules `path` imports (absolute imports; the package uses no relative ones)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("step7bench."):
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("step7bench.")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer():
    layers = {_layer("step7bench." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in MODULES}
    assert layers <= set(LAYERS), f"a module outside every layer: {sorted(layers - set(LAYERS))}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = _layer("step7bench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    upward = [f"line {line}: {module}" for module, line in _imports(path)
              if LAYERS[_layer(module)] > LAYERS[own]]
    assert not upward, f"{path.relative_to(PACKAGE)} ({own}) imports up: {upward}"


def test_workloads_and_measure_know_nothing_of_each_other_or_techniques():
    for path in MODULES:
        own = _layer("step7bench." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
        if own in ("workloads", "measure"):
            other = {"workloads": "measure", "measure": "workloads"}[own]
            assert not [m for m, _ in _imports(path) if _layer(m) == other], path
