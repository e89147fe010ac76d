"""Every registered technique (controls included, plugins' too) trains a few steps alone through
the engine on each micro workload it applies to, and all compatible ones stacked (Composer's
"train every method for two batches"). Parametrised over the registry: a technique registered
by a plugin gets the same check without a line here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from pathlib import Path

import pytest

from step7bench.engine import StageConflict, check_compatible, run_trial
from step7bench.harness.registry import load_registry
from step7bench.workloads.base import ExampleDataset

EXTRAS = Path(__file__).resolve().parents[2] / "examples" / "step7bench-extras"
sys.path.append(str(EXTRAS))  # the example plugin package, as if installed
REGISTRY = load_registry(["step7bench_extras"])
WORKLOADS = ("digits", "grammar-lm")
STEPS = 6
TRAIN_EXAMPLES = 128  # small enough that scoring the pool and predictor warm-up take moments
VAL_EXAMPLES = 64
# Settings that keep a trial to seconds; every other setting is the technique's default.
QUICK_CONFIG = {"transfer": {"pretrain_steps": 2}}
# Techniques whose own work (scoring, predicting, augmenting, look-ups) must show as overhead.
CHARGES_OVERHEAD = frozenset({"curriculum", "active_learning", "augmentation", "difficulty_prediction",
                              "gradient_caching"})


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # transfer's pretrained weights go to a throw-away cache, so every run pretrains
    monkeypatch.setenv("STEP7BENCH_CACHE", str(tmp_path))


@functools.cache
def _workload(name: str):
    return REGISTRY.workload(name, "micro")


def _head(dataset: ExampleDataset, n: int) -> ExampleDataset:
    return ExampleDataset(dataset.inputs[:n], dataset.targets[:n])


def _stack(task: str) -> tuple[str, ...]:
    """Every non-control technique that applies to `task`, in registry order, less those whose
    stage another one already holds."""
    chosen: list[str] = []
    for spec in REGISTRY.techniques.values():
        if spec.is_control or task not in spec.tasks:
            continue
        try:
            check_compatible({name: list(REGISTRY.techniques[name].stages) for name in [*chosen, spec.name]})
        except StageConflict:
            continue
        chosen.append(spec.name)
    return tuple(chosen)


def _cases() -> list:
    alone = [pytest.param((name,), workload, id=f"{name}-{workload}")
             for name in REGISTRY.techniques for workload in WORKLOADS]
    stacked = [pytest.param(None, workload, id=f"all-compatible-stacked-{workload}") for workload in WORKLOADS]
    return [*alone, *stacked]


@pytest.mark.parametrize(("names", "workload_name"), _cases())
def test_trains_a_few_steps_through_the_engine(names, workload_name):
    workload = _workload(workload_name)
    names = names or _stack(workload.task)
    unsupported = [name for name in names if workload.task not in REGISTRY.techniques[name].tasks]
    if unsupported:
        pytest.skip(f"{', '.join(unsupported)} does not apply to {workload.task} workloads")
    plugins = [REGISTRY.technique(name).plugin(workload, QUICK_CONFIG.get(name)) for name in names]

    result = run_trial(workload, seed=0, plugins=plugins, device="cpu", target_val_loss=-math.inf,
                       train=_head(workload.train, TRAIN_EXAMPLES), val=_head(workload.val, VAL_EXAMPLES),
                       budget=dataclasses.replace(workload.budget, max_steps=STEPS, max_seconds=math.inf))

    assert result.status == "missed" and result.stop_reason == "max_steps", result.error
    ledger = result.ledger
    # The warm-start positive control books the steps before its handover as pretraining.
    assert ledger.steps + (ledger.steps_pretrain if "warm_start" in names else 0) == STEPS
    assert ledger.examples_backward > 0 and ledger.flops_total > 0
    assert ledger.wall_s == pytest.approx(ledger.wall_train_s + ledger.wall_overhead_s)
    assert set(result.technique_stats) == set(names)
    assert all(result.technique_stats[name] for name in names), "every technique reports its figures"
    if CHARGES_OVERHEAD & set(names):
        assert ledger.wall_overhead_s > 0, "a technique's work must be booked as overhead"
    if "transfer" in names:
        assert ledger.steps_pretrain == QUICK_CONFIG["transfer"]["pretrain_steps"]


def test_the_stacks_hold_more_than_one_technique():
    assert len(_stack("sequence")) >= 6 and len(_stack("classification")) >= 5
