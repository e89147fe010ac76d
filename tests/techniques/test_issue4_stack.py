"""Every technique of issue 4 trains a few steps through the engine, alone and all stacked, on the
micro presets, found by name in the registry (composer's "train every method for two batches").

A technique whose module has not joined the registry yet is skipped, by name.
"""

from __future__ import annotations

import math

import pytest

from step7bench.engine import run_trial
from step7bench.techniques import technique_specs
from step7bench.workloads.base import Budget

ISSUE4_TECHNIQUES = ("transfer", "gradient_caching", "dynamic_lr", "distributed")
# Settings that keep a trial to seconds; every other setting is the technique's default.
QUICK_CONFIG = {"transfer": {"pretrain_steps": 2}}
BUDGET = Budget(max_steps=3, max_seconds=math.inf)
ARMS = [pytest.param((name,), id=name) for name in ISSUE4_TECHNIQUES] + [
    pytest.param(ISSUE4_TECHNIQUES, id="stacked")]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # transfer's pretrained weights go to a throw-away cache, so every run pretrains
    monkeypatch.setenv("STEP7BENCH_CACHE", str(tmp_path))


@pytest.fixture(params=["digits", "grammar-lm"])
def workload(request):
    return request.getfixturevalue("digits_micro" if request.param == "digits" else "grammar_micro")


@pytest.mark.parametrize("names", ARMS)
def test_trains_a_few_steps_through_the_engine(workload, names):
    specs = technique_specs()
    missing = [name for name in names if name not in specs]
    if missing:
        pytest.skip(f"technique(s) {', '.join(missing)} not registered in step7bench.techniques yet")
    plugins = [specs[name].plugin(workload, QUICK_CONFIG.get(name)) for name in names]

    result = run_trial(workload, 0, plugins, device="cpu", budget=BUDGET)

    assert result.status == "missed", result.error  # no micro target is reached in 3 steps
    assert result.ledger.steps == BUDGET.max_steps
    assert result.ledger.examples_backward > 0 and result.ledger.flops_total > 0
    assert set(result.technique_stats) == set(names)
    if "transfer" in names:
        assert result.ledger.steps_pretrain == QUICK_CONFIG["transfer"]["pretrain_steps"]
