"""Adaptive seeds: a look decides what it can and asks for seeds only where a verdict is open;
the report then judges each claim with the seeds and confidence of the look that decided it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from step7bench.analysis.adaptive import Design, claim_key, next_look, savings
from step7bench.analysis.results import Results, analyze
from step7bench.analysis.stats import INCONCLUSIVE, REFUTED
from step7bench.harness.claims import Claim
from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials

CLAIMS = [Claim("clear 2x", ["slow"], 2.0, "steps", "technique"), Claim("close 1.5x", ["near"], 1.5, "steps",
                                                                          "technique")]


def _results(seeds: int, adaptive: dict | None = None) -> Results:
    trials = synthetic_trials([PlantedArm("slow", 1.0), PlantedArm("near", 1.5)], seeds=range(seeds), arm_noise=0.1)
    runs = synthetic_runs()
    if adaptive is not None:
        runs = runs.assign(adaptive=[json.dumps(adaptive)])
    return Results(trials, synthetic_curves(trials), runs)


def test_a_look_decides_the_clear_claim_and_asks_seeds_for_the_open_one_only():
    design = Design(initial=3, batch=2, max_seeds=7, shape="pocock")
    assert design.sizes == [3, 5, 7]
    decided, needs = next_look(_results(3), CLAIMS, design, 1)
    assert decided.decided_at == {claim_key("clear 2x", "synthetic"): 1}
    assert needs == {("synthetic/micro", "near"): 5, ("synthetic/micro", "baseline"): 5}


def test_the_last_look_decides_everything_left_open():
    design = Design(initial=3, batch=2, max_seeds=7, shape="pocock", decided_at={claim_key("clear 2x", "synthetic"): 1})
    decided, needs = next_look(_results(7), CLAIMS, design, 3)
    assert needs == {} and decided.decided_at[claim_key("close 1.5x", "synthetic")] == 3


def test_a_claim_is_judged_with_the_seeds_and_confidence_of_its_look():
    design = Design(initial=3, batch=2, max_seeds=7, shape="pocock", decided_at={claim_key("clear 2x", "synthetic"): 1,
                                                                 claim_key("close 1.5x", "synthetic"): 3})
    analysis = analyze(_results(7, design.record()), CLAIMS)
    clear, close = analysis.claims
    assert clear.seeds_used == 3 and clear.verdict == REFUTED
    assert clear.confidence == design.look(1).confidence > 0.95  # one look's share of alpha
    assert close.seeds_used == 7 and close.verdict == INCONCLUSIVE
    assert close.confidence == design.look(3).confidence


def test_savings_count_the_claims_arms_and_the_baseline_against_a_fixed_design_at_max_seeds():
    design = Design(initial=3, batch=2, max_seeds=7, shape="pocock").record()
    results = _results(3, adaptive=design)
    trials = results.trials.copy()
    trials = trials[~((trials["arm"] == "near") & (trials["seed"] == 2))]  # "near" ran 2 trials, the rest 3
    start = pd.Timestamp("2026-01-01T00:00:00+00:00")
    trials["started_at"] = start.isoformat()
    trials["finished_at"] = (start + pd.to_timedelta(trials["seed"] + 1, unit="s")).map(pd.Timestamp.isoformat)
    trials["world_size"] = 1
    results = Results(trials, synthetic_curves(trials), results.runs)
    found = savings(results, analyze(results, CLAIMS).claims)
    # baseline, "slow" and "near": 3 + 3 + 2 trials of 1, 2, 3 s (2 s mean; "near" 1.5 s), all at 7 seeds if fixed
    assert (found.trials, found.trials_fixed) == (8, 21)
    assert found.device_hours * 3600 == pytest.approx(6 + 6 + 3)
    assert found.device_hours_fixed * 3600 == pytest.approx(7 * 2 + 7 * 2 + 7 * 1.5)
    assert found.saved_hours > 0
    assert savings(_results(3), []) is None  # no adaptive design
