"""Scoring throughput of curriculum learning and active learning against training throughput.

Both techniques pay for a forward-only pass over examples (difficulty scoring; pool
scoring); a training step pays forward + backward (about twice the forward's FLOPs) + the
optimizer step. So on the same model and data, scoring should run at up to about 3x the
examples/s of training; far below that, the scoring path wastes time the ledger will charge.

Setting: grammar-lm small (TinyGPT), the first `POOL_SIZE` training examples, batches of
`BATCH_SIZE` for all three passes, CPU. Figures (examples/s, and each scoring rate over the
training rate) go to each benchmark's `extra_info` (see `--benchmark-json`) and are printed.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch.utils.data import TensorDataset

from step7bench.engine import build_optimizer
from step7bench.seeding import derive_seed
from step7bench.techniques.active_learning import ActiveLearningSelector
from step7bench.techniques.curriculum_learning import CurriculumLearningScheduler
from step7bench.workloads import get_workload

POOL_SIZE = 2048
BATCH_SIZE = 256  # the plug-ins' default score_batch_size
ROUNDS = 3


@pytest.fixture(scope="module")
def setting():
    workload = get_workload("grammar-lm", "small")
    torch.manual_seed(derive_seed(0, "model-init"))
    model = workload.build_model()
    pool = TensorDataset(workload.train.inputs[:POOL_SIZE], workload.train.targets[:POOL_SIZE])
    return workload, model, pool


def _train_one_pass(workload, model, pool: TensorDataset) -> None:
    """Forward + backward + AdamW step over the pool, `BATCH_SIZE` examples per step."""
    optimizer = build_optimizer(model, workload.hparams)
    inputs, targets = pool.tensors
    for start in range(0, POOL_SIZE, BATCH_SIZE):
        loss = workload.loss(model(inputs[start:start + BATCH_SIZE]), targets[start:start + BATCH_SIZE])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@pytest.fixture(scope="module")
def training_examples_per_s(setting) -> float:
    """Median training throughput over `ROUNDS` passes (on a copy, so the scored model is unchanged)."""
    workload, model, pool = setting
    replica = workload.build_model()
    replica.load_state_dict(model.state_dict())
    _train_one_pass(workload, replica, pool)  # warm-up
    times_s = []
    for _ in range(ROUNDS):
        start_s = time.perf_counter()
        _train_one_pass(workload, replica, pool)
        times_s.append(time.perf_counter() - start_s)
    return POOL_SIZE / statistics.median(times_s)


def _record(benchmark, name: str, training_rate: float | None) -> None:
    rate = POOL_SIZE / benchmark.stats.stats.median
    benchmark.extra_info["examples_per_s"] = rate
    line = f"\n{name}: {rate:,.0f} examples/s"
    if training_rate is not None:
        benchmark.extra_info["training_examples_per_s"] = training_rate
        benchmark.extra_info["ratio_to_training"] = rate / training_rate
        line += f" = {rate / training_rate:.2f}x training ({training_rate:,.0f} examples/s)"
    print(line)


def test_training_throughput(benchmark, setting):
    workload, model, pool = setting
    replica = workload.build_model()
    replica.load_state_dict(model.state_dict())
    benchmark.pedantic(_train_one_pass, args=(workload, replica, pool), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, "training (forward+backward+step)", None)


def test_curriculum_scoring_throughput(benchmark, setting, training_examples_per_s):
    _, model, pool = setting
    scheduler = CurriculumLearningScheduler(pool, model, "perplexity", device="cpu")
    difficulties = benchmark.pedantic(scheduler.compute_difficulties, kwargs={"batch_size": BATCH_SIZE},
                                      rounds=ROUNDS, warmup_rounds=1)
    assert difficulties.shape == (POOL_SIZE,)
    _record(benchmark, "curriculum perplexity scoring", training_examples_per_s)


@pytest.mark.parametrize("strategy", ["uncertainty", "entropy"])
def test_active_learning_scoring_throughput(benchmark, setting, training_examples_per_s, strategy):
    _, model, pool = setting
    selector = ActiveLearningSelector(model, strategy, device="cpu")
    indices, _ = benchmark.pedantic(selector.select_examples, args=(pool, POOL_SIZE // 2),
                                    kwargs={"batch_size": BATCH_SIZE}, rounds=ROUNDS, warmup_rounds=1)
    assert len(indices) == POOL_SIZE // 2
    _record(benchmark, f"active learning {strategy} scoring", training_examples_per_s)
