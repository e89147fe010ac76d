"""The table `run` prints at the end: speedups with misses counted, never medians over survivors."""

from __future__ import annotations

import io
import json

import numpy as np

from rich.console import Console
from synthetic import PlantedArm, synthetic_runs, synthetic_trials

from step7bench.analysis.results import Results, analyze
from step7bench.harness.claims import Claim
from step7bench.report.terminal import print_run_summary


def _printed(arms, claims=(), edit=lambda trials: trials) -> str:
    trials = edit(synthetic_trials(arms, seeds=range(3), workload="digits", arm_noise=0.01, measurement_noise=0.01))
    results = Results(trials=trials, curves=trials.iloc[0:0][["trial_id"]], runs=synthetic_runs())
    console = Console(file=io.StringIO(), width=400)
    print_run_summary(analyze(results, list(claims)), console)
    return console.file.getvalue()


def _row(text: str, arm: str) -> str:
    return next(line for line in text.splitlines() if f" {arm} " in line)


def test_an_arm_that_missed_everywhere_is_a_bound_not_a_zero_and_a_partial_one_counts_its_misses():
    text = _printed([PlantedArm("curriculum", 2.0), PlantedArm("active_learning", 2.0, missed=(0, 1, 2)),
                     PlantedArm("difficulty_prediction", 2.0, missed=(1,))])
    fast = _row(text, "curriculum")
    assert "3/3" in fast and "2.0" in fast.split("3/3")[1]  # the planted 2x, on every metric
    missed = _row(text, "active_learning")
    assert "0/3" in missed and "missed 3/3 (<" in missed and "0.00" not in missed
    assert "2/3" in _row(text, "difficulty_prediction")


def test_the_instrument_checks_and_the_verdicts_are_printed():
    claim = Claim(name="curriculum learning", kind="technique", techniques=["curriculum"], claimed=1.4,
                  metric="steps")
    text = _printed([PlantedArm("curriculum", 2.0)], claims=[claim])
    assert "A/A on steps" in _row(text, "A/A on steps")
    assert "SUPPORTED" in _row(text, "curriculum learning")


def test_a_verdict_whose_mechanism_never_fired_says_so_for_its_own_settings_only():
    claim = Claim(name="curriculum learning", kind="technique", techniques=["curriculum"], claimed=1.4,
                  metric="steps")
    quiet = json.dumps({"curriculum": {"activity": {"fired": False, "summary": "nothing reordered", "value": 0.0}}})

    def stated_settings_never_fired(trials):
        stated = trials["arm"] == "curriculum@as_specified"
        return trials.assign(variant=np.where(stated, "as_specified", "tuned"),
                             technique_stats=np.where(stated, quiet, "{}"))

    text = _printed([PlantedArm("curriculum", 2.0),
                     PlantedArm("curriculum@as_specified", 1.0, "as_specified", techniques=("curriculum",))],
                    claims=[claim], edit=stated_settings_never_fired)
    tuned, stated = _row(text, "curriculum learning").split("SUPPORTED", 1)
    assert "inactive" not in tuned and stated.rstrip(" │").endswith("(inactive)")


def test_results_without_a_baseline_say_so():
    """As a shard's folder may: arms, claims and positive controls, but no baseline trials."""
    arms = [PlantedArm("curriculum", 2.0), PlantedArm("warm_start", 1.0, "positive_control")]
    trials = synthetic_trials(arms, seeds=range(2))
    trials = trials[trials["arm"] != "baseline"]
    results = Results(trials=trials, curves=trials.iloc[0:0][["trial_id"]], runs=synthetic_runs())
    claim = Claim(name="curriculum learning", kind="technique", techniques=["curriculum"], claimed=1.4,
                  metric="steps")
    analysis = analyze(results, [claim])
    assert [result.verdict for result in analysis.claims] == ["NOT MEASURED"]
    assert not any(control.holds for control in analysis.positive_controls)
    console = Console(file=io.StringIO(), width=200)
    print_run_summary(analysis, console)
    assert "no baseline" in console.file.getvalue()
