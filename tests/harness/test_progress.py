"""Progress off a terminal is one plain line per trial; the summary counts per arm."""

from __future__ import annotations

import io

import pandas as pd
from rich.console import Console

from step7bench.engine import Ledger, TrialResult
from step7bench.harness.matrix import Arm, TrialSpec
from step7bench.harness.progress import LiveProgress, PlainProgress, make_progress
from step7bench.harness.suite import WorkloadEntry
from step7bench.harness.summary import print_summary, summarize
from step7bench.workloads import Budget

SPEC = TrialSpec(WorkloadEntry("digits", "micro", "classification", Budget(10, 1.0), 0.5, "suite"),
                 Arm("curriculum", "alone", ("curriculum",)), 1, {})


def _result(status: str) -> TrialResult:
    return TrialResult(status=status, workload="digits", preset="micro", techniques=["curriculum"], seed=1,
                       device="cpu", target_val_loss=0.5, steps_to_target=40 if status == "reached" else None,
                       best_val_loss=0.4, curve=[], ledger=Ledger(wall_train_s=1.25),
                       error="Traceback\nValueError: bad" if status == "failed" else None)


def test_plain_progress_is_one_line_per_trial():
    stream = io.StringIO()
    progress = PlainProgress(stream)
    progress.start(2, 3)
    for status in ("reached", "failed"):
        progress.trial_started(SPEC)
        progress.trial_finished(SPEC, _result(status))
    progress.close()
    assert stream.getvalue().splitlines() == [
        "2 trials to run; 3 already in the results, skipped",
        "[1/2] digits/micro curriculum seed 1: reached at step 40 (1.2 s)",
        "[2/2] digits/micro curriculum seed 1: FAILED: ValueError: bad (1.2 s)",
    ]


def test_progress_is_plain_off_a_terminal_and_live_on_one():
    assert isinstance(make_progress(io.StringIO()), PlainProgress)
    live = LiveProgress(Console(file=io.StringIO(), force_terminal=True))
    live.start(1, 0)
    live.trial_started(SPEC)
    live.trial_finished(SPEC, _result("reached"))
    live.close()
    assert "1/1" in live.console.file.getvalue()


def test_the_summary_counts_and_takes_medians_over_reached_trials():
    frame = pd.DataFrame({
        "workload": ["digits"] * 3, "preset": ["micro"] * 3, "arm": ["baseline", "baseline", "curriculum"],
        "arm_kind": ["baseline", "baseline", "alone"], "status": ["reached", "missed", "failed"],
        "steps_to_target": [40.0, None, None], "device_s": [2.0, 9.0, 0.0], "flops_total": [1e9, 2e9, 0],
    })
    rows = summarize(frame).set_index("arm")
    assert (rows.loc["baseline", "trials"], rows.loc["baseline", "reached"], rows.loc["baseline", "median_steps"],
            rows.loc["baseline", "median_device_s"]) == (2, 1, 40.0, 2.0)
    assert rows.loc["curriculum", "failed"] == 1
    console = Console(file=io.StringIO(), width=200)
    print_summary(frame, console)
    assert "digits/micro" in console.file.getvalue()
