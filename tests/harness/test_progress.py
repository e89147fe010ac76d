"""Progress off a terminal is one plain line per trial; on a terminal, a live view."""

from __future__ import annotations

import io

from rich.console import Console

from step7bench.engine import Ledger, TrialResult
from step7bench.harness.matrix import Arm, TrialSpec
from step7bench.harness.progress import LiveProgress, PlainProgress, make_progress
from step7bench.harness.suite import WorkloadEntry
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
