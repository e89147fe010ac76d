"""DistributedTrainer, the ledger reduction and the distributed plug-ins.

Multi-rank checks run in gloo process groups on the CPU: one spawned pair of ranks runs every
two-rank check (spawning is the slow part), the seed's four-rank example gets its own group, and
one test goes through torchrun. Each rank uses one thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from step7bench.engine import Ledger, run_trial
from step7bench.techniques.distributed_optimizations import (ACCUMULATION_SPEC, SPEC, DistributedTrainer,
                                                             combine_rank_ledgers, micro_batch_weights, rank_slice,
                                                             shard_imbalance, state_bytes)
from step7bench.workloads.base import IGNORE_INDEX, Budget

STEPS = 3
TRIAL_BUDGET = Budget(max_steps=6, max_seconds=1e9)  # no wall-clock stop: ranks must agree on when to stop


# -- launching ranks -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(worker, world_size: int, out_dir: Path) -> None:
    mp.spawn(_rank_main, args=(worker, world_size, _free_port(), str(out_dir)), nprocs=world_size, join=True)


def _rank_main(rank: int, worker, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        worker(rank, world_size, Path(out_dir))
    finally:
        dist.destroy_process_group()


def _model() -> nn.Module:
    torch.manual_seed(0)  # the same initial weights on every rank and in the parent
    return nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 4))


def _global_batches(count: int, size: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 8, generator=generator), torch.randint(0, 4, (size,), generator=generator))
            for _ in range(count)]


def _train(rank: int, world_size: int, use_zero: bool, accumulation: int) -> DistributedTrainer:
    trainer = DistributedTrainer(_model(), rank=rank, world_size=world_size, use_zero=use_zero,
                                 gradient_accumulation_steps=accumulation)
    trainer.create_optimizer(torch.optim.AdamW, lr=1e-2)
    for inputs, targets in _global_batches(STEPS):
        shard = rank_slice(len(inputs), rank, world_size)
        trainer.train_step(inputs[shard], targets[shard], nn.CrossEntropyLoss())
    return trainer


def _parameters(trainer: DistributedTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.module.parameters()]


def _two_rank_checks(rank: int, world_size: int, out_dir: Path) -> None:
    results: dict[str, object] = {}
    zero = _train(rank, world_size, use_zero=True, accumulation=1)
    results["zero"] = _parameters(zero)
    results["zero_state_bytes"] = zero.optimizer_state_bytes_per_rank()
    plain = _train(rank, world_size, use_zero=False, accumulation=1)
    results["ddp"] = _parameters(plain)
    results["ddp_state_bytes"] = plain.optimizer_state_bytes_per_rank()
    results["accumulated"] = _parameters(_train(rank, world_size, use_zero=True, accumulation=4))

    checkpoint = out_dir / "checkpoint.pt"
    zero.save_checkpoint(checkpoint)
    restored = DistributedTrainer(nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 4)), rank=rank,
                                  world_size=world_size)
    restored.create_optimizer(torch.optim.AdamW, lr=1e-2)
    restored.load_checkpoint(checkpoint)
    inputs, targets = _global_batches(1)[0]
    shard = rank_slice(len(inputs), rank, world_size)
    for trainer in (zero, restored):
        trainer.train_step(inputs[shard], targets[shard], nn.CrossEntropyLoss())
    results["after_resume"] = (_parameters(zero), _parameters(restored))

    from step7bench.techniques.gradient_caching import SPEC as CACHING
    from step7bench.workloads.digits import Digits

    digits = Digits("micro")
    alone = run_trial(digits, 0, [SPEC.plugin(digits)], device="cpu", target_val_loss=0.0, budget=TRIAL_BUDGET)
    stacked = run_trial(digits, 0, [SPEC.plugin(digits), CACHING.plugin(digits, {"similarity_threshold": 0.0})],
                        device="cpu", target_val_loss=0.0, budget=TRIAL_BUDGET)
    from step7bench.techniques.distributed_optimizations import gather_rank_ledgers

    results["trial"] = (alone.status, alone.error, [p.val_loss for p in alone.curve], alone.ledger,
                        gather_rank_ledgers(alone.ledger), alone.technique_stats)
    results["stacked"] = (stacked.status, stacked.error, [p.val_loss for p in stacked.curve],
                          stacked.technique_stats)
    torch.save(results, out_dir / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("two-ranks")
    _spawn(_two_rank_checks, 2, out_dir)
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


# -- two gloo ranks --------------------------------------------------------------------------------------


def _assert_close(first: list[torch.Tensor], second: list[torch.Tensor]) -> None:
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_zero_and_plain_ddp_reach_the_same_parameters(two_ranks):
    for rank in two_ranks:
        _assert_close(rank["zero"], rank["ddp"])
    _assert_close(two_ranks[0]["zero"], two_ranks[1]["zero"])


def test_two_ranks_match_one_process_on_the_whole_batch(two_ranks):
    single = _train(rank=0, world_size=1, use_zero=True, accumulation=1)
    _assert_close(two_ranks[0]["zero"], _parameters(single))


def test_zero_holds_about_half_the_optimizer_state_per_rank(two_ranks):
    sharded, unsharded = two_ranks[0]["zero_state_bytes"], two_ranks[0]["ddp_state_bytes"]
    assert unsharded[0] == unsharded[1]
    assert sum(sharded) == pytest.approx(unsharded[0], rel=0.01)  # every moment on exactly one rank
    # Whole-tensor sharding: the 32x8 and 4x32 weights cannot split evenly with the biases.
    assert max(sharded) < 0.75 * unsharded[0]
    assert 1.0 <= shard_imbalance(sharded) < 1.5


def test_accumulating_four_micro_batches_equals_the_whole_batch(two_ranks):
    for rank in two_ranks:
        _assert_close(rank["accumulated"], rank["zero"])


def test_a_checkpoint_saves_and_loads_the_sharded_state(two_ranks):
    for rank in two_ranks:
        kept_going, resumed = rank["after_resume"]
        _assert_close(kept_going, resumed)


def test_a_data_parallel_trial_matches_the_single_process_trial(two_ranks, digits_micro):
    single = run_trial(digits_micro, 0, [SPEC.plugin(digits_micro)], device="cpu", target_val_loss=0.0,
                       budget=TRIAL_BUDGET)
    status, error, curve, ledger, combined, stats = two_ranks[0]["trial"]
    assert status == "missed", error
    assert stats["distributed"] == {"activity": {"fired": True, "summary": "2 ranks", "value": 2.0},
                                    "world_size": 2, "use_zero": True}
    assert curve == pytest.approx([p.val_loss for p in single.curve], rel=1e-4)
    # Each rank forwards half of every global batch; together they count it once.
    assert ledger.examples_forward * 2 == single.ledger.examples_forward == combined.examples_forward
    assert combined.world_size == 2 and combined.steps == single.ledger.steps
    assert combined.device_s == pytest.approx(2 * combined.wall_s)


def test_gradient_caching_stacks_with_data_parallel_and_ranks_agree(two_ranks):
    first, second = (rank["stacked"] for rank in two_ranks)
    assert first[0] == "missed", first[1]
    assert first[2] == second[2]  # identical models on both ranks after hits and misses
    first_cache, second_cache = first[3]["gradient_caching"], second[3]["gradient_caching"]
    assert (first_cache["hits"], first_cache["misses"]) == (second_cache["hits"], second_cache["misses"])
    assert first_cache["hits"] > 0


# -- the seed's example: four ranks ---------------------------------------------------------------------------


def _seed_example(rank: int, world_size: int, out_dir: Path) -> None:
    model = _model()
    # The seed's block as written runs on rank 0; the other ranks run it with their own rank.
    from step7bench.techniques.distributed_optimizations import DistributedTrainer

    # Create distributed trainer
    trainer = DistributedTrainer(
        model,
        rank=rank,
        world_size=4,
        use_zero=True
    )

    # Create optimizer
    optimizer = trainer.create_optimizer(
        torch.optim.AdamW,
        lr=1e-3
    )
    inputs, targets = _global_batches(1, size=8)[0]
    trainer.train_step(inputs[rank_slice(8, rank, 4)], targets[rank_slice(8, rank, 4)], nn.CrossEntropyLoss())
    torch.save({"bytes": trainer.optimizer_state_bytes_per_rank(), "zero": type(optimizer).__name__},
               out_dir / f"rank{rank}.pt")


@pytest.mark.slow
def test_the_seed_example_runs_on_four_ranks(tmp_path):
    _spawn(_seed_example, 4, tmp_path)
    result = torch.load(tmp_path / "rank0.pt", weights_only=False)
    assert result["zero"] == "ZeroRedundancyOptimizer"
    assert len(result["bytes"]) == 4 and all(count > 0 for count in result["bytes"])


# -- torchrun ------------------------------------------------------------------------------------------------------


TORCHRUN_SCRIPT = """
import json, os, sys, torch, torch.distributed as dist
torch.set_num_threads(1)
dist.init_process_group("gloo")
from step7bench.engine import run_trial
from step7bench.techniques.distributed_optimizations import SPEC, gather_rank_ledgers
from step7bench.workloads.base import Budget
from step7bench.workloads.digits import Digits
digits = Digits("micro")
result = run_trial(digits, 0, [SPEC.plugin(digits)], device="cpu", target_val_loss=0.0,
                   budget=Budget(max_steps=4, max_seconds=1e9))
