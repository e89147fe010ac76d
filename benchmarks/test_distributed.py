"""ZeRO optimizer-state memory per rank and step throughput, at 1 and 2 ranks on the CPU (gloo).

Model: grammar-lm small's TinyGPT; optimizer AdamW; global batch of 32 sequences split over the
ranks, one thread per rank. State bytes are exact (they do not depend on timing); throughput is
examples per second of the global batch, median over timed steps after warm-up. On a machine
with fewer cores than ranks the two ranks share cores, so throughput says little there.

Run: `pytest benchmarks/test_distributed.py --benchmark-only -s`. Figures go to `extra_info`.
"""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from step7bench.techniques.distributed_optimizations import DistributedTrainer, rank_slice, shard_imbalance
from step7bench.workloads import get_workload

WARMUP_STEPS, TIMED_STEPS = 2, 8


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _measure(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    if world_size > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    workload = get_workload("grammar-lm", "small")
    torch.manual_seed(0)
    trainer = DistributedTrainer(workload.build_model(), rank=rank, world_size=world_size, use_zero=True)
    trainer.create_optimizer(torch.optim.AdamW, lr=1e-3)
    batch = workload.train.gather(torch.arange(32))
    shard = rank_slice(len(batch), rank, world_size)
    step_s = []
    for step in range(WARMUP_STEPS + TIMED_STEPS):
        start = time.perf_counter()
        trainer.train_step(batch.inputs[shard], batch.targets[shard], nn.CrossEntropyLoss())
        if step >= WARMUP_STEPS:
            step_s.append(time.perf_counter() - start)
    state_bytes = trainer.optimizer_state_bytes_per_rank()
    if rank == 0:
        torch.save({"state_bytes": state_bytes, "examples_per_s": len(batch) / statistics.median(step_s)},
                   Path(out_dir) / "result.pt")
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.parametrize("world_size", [1, 2])
def test_zero_state_and_throughput(benchmark, world_size, tmp_path):
    def run() -> None:
        mp.spawn(_measure, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size, join=True)

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = torch.load(tmp_path / "result.pt")
    state_bytes = result["state_bytes"]
    benchmark.extra_info.update(optimizer_state_bytes_per_rank=state_bytes, imbalance=shard_imbalance(state_bytes),
                                examples_per_s=result["examples_per_s"])
    print(f"\n{world_size} rank(s): optimizer state per rank {state_bytes} bytes "
          f"(imbalance {shard_imbalance(state_bytes):.3f}), {result['examples_per_s']:.0f} examples/s")
