"""Trials in worker processes: same deterministic results as one job, concurrency recorded, the
cores shared out, and a deadline that keeps a trial from starting when it could not finish."""

from __future__ import annotations

import io
import os
import time

import pytest
from hypothesis import given, strategies as st
from harness_fakes import mini_suite_text

from step7bench.harness.executor import Deadline, core_groups
from step7bench.harness.progress import PlainProgress
from step7bench.harness.runner import plan, run_suite
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import load_suite

DETERMINISTIC = ["trial_id", "status", "steps_to_target", "steps", "examples_forward", "flops_total", "best_val_loss"]


@pytest.fixture
def real_suite(tmp_path):
    path = tmp_path / "jobs.toml"
    text = mini_suite_text(seeds=2, techniques='["difficulty_prediction", "dynamic_lr"]', arms='["baseline", "alone"]')
    path.write_text(text.replace("max_steps = 21", "max_steps = 80").replace("target_val_loss = 2.2",
                                                                             "target_val_loss = 0.6"))
    return load_suite(str(path))


def _written(folder, text):
    path = folder / "suite.toml"
    path.write_text(text)
    return str(path)


def _run(suite, folder, **options):
    outcome = run_suite(suite, folder, PlainProgress(io.StringIO()), device="cpu", **options)
    with ResultsStore(folder, create=False) as store:
        return outcome, store.trials_frame()


def test_two_jobs_give_the_same_deterministic_results_as_one_and_say_they_ran_side_by_side(real_suite, tmp_path):
    _, one = _run(real_suite, tmp_path / "one", jobs=1, threads=1)
    outcome, two = _run(real_suite, tmp_path / "two", jobs=2, threads=1)
    assert outcome.ran == len(plan(real_suite)) and outcome.failed == 0
    key = lambda frame: frame[DETERMINISTIC].sort_values("trial_id").reset_index(drop=True)  # noqa: E731
    assert key(one).equals(key(two))
    assert not one["concurrent"].any() and two["concurrent"].any()
    assert (one["torch_threads"] == 1).all() and (two["torch_threads"] == 1).all()  # --threads 1, as asked


def test_without_threads_each_worker_trains_on_the_threads_of_its_share_of_the_cores(tmp_path):
    suite = load_suite(_written(tmp_path, mini_suite_text(seeds=2, techniques='["dynamic_lr"]', arms='["baseline"]')))
    _, trials = _run(suite, tmp_path / "results", jobs=2)
    shares = {len(group) for group in core_groups(sorted(os.sched_getaffinity(0)), 2)}
    assert len(trials) == 2 and set(trials["torch_threads"]) <= shares


@given(cores=st.lists(st.integers(0, 63), min_size=1, max_size=16, unique=True), jobs=st.integers(1, 8))
def test_cores_are_shared_out_evenly_and_every_worker_gets_one(cores, jobs):
    groups = core_groups(cores, jobs)
    assert len(groups) == jobs and all(groups)
    if len(cores) >= jobs:
        assert sorted(c for group in groups for c in group) == sorted(cores)
        assert max(map(len, groups)) - min(map(len, groups)) <= 1


def test_a_deadline_in_the_past_starts_nothing_and_says_what_was_left(real_suite, tmp_path):
    outcome, trials = _run(real_suite, tmp_path / "late", deadline=Deadline(time.monotonic() - 1.0))
    assert outcome.ran == 0 and trials.empty
    assert {t.trial_id for t in outcome.past_deadline} == {t.trial_id for t in plan(real_suite)}


def test_a_deadline_estimates_a_trial_from_its_arm_then_its_workload_then_its_budget(real_suite):
    trials = plan(real_suite)
    deadline = Deadline(time.monotonic() + 100.0)
    baseline = next(t for t in trials if t.arm.name == "baseline")
    other = next(t for t in trials if t.arm.name != "baseline")
    assert deadline.expected_s(baseline) == baseline.workload.budget.stop_seconds
    deadline.finished(baseline, 2.0)
    assert deadline.expected_s(other) == 2.0  # the workload's mean
    deadline.finished(other, 4.0)
    assert deadline.expected_s(other) == 4.0 and deadline.allows(other)
    assert not Deadline(time.monotonic() + 3.0, {(other.workload.key, other.arm.name): [4.0]}).allows(other)


def test_a_worker_that_dies_fails_its_trial_and_the_run_goes_on_in_a_fresh_pool(tmp_path):
    path = tmp_path / "dying.toml"
    text = mini_suite_text(seeds=2, techniques='["dies", "dynamic_lr"]', arms='["baseline", "alone"]')
    path.write_text(text.replace('name = "mini"', 'name = "mini"\nplugins = ["dying_technique"]'))
    suite = load_suite(str(path))
    outcome, trials = _run(suite, tmp_path / "results", jobs=2, threads=1)
    assert outcome.ran == len(plan(suite)) == len(trials) == 6
    dies = trials["arm"] == "dies"
    assert (trials.loc[dies, "status"] == "failed").all()
    assert "BrokenProcessPool" in trials.loc[dies, "error"].iloc[0]
    # A break fails the one other trial in flight at most; the trials after it run in a fresh pool.
    assert (trials.loc[~dies, "status"] != "failed").sum() >= 4 - dies.sum()
    assert outcome.failed == (trials["status"] == "failed").sum()
