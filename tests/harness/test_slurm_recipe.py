"""examples/slurm: the step7bench commands of the sbatch scripts, run here for every array task id,
give the same results as one process running the whole suite.

The commands are read from the scripts themselves (so this test follows, or breaks on, any change
to them), their variables filled in as Slurm and submit.sh would, and run with the stand-in
techniques of harness_fakes on the tiny suite.
"""

from __future__ import annotations

import glob
import re
import shlex
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from harness_fakes import cli_command, run_cli

from step7bench.harness.store import ResultsStore

REPO = Path(__file__).resolve().parents[2]
SLURM = REPO / "examples" / "slurm"
TINY = Path(__file__).resolve().parent / "suites" / "tiny.toml"
SHARDS = 3  # 48 trials: every shard gets some of each workload's arms
DETERMINISTIC = ["trial_id", "status", "steps_to_target", "steps", "examples_forward", "flops_total"]
TIMEOUT_S = 300
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def step7bench_commands(script: Path) -> list[list[str]]:
    """The `step7bench ...` command lines of a shell script, continuation lines joined, split as
    the shell splits them (variables not yet expanded)."""
    text = script.read_text().replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in text.splitlines() if line.strip().startswith("step7bench ")]


def expand(word: str, variables: dict[str, str]) -> list[str]:
    """A word with its `$NAME` / `${NAME}` filled in (an unknown name fails the test) and a glob
    expanded, as the shell would: several words for a glob that matches several paths."""
    filled = _VARIABLE.sub(lambda match: variables[match.group(1) or match.group(2)], word)
    if "*" not in filled:
        return [filled]
    return sorted(glob.glob(filled)) or [filled]


def filled(command: list[str], variables: dict[str, str]) -> list[str]:
    return [expanded for word in command for expanded in expand(word, variables)]


def test_the_scripts_shard_by_array_task_id_then_merge_after_every_shard():
    (shard,) = step7bench_commands(SLURM / "shard.sbatch")
    merge, report = step7bench_commands(SLURM / "merge.sbatch")
    assert shard[:1] == ["run"] and "--no-report" in shard
    assert shard[shard.index("--shard") + 1] == "$SLURM_ARRAY_TASK_ID/$SHARDS"  # ids 1..N
    assert shard[shard.index("--results") + 1] == "$RESULTS/shards/$SLURM_ARRAY_TASK_ID"
    assert merge == ["merge", "--into", "$RESULTS/merged", "$RESULTS/shards/*"]
    assert report == ["report", "--results", "$RESULTS/merged"]
    submit = (SLURM / "submit.sh").read_text()
    assert '--array="1-$SHARDS"' in submit and '--dependency="afterok:$array_job"' in submit
    for script in ("shard.sbatch", "merge.sbatch", "submit.sh"):
        subprocess.run(["bash", "-n", str(SLURM / script)], check=True, timeout=30)  # the shell parses them


def deterministic_trials(results: Path) -> pd.DataFrame:
    with ResultsStore(results, create=False) as store:
        trials = store.trials_frame()
    return trials[DETERMINISTIC].sort_values("trial_id").reset_index(drop=True)


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    """Every array task's command and the single-process run, at once (separate processes, as on a
    cluster), then the merge job's commands in order."""
    out = tmp_path_factory.mktemp("slurm")
    variables = {"SUITE": str(TINY), "SHARDS": str(SHARDS), "RESULTS": str(out / "results"), "DEVICE": "cpu",
                 "THREADS": "1", "JOBS": "1"}
    (shard,) = step7bench_commands(SLURM / "shard.sbatch")
    tasks = [filled(shard, {**variables, "SLURM_ARRAY_TASK_ID": str(task)}) for task in range(1, SHARDS + 1)]
    single = ["run", "--suite", str(TINY), "--results", str(out / "single"), "--no-report", "--device", "cpu",
              "--threads", "1", "--jobs", "1"]
    processes = [subprocess.Popen(cli_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for args in [*tasks, single]]
    for args, process in zip([*tasks, single], processes):
        output, _ = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"{shlex.join(args)}\n{output[-3000:]}"
    merge_job = [run_cli(*filled(command, variables), timeout_s=TIMEOUT_S)
                 for command in step7bench_commands(SLURM / "merge.sbatch")]
    return out, merge_job


def test_every_array_task_wrote_its_own_shard(slurm_run):
    out, _ = slurm_run
    shards = sorted(path.name for path in (out / "results" / "shards").iterdir())
    assert shards == [str(task) for task in range(1, SHARDS + 1)]
    sizes = [len(deterministic_trials(out / "results" / "shards" / shard)) for shard in shards]
    assert all(sizes) and sum(sizes) == len(deterministic_trials(out / "single"))


def test_the_merged_shards_equal_one_process_on_the_deterministic_figures(slurm_run):
    out, (merge, _) = slurm_run
    assert merge.returncode == 0, merge.stdout + merge.stderr
    merged, single = deterministic_trials(out / "results" / "merged"), deterministic_trials(out / "single")
    pd.testing.assert_frame_equal(merged, single)


def test_the_merge_job_reports_on_the_merged_results(slurm_run):
    out, (_, report) = slurm_run
    assert report.returncode == 0, report.stdout + report.stderr
    for name in ("index.html", "summary.json"):
        assert (out / "results" / "merged" / name).is_file()
