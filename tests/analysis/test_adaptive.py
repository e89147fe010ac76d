"""Adaptive seeds: a look decides what it can and asks for seeds only where a verdict is open;
the report then judges each claim with the seeds and confidence of the look that decided it."""

from __future__ import annotations

import json

from step7bench.analysis.adaptive import Design, claim_key, next_look
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
