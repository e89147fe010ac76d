"""kill -9 at any moment, with one job or two, then the same command: the run completes with
exactly the trials of an uninterrupted run, none duplicated or lost, and the database passes its
integrity check. The runs use the real techniques: a worker process of `--jobs 2` starts a fresh
interpreter, which the test's fake techniques would not reach."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness_fakes import mini_suite_text
from step7bench.cli import main
from step7bench.harness.runner import plan
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import load_suite

DETERMINISTIC = ["trial_id", "arm", "seed", "status", "steps_to_target", "steps", "examples_forward",
                 "flops_total"]


@pytest.fixture
def suite(tmp_path) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(mini_suite_text(seeds=1))
    return path


def _command(suite: Path, results: Path, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "step7bench.cli", "run", "--suite", str(suite), "--results", str(results),
            "--no-report", "--threads", "1", "--jobs", str(jobs)]


def _recorded(results: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{results / 'results.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return 0


def _kill_when(command: list[str], results: Path, ready, timeout_s: float = 120.0) -> int:
    """Start the run, SIGKILL it once `ready()` says so; returns the exit code (-9 if killed)."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.02)
    if process.poll() is None:
        process.kill()
    return process.wait(timeout=60)


def _check_complete(results: Path, expected_ids: set[str]):
    with ResultsStore(results, create=False) as store:
        trials = store.trials_frame()
        assert store.integrity_check() == "ok"
        curves = store.curves_frame()
    assert trials["trial_id"].is_unique
    assert set(trials["trial_id"]) == expected_ids
    assert set(curves["trial_id"]) == expected_ids  # no trial without its curve, no orphan curve
    return trials


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_run_killed_after_its_first_trial_resumes_to_the_full_plan(tmp_path, suite, capsys, jobs):
    results = tmp_path / "results"
    code = _kill_when(_command(suite, results, jobs), results, lambda: _recorded(results) >= 1)
    assert code == -9
    assert 1 <= _recorded(results) < 4
    # The same command again, in this process (one interpreter start less: the test stays fast).
    assert main(["run", "--suite", str(suite), "--results", str(results), "--no-report", "--jobs", str(jobs)]) == 0
    assert "already in the results, skipped" in capsys.readouterr().err
    _check_complete(results, {t.trial_id for t in plan(load_suite(str(suite)))})


@pytest.mark.slow
def test_kills_at_random_moments_end_with_the_trials_of_an_uninterrupted_run(tmp_path, suite):
    expected = {t.trial_id for t in plan(load_suite(str(suite)))}
    clean = tmp_path / "clean"
    clean_run = subprocess.run(_command(suite, clean), capture_output=True, text=True, timeout=300, check=False)
    assert clean_run.returncode == 0, clean_run.stderr
    reference = _check_complete(clean, expected)

    killed = tmp_path / "killed"
    moments = random.Random(7)
    for attempt in range(6):  # at random times: during start-up, mid-trial, mid-commit; one and two jobs
        start = time.monotonic()
        delay_s = moments.uniform(0.5, 6.0)
        command = _command(suite, killed, jobs=1 + attempt % 2)
        if _kill_when(command, killed, lambda: time.monotonic() - start > delay_s) == 0:
            break
    final = subprocess.run(_command(suite, killed, jobs=2), capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr
    resumed = _check_complete(killed, expected)
    by_id = lambda frame: frame[DETERMINISTIC].sort_values("trial_id").reset_index(drop=True)  # noqa: E731
    assert by_id(resumed).equals(by_id(reference))
