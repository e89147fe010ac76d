"""Every technique of issue 3 alone, and all four stacked, trains a few steps on the micro presets
through the engine, and the ledger shows what each adds as overhead.

Techniques come from the registry, so a technique that is not registered yet is skipped with
its name, never silently left out.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest

from step7bench.engine import run_trial
from step7bench.techniques import technique_specs
from step7bench.workloads import get_workload
from step7bench.workloads.base import ExampleDataset

ISSUE3 = ("curriculum", "active_learning", "augmentation", "difficulty_prediction")
STEPS = 8
TRAIN_EXAMPLES = 128  # small enough that scoring the pool and predictor warm-up take moments
VAL_EXAMPLES = 64


@functools.cache
def _workload(name: str):
    return get_workload(name, "micro")


def _head(dataset: ExampleDataset, n: int) -> ExampleDataset:
    return ExampleDataset(dataset.inputs[:n], dataset.targets[:n])


def _cases() -> list:
    cases = [pytest.param((name,), workload, id=f"{name}-{workload}")
             for name in ISSUE3 for workload in ("digits", "grammar-lm")]
    # augmentation edits token sequences, so the stack runs on the sequence workload
    return [*cases, pytest.param(ISSUE3, "grammar-lm", id="all-four-stacked-grammar-lm")]


@pytest.mark.parametrize(("names", "workload_name"), _cases())
def test_issue3_techniques_alone_and_stacked(names, workload_name):
    specs = technique_specs()
    missing = [name for name in names if name not in specs]
    if missing:
        pytest.skip(f"technique(s) {', '.join(missing)} not registered yet")
    workload = _workload(workload_name)
    unsupported = [name for name in names if workload.task not in specs[name].tasks]
    if unsupported:
        pytest.skip(f"{', '.join(unsupported)} does not apply to {workload.task} workloads")
    result = run_trial(workload, seed=0, plugins=[specs[name].plugin(workload) for name in names], device="cpu",
                       train=_head(workload.train, TRAIN_EXAMPLES), val=_head(workload.val, VAL_EXAMPLES),
                       budget=dataclasses.replace(workload.budget, max_steps=STEPS))
    assert result.status in {"missed", "reached"}, result.error
    ledger = result.ledger
    assert 0 < ledger.steps <= STEPS and ledger.examples_backward > 0
    assert ledger.wall_overhead_s > 0, "a technique's work must be booked as overhead"
    assert ledger.wall_s == pytest.approx(ledger.wall_train_s + ledger.wall_overhead_s)
    assert set(result.technique_stats) == set(names)
    assert all(result.technique_stats[name] for name in names), "every technique reports its figures"
