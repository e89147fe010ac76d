"""Ranks of a data-parallel trial agree on when to stop and when to skip a step.

Two gloo ranks on the CPU (one spawn for every check: spawning is the slow part), each with one
thread. Without agreement either check deadlocks in DDP's gradient all-reduce; the process
group's timeout turns a deadlock into a failure instead of a hang.
"""

from __future__ import annotations

import datetime
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from step7bench.engine import GateStage, Plugin, run_trial
from step7bench.engine.loop import _AgreedAcrossRanks, _OneProcess, _stop_rules
from step7bench.techniques.distributed_optimizations import SPEC as DISTRIBUTED
from step7bench.workloads.base import Budget

DEADLOCK_TIMEOUT_S = 60
STEPS = 6


class EmptyOnRankOne(GateStage):
    """Rank 1 drops its whole slice of every other batch; rank 0 never does."""

    def __init__(self) -> None:
        self.batches = 0

    def gate(self, ctx, batch):
        self.batches += 1
        if dist.get_rank() == 1 and self.batches % 2 == 0:
            return batch.subset(torch.arange(0))
        return batch


class SlowOnRankZero(GateStage):
    """Rank 0 spends a little longer per batch, so the ranks' clocks cross the budget apart."""

    def gate(self, ctx, batch):
        if dist.get_rank() == 0:
            time.sleep(0.01)
        return batch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=DEADLOCK_TIMEOUT_S))
    try:
        from step7bench.workloads.digits import Digits

        digits = Digits("micro")
        results = {"rules": type(_stop_rules(1.0, torch.device("cpu"))).__name__}
        for name, gate, budget in (
                ("empty", EmptyOnRankOne(), Budget(max_steps=STEPS, max_seconds=1e9)),
                ("budget", SlowOnRankZero(), Budget(max_steps=10_000, max_seconds=0.5))):
            plugins = [DISTRIBUTED.plugin(digits), Plugin("test_gate", gate=gate)]
            result = run_trial(digits, 0, plugins, device="cpu", target_val_loss=0.0, budget=budget)
            results[name] = (result.status, result.error, result.ledger.steps,
                             [p.val_loss for p in result.curve])
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("stop")
    mp.spawn(_rank_main, args=(_free_port(), str(out_dir)), nprocs=2, join=True)
    return [torch.load(out_dir / f"rank{rank}.pt", weights_only=False) for rank in range(2)]


def test_a_process_group_of_two_ranks_takes_the_agreed_rules(two_ranks):
    assert [rank["rules"] for rank in two_ranks] == [_AgreedAcrossRanks.__name__] * 2


def test_an_empty_batch_on_one_rank_skips_the_step_on_all(two_ranks):
    first, second = (rank["empty"] for rank in two_ranks)
    assert first[0] == second[0] == "missed", (first[1], second[1])
    assert first[2] == second[2] == STEPS
    assert first[3] == second[3]  # the same model on both ranks at every check


def test_ranks_stop_on_the_wall_clock_budget_at_the_same_step(two_ranks):
    first, second = (rank["budget"] for rank in two_ranks)
    assert first[0] == second[0] == "missed", (first[1], second[1])
    assert 0 < first[2] == second[2] < 10_000


def test_one_process_keeps_its_own_rules():
    assert type(_stop_rules(1.0, torch.device("cpu"))) is _OneProcess