ledger = gather_rank_ledgers(result.ledger)
if dist.get_rank() == 0:
    with open(sys.argv[1], "w") as out:
        json.dump({"status": result.status, "error": result.error, "ledger": ledger.snapshot()}, out)
dist.destroy_process_group()
os._exit(0)  # skip finalisation: this script's ranks aborted there in 13 of 91 launches ("terminate called")
"""


@pytest.mark.slow
def test_a_trial_runs_data_parallel_under_torchrun(tmp_path):
    script, out = tmp_path / "trial.py", tmp_path / "ledger.json"
    script.write_text(TORCHRUN_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                               str(script), str(out)], env=env, timeout=300, capture_output=True, text=True)
    assert launched.returncode == 0, launched.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["status"] == "missed", result["error"]
    assert result["ledger"]["world_size"] == 2 and result["ledger"]["steps"] == 4
    assert result["ledger"]["examples_forward"] == 4 * 32  # the global batch, counted once


# -- single process ---------------------------------------------------------------------------------------------


def test_one_rank_needs_no_process_group_and_shards_nothing():
    trainer = DistributedTrainer(_model(), rank=0, world_size=1, use_zero=True)
    optimizer = trainer.create_optimizer(torch.optim.AdamW, lr=1e-3)
    assert isinstance(optimizer, torch.optim.AdamW) and trainer.model is trainer.module
    inputs, targets = _global_batches(1)[0]
    loss = trainer.train_step(inputs, targets, nn.CrossEntropyLoss())
    assert math.isfinite(loss)
    parameters = sum(p.numel() for p in trainer.module.parameters())
    assert trainer.optimizer_state_bytes() >= 8 * parameters  # two fp32 moments per parameter


def test_in_one_process_the_plugin_says_it_did_not_fire(digits_micro):
    result = run_trial(digits_micro, 0, [SPEC.plugin(digits_micro)], device="cpu", target_val_loss=0.0,
                       budget=TRIAL_BUDGET)
    assert result.technique_stats["distributed"] == {
        "activity": {"fired": False, "summary": "1 rank", "value": 1.0}, "world_size": 1, "use_zero": False}


@pytest.mark.parametrize(("micro_steps", "summary"), [(1, "1 micro-step"), (4, "4 micro-steps")])
def test_accumulation_activity_counts_its_micro_steps(digits_micro, micro_steps, summary):
    plugin = ACCUMULATION_SPEC.plugin(digits_micro, {"gradient_accumulation_steps": micro_steps})
    result = run_trial(digits_micro, 0, [plugin], device="cpu", target_val_loss=0.0, budget=TRIAL_BUDGET)
    assert result.technique_stats["gradient_accumulation"]["activity"] == {
        "fired": micro_steps > 1, "summary": summary, "value": float(micro_steps)}


def test_accumulation_weights_micro_batches_by_their_counted_tokens():
    targets = [torch.tensor([[1, 2, IGNORE_INDEX]]), torch.tensor([[3, IGNORE_INDEX, IGNORE_INDEX]])]
    assert micro_batch_weights(targets) == [2 / 3, 1 / 3]
    trainer = DistributedTrainer(_model(), world_size=1, gradient_accumulation_steps=3)
    whole = DistributedTrainer(_model(), world_size=1)
    for t in (trainer, whole):
        t.create_optimizer(torch.optim.SGD, lr=0.1)
    inputs, targets = _global_batches(1, size=10)[0]
    criterion = nn.CrossEntropyLoss()
    assert trainer.train_step(inputs, targets, criterion) == pytest.approx(whole.train_step(inputs, targets, criterion))
    _assert_close(_parameters(trainer), _parameters(whole))


@given(st.integers(1, 300), st.integers(1, 16))
def test_rank_slices_cover_a_batch_once_and_differ_by_at_most_one(batch_size, world_size):
    sizes = []
    covered: list[int] = []
    for rank in range(world_size):
        positions = list(range(batch_size))[rank_slice(batch_size, rank, world_size)]
        covered += positions
        sizes.append(len(positions))
    assert covered == list(range(batch_size))
    assert max(sizes) - min(sizes) <= 1


@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=8))
def test_shard_imbalance_is_one_only_for_an_even_split(bytes_per_rank):
    imbalance = shard_imbalance(bytes_per_rank)
    assert imbalance >= 1.0
    assert (imbalance == pytest.approx(1.0)) == (len(set(bytes_per_rank)) == 1)


def test_state_bytes_counts_every_tensor_of_the_state():
    state = {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(10), "note": "kept"}}
    assert state_bytes(state) == 4 + 40


def test_rank_ledgers_add_up_work_and_charge_wall_times_world_size():
    ranks = [Ledger(steps=5, examples_forward=80, flops_forward=1000, wall_train_s=2.0, wall_overhead_s=0.5,
                    energy_j=10.0, energy_method="estimate", peak_memory_bytes=100),
             Ledger(steps=5, examples_forward=80, flops_forward=1000, wall_train_s=2.5, wall_overhead_s=0.25,
                    energy_j=12.0, energy_method="estimate", peak_memory_bytes=300)]
    combined = combine_rank_ledgers(ranks)
    assert combined.world_size == 2 and combined.steps == 5
    assert combined.examples_forward == 160 and combined.flops_forward == 2000
    assert combined.wall_s == pytest.approx(3.0)
    assert combined.device_s == pytest.approx(6.0)
    assert combined.energy_j == pytest.approx(22.0) and combined.energy_method == "estimate"
    assert combined.peak_memory_bytes == 300


@pytest.mark.parametrize("method", ["rapl", "rapl->estimate", "estimate->rapl"])
def test_a_whole_host_meter_read_by_every_rank_counts_its_joules_once(method):
    ranks = [Ledger(steps=5, energy_j=10.0, energy_eval_j=1.0, energy_audit_j=2.0, energy_method=method),
             Ledger(steps=5, energy_j=11.0, energy_eval_j=1.5, energy_audit_j=2.5, energy_method=method)]
    combined = combine_rank_ledgers(ranks)
    assert (combined.energy_j, combined.energy_eval_j, combined.energy_audit_j) == (11.0, 1.5, 2.5)


def test_per_device_meters_sum_their_joules_over_ranks():
    ranks = [Ledger(steps=5, energy_j=10.0, energy_audit_j=2.0, energy_method="nvml"),
             Ledger(steps=5, energy_j=11.0, energy_audit_j=2.5, energy_method="nvml")]
    combined = combine_rank_ledgers(ranks)
    assert (combined.energy_j, combined.energy_audit_j) == (21.0, 4.5)


def test_the_pretraining_every_rank_repeats_is_counted_once():
    def rank(wall_s, energy_j):
        return Ledger(steps=5, steps_pretrain=40, examples_pretrain=640, flops_pretrain=10**9,
                      wall_pretrain_s=wall_s, device_pretrain_s=wall_s, energy_pretrain_j=energy_j,
                      energy_method="estimate")

    combined = combine_rank_ledgers([rank(3.0, 30.0), rank(3.5, 28.0)])
    assert (combined.steps_pretrain, combined.examples_pretrain, combined.flops_pretrain) == (40, 640, 10**9)
    assert (combined.wall_pretrain_s, combined.device_pretrain_s, combined.energy_pretrain_j) == (3.5, 3.5, 30.0)


def test_every_ledger_field_has_a_rule_for_adding_up_ranks():
    from step7bench.techniques.distributed_optimizations import _RANK_REDUCTION

    assert set(_RANK_REDUCTION) == set(Ledger.field_names())


def test_rank_ledgers_that_disagree_on_steps_are_refused():
    with pytest.raises(ValueError, match="steps"):
        combine_rank_ledgers([Ledger(steps=3), Ledger(steps=4)])
    with pytest.raises(ValueError, match="ledgers"):
        combine_rank_ledgers([])


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"world_size": 0}, "world_size"), ({"rank": 1, "world_size": 1}, "rank"), ({"rank": -1, "world_size": 1}, "rank"),
    ({"world_size": 4}, "world_size"), ({"world_size": 1, "gradient_accumulation_steps": 0},
                                        "gradient_accumulation_steps"),
])
def test_bad_arguments_name_the_argument(kwargs, named):
    with pytest.raises(ValueError, match=named):
        DistributedTrainer(_model(), **kwargs)


def test_accumulation_setting_out_of_range_names_the_key(digits_micro):
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        ACCUMULATION_SPEC.plugin(digits_micro, {"gradient_accumulation_steps": 0})


@pytest.mark.parametrize("spec", [SPEC, ACCUMULATION_SPEC], ids=lambda s: s.name)
def test_plugins_train_through_the_engine_in_one_process(spec, digits_micro):
    result = run_trial(digits_micro, 0, [spec.plugin(digits_micro)], device="cpu", target_val_loss=0.0,
                       budget=dataclasses.replace(TRIAL_BUDGET, max_steps=4))
    assert result.status == "missed", result.error
    assert result.ledger.steps == 4 and result.ledger.world_size == 1
    assert result.ledger.examples_forward == result.ledger.examples_backward == 4 * digits_micro.hparams.batch_size


def test_sharding_runs_before_augmentation_in_a_stack_listed_the_other_way(digits_micro):
    from step7bench.engine import Plugin, TransformStage
    from step7bench.engine.stages import compose
    from step7bench.techniques.distributed_optimizations import RankShard

    class Augment(TransformStage):
        def transform(self, ctx, batch):
            return batch

    augment = Augment()
    stages = compose([Plugin("augment", transform=augment), SPEC.plugin(digits_micro, {"use_zero": False})])
    assert isinstance(stages.transform[0], RankShard) and stages.transform[1] is augment
