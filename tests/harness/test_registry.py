"""The registry: built-ins, installed entry points and plugin modules, resolved once, with one
clear line for every way a plugin can be wrong."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from step7bench.errors import UserError
from step7bench.harness.registry import load_registry
from step7bench.harness.suite import load_suite
from step7bench.techniques import technique_specs
from step7bench.workloads import builtin_workloads

EXTRAS = Path(__file__).resolve().parents[2] / "examples" / "step7bench-extras"


@pytest.fixture
def extras_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXTRAS))
    yield
    for name in [n for n in sys.modules if n.startswith("step7bench_extras")]:
        del sys.modules[name]


def _dist_info(folder: Path, techniques: str, workloads: str) -> None:
    """What `pip install` leaves for a package's entry points: a .dist-info folder on the path."""
    info = folder / "step7bench_extras-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: step7bench-extras\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[step7bench.techniques]\n{techniques}\n\n"
                                           f"[step7bench.workloads]\n{workloads}\n")


def test_the_built_ins_are_registered_and_say_where_they_came_from():
    registry = load_registry(use_entry_points=False)
    assert set(registry.techniques) == set(technique_specs()) and set(registry.workloads) == set(builtin_workloads())
    assert registry.sources["technique curriculum"] == "built-in"
    assert registry.controls()["curriculum"] == "curriculum_random"
    assert registry.plugin_modules == ()


def test_a_plugin_module_by_name_adds_its_techniques_and_workloads(extras_on_path):
    registry = load_registry(["step7bench_extras"], use_entry_points=False)
    assert {"selective_backprop", "selective_backprop_random"} <= set(registry.techniques)
    assert "breast-cancer" in registry.workloads and registry.plugin_modules == ("step7bench_extras",)
    workload = registry.workload("breast-cancer", "micro")
    assert len(workload.train) + len(workload.val) == 569


def test_installed_entry_points_are_found(tmp_path, monkeypatch, extras_on_path):
    _dist_info(tmp_path, "selective_backprop = step7bench_extras.selective_backprop",
               "breast-cancer = step7bench_extras.breast_cancer:BreastCancer")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert "selective_backprop" in registry.techniques and "breast-cancer" in registry.workloads
    assert registry.sources["technique selective_backprop"].startswith("entry point 'selective_backprop'")
    # Installed *and* named in a suite's plugins: the same objects, registered once.
    assert set(load_registry(["step7bench_extras"]).techniques) == set(registry.techniques)


def test_a_plugin_file_is_found_relative_to_the_suite(tmp_path):
    (tmp_path / "halve_lr.py").write_text(textwrap.dedent('''
        from step7bench.api import Plugin, ScheduleStage, TechniqueSpec

        class Halved(ScheduleStage):
            def setup(self, ctx):
                for group in ctx.optimizer.param_groups:
                    group["lr"] *= 0.5

            def after_optimizer_step(self, ctx, loss):
                pass

        TECHNIQUES = (TechniqueSpec(name="halve_lr", summary="half the rate, constant", stages=("schedule",),
                                    build=lambda workload, config: Plugin("halve_lr", schedule=Halved())),)
    '''))
    suite = tmp_path / "mine.toml"
    suite.write_text(textwrap.dedent('''
        name = "mine"
        seeds = 1
        plugins = ["halve_lr.py"]
        [matrix]
        techniques = ["halve_lr"]
        arms = ["baseline", "alone"]
        [[workload]]
        name = "digits"
        preset = "micro"
        target_val_loss = 2.2
    '''))
    loaded = load_suite(str(suite))
    assert loaded.registry.technique("halve_lr").summary == "half the rate, constant"
    assert loaded.registry.plugin_modules == (str((tmp_path / "halve_lr.py").resolve()),)


@pytest.mark.parametrize(("source", "message"), [
    ("import no_such_package_anywhere\n", "cannot import it (ModuleNotFoundError"),
    ("raise RuntimeError('plugin broke')\n", "cannot import it (RuntimeError: plugin broke)"),
    ("X = 1\n", "declares neither TECHNIQUES nor WORKLOADS"),
    ("TECHNIQUES = ('curriculum',)\n", "is not a step7bench.techniques.TechniqueSpec"),
    ("WORKLOADS = (int,)\n", "is not a subclass of step7bench.workloads.Workload"),
    ("TECHNIQUES = 3\n", "TECHNIQUES must be a tuple or list"),
    ("from step7bench.techniques import get_technique\nTECHNIQUES = (get_technique('curriculum').__class__(\n"
     "    **{**get_technique('curriculum').__dict__}),)\n", "technique curriculum is registered twice: by built-in"),
])
def test_a_wrong_plugin_is_one_line_naming_it(tmp_path, source, message):
    (tmp_path / "wrong.py").write_text(source)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        load_registry(["wrong.py"], relative_to=tmp_path, use_entry_points=False)
    assert "wrong.py" in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_plugin_file_or_module_is_one_line(tmp_path):
    with pytest.raises(UserError, match="no file"):
        load_registry(["absent.py"], relative_to=tmp_path, use_entry_points=False)
    with pytest.raises(UserError, match="cannot import it"):
        load_registry(["no_such_module_xyz"], use_entry_points=False)


def test_an_unknown_name_suggests_the_closest():
    registry = load_registry(use_entry_points=False)
    with pytest.raises(UserError, match="did you mean 'curriculum'"):
        registry.technique("curriculm")
    with pytest.raises(UserError, match="did you mean 'grammar-lm'"):
        registry.workload("gramar-lm")
