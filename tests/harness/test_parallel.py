"""`run --nproc-per-node N`: which trials run data-parallel under torchrun, and what is stored."""

from __future__ import annotations

import io

import pytest
import torch
import harness_fakes
from harness_fakes import mini_suite_text

from step7bench.cli import main
from step7bench.harness.matrix import Arm, TrialSpec
from step7bench.harness.registry import Registry
from step7bench.harness.parallel import ParallelTrialError, run_data_parallel, runs_data_parallel, threads_per_rank
from step7bench.harness.progress import PlainProgress
from step7bench.harness.runner import plan, run_suite
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import load_suite
from step7bench.workloads import builtin_workloads


@pytest.fixture
def distributed_suite(tmp_path):
    path = tmp_path / "parallel.toml"
    path.write_text(mini_suite_text(techniques='["distributed"]', arms='["baseline", "alone"]'))
    return load_suite(path)


@pytest.mark.parametrize("text", ["0", "-1", "two"])
def test_a_bad_process_count_is_one_line_and_exit_2(text, capsys):
    assert main(["run", "--suite", "smoke", "--nproc-per-node", text]) == 2
    error = capsys.readouterr().err.strip()
    assert "--nproc-per-node" in error and len(error.splitlines()) == 1


def test_only_arms_with_the_distributed_technique_run_under_torchrun(distributed_suite):
    trials = {trial.arm.name: trial for trial in plan(distributed_suite)}
    assert set(trials) == {"baseline", "distributed"}
    assert runs_data_parallel(trials["distributed"], 2)
    assert not runs_data_parallel(trials["distributed"], 1)
    assert not runs_data_parallel(trials["baseline"], 2)


def test_data_parallelism_is_a_flag_of_the_spec_not_a_name_the_harness_knows(tmp_path, fake_specs):
    registry = Registry({**fake_specs, "my_ranks": harness_fakes._spec("my_ranks", "prepare", "transform",
                                                                        data_parallel=True)}, builtin_workloads())
    path = tmp_path / "renamed.toml"
    path.write_text(mini_suite_text(techniques='["curriculum", "my_ranks"]', arms='["baseline", "alone", "all_stack"]',
                                    extra="").replace("arms =", 'all_stack = ["curriculum", "my_ranks"]\narms ='))
    trials = {trial.arm.name: trial for trial in plan(load_suite(str(path), registry=registry), nproc_per_node=2)}
    assert {name for name, trial in trials.items() if runs_data_parallel(trial, 2)} == {"my_ranks",
                                                                                       "curriculum+my_ranks"}
    assert trials["curriculum+my_ranks"].world_size == 2 and trials["curriculum"].world_size == 1


def test_a_data_parallel_arms_trial_id_names_its_world_size_and_no_other_arms_does(distributed_suite):
    one, two = ({trial.arm.name: trial for trial in plan(distributed_suite, nproc_per_node=n)} for n in (1, 2))
    assert (one["distributed"].world_size, two["distributed"].world_size) == (1, 2)
    assert one["distributed"].trial_id != two["distributed"].trial_id
    assert two["distributed"].identity()["world_size"] == 2
    assert two["baseline"].world_size == 1 and "world_size" not in two["baseline"].identity()
    assert one["baseline"].trial_id == two["baseline"].trial_id


def test_a_process_count_below_one_names_the_argument(distributed_suite):
    with pytest.raises(ValueError, match="nproc_per_node"):
        runs_data_parallel(plan(distributed_suite)[0], 0)


@pytest.mark.parametrize(("ranks", "cores", "threads"), [(1, 2, 2), (2, 2, 1), (4, 2, 1), (2, 16, 8)])
def test_each_rank_gets_its_share_of_the_cores_and_at_least_one(ranks, cores, threads):
    assert threads_per_rank(ranks, cores) == threads


@pytest.mark.slow
def test_a_data_parallel_trial_is_stored_with_its_ranks_added_up(distributed_suite, tmp_path):
    results = tmp_path / "results"
    outcome = run_suite(distributed_suite, results, PlainProgress(io.StringIO()), device="cpu", nproc_per_node=2)
    assert outcome.failed == 0
    with ResultsStore(results, create=False) as store:
        trials = store.trials_frame().set_index("arm")
    parallel, single = trials.loc["distributed"], trials.loc["baseline"]
    assert parallel["status"] in {"reached", "missed"}, parallel["error"]
    assert parallel["world_size"] == 2 and single["world_size"] == 1
    assert parallel["device_s"] == pytest.approx(2 * parallel["wall_s"], rel=1e-9)
    # Each rank forwards half of every global batch; the stored trial counts the batch once.
    assert parallel["steps"] == single["steps"]
    assert parallel["examples_forward"] == single["examples_forward"]


@pytest.mark.slow
def test_a_rank_that_fails_hands_back_its_error(distributed_suite):
    trial = plan(distributed_suite)[-1]
    broken = TrialSpec(trial.workload, Arm("broken", "alone", ("distributed", "no_such_technique")), 0, {})
    with pytest.raises(ParallelTrialError, match="no_such_technique"):
        run_data_parallel(broken, torch.device("cpu"), 2, timeout_s=120)
