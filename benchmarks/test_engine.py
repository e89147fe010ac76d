"""Engine overhead and efficiency on grammar-lm small, CPU.

- overhead: the baseline through `run_trial` against a plain hand-written torch loop that
  takes the same steps on the same model, batches, schedule and evaluation points. Goal: <= 1.03.
- efficiency: achieved FLOP/s of the training steps (counted FLOPs / training wall seconds)
  over the FLOP/s of a large fp32 matmul measured in the same run.

Figures go to the benchmark's `extra_info` (see `--benchmark-json`) and are printed.
"""

from __future__ import annotations

import dataclasses
import time

import torch

from step7bench.engine import build_optimizer, run_trial
from step7bench.engine.stages import warmup_cosine_factor
from step7bench.seeding import derive_seed, torch_generator
from step7bench.workloads import get_workload

STEPS = 300
ROUNDS = 5


def _workload():
    workload = get_workload("grammar-lm", "small")
    budget = dataclasses.replace(workload.budget, max_steps=STEPS, max_seconds=1e9)
    workload.preset = dataclasses.replace(workload.preset, budget=budget)
    return workload


def _engine_run(workload) -> float:
    start = time.perf_counter()
    result = run_trial(workload, seed=0, device="cpu", target_val_loss=0.0)
    assert result.status == "missed" and result.ledger.steps == STEPS
    return time.perf_counter() - start


def _plain_run(workload) -> float:
    """The same training as the engine's baseline, written as the usual torch loop."""
    start = time.perf_counter()
    hp, train = workload.hparams, workload.train
    torch.manual_seed(derive_seed(0, "model-init"))
    model = workload.build_model()
    optimizer = build_optimizer(model, workload.hparams)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine_factor(s, hp.warmup_steps, STEPS))
    generator = torch_generator(0, "data-order")
    queue = torch.empty(0, dtype=torch.long)
    for step in range(1, STEPS + 1):
        while len(queue) < hp.batch_size:
            queue = torch.cat([queue, torch.randperm(len(train), generator=generator)])
        ids, queue = queue[:hp.batch_size], queue[hp.batch_size:]
        loss = workload.loss(model(train.inputs[ids]), train.targets[ids])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hp.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        if step % hp.eval_every == 0 or step == STEPS:
            workload.evaluate(model, "cpu")
    return time.perf_counter() - start


def test_engine_overhead_against_a_plain_loop(benchmark):
    workload = _workload()
    workload.train  # build the data outside the timing
    _engine_run(workload), _plain_run(workload)  # warm-up: one-time torch initialisation is neither's cost
    engine_s, plain_s = [], []
    for _ in range(ROUNDS):  # interleaved, so drift of the machine hits both alike
        engine_s.append(_engine_run(workload))
        plain_s.append(_plain_run(workload))
    ratio = min(engine_s) / min(plain_s)
    benchmark.extra_info.update(engine_s=min(engine_s), plain_s=min(plain_s), ratio=ratio, steps=STEPS)
    print(f"\nengine {min(engine_s):.2f} s, plain loop {min(plain_s):.2f} s, ratio {ratio:.3f} (goal <= 1.03)")
    benchmark.pedantic(_engine_run, args=(workload,), rounds=1, iterations=1)


def _matmul_flops_per_s(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def test_training_flops_per_second_against_matmul_peak(benchmark):
    workload = _workload()
    workload.train
    result = benchmark.pedantic(run_trial, args=(workload, 0), kwargs={"device": "cpu", "target_val_loss": 0.0},
                                rounds=1, iterations=1)
    ledger = result.ledger
    achieved = (ledger.flops_forward + ledger.flops_backward) / ledger.wall_train_s
    peak = _matmul_flops_per_s()
    benchmark.extra_info.update(achieved_flops_per_s=achieved, matmul_flops_per_s=peak, ratio=achieved / peak)
    print(f"\ntraining {achieved / 1e9:.2f} GFLOP/s, fp32 matmul {peak / 1e9:.2f} GFLOP/s, ratio {achieved / peak:.3f}")
