"""Trials per minute of the smoke suite with two worker processes against one, on the same
trials (two seeds), in one run: the deterministic results must agree, and the ratio is the
speedup of the main job's concurrency. Goal on 2 cores: >= 1.8x."""

from __future__ import annotations

import io
import time

from step7bench.harness.progress import PlainProgress
from step7bench.harness.runner import run_suite
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import load_suite

DETERMINISTIC = ["trial_id", "status", "steps_to_target", "steps", "examples_forward", "flops_total"]


def _run(folder, jobs: int) -> tuple[float, int]:
    suite = load_suite("smoke", overrides=["seeds=2", "matrix.positive_control_seeds=2"])
    start = time.perf_counter()
    outcome = run_suite(suite, folder, PlainProgress(io.StringIO()), device="cpu", jobs=jobs, threads=1)
    return time.perf_counter() - start, outcome.ran


def _deterministic(folder):
    with ResultsStore(folder, create=False) as store:
        return store.trials_frame()[DETERMINISTIC].sort_values("trial_id").reset_index(drop=True)


def test_two_jobs_against_one(benchmark, tmp_path):
    one_s, ran = _run(tmp_path / "one", 1)
    two_s, _ = _run(tmp_path / "two", 2)
    assert _deterministic(tmp_path / "one").equals(_deterministic(tmp_path / "two"))
    ratio = one_s / two_s
    benchmark.extra_info.update(trials=ran, one_job_s=one_s, two_jobs_s=two_s, speedup=ratio)
    print(f"\nsmoke suite, {ran} trials: 1 job {one_s:.1f} s ({60 * ran / one_s:.0f} trials/min), 2 jobs {two_s:.1f} s "
          f"({60 * ran / two_s:.0f} trials/min): {ratio:.2f}x (goal >= 1.8x)")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
