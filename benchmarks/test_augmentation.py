"""Augmentation throughput on grammar-lm small, CPU, in tokens per second.

- the vectorised batch form (`augment_lm_batch`, what the engine's transform stage runs), at
  the preset's batch size and at 8x that, every example augmented;
- the seed's per-sequence API (`LanguageDataAugmenter.augment_sequence`, one augmented copy per
  sequence), over the same sequences, for comparison;
- the batch form's time as a fraction of one training step on the same batch (forward,
  backward, AdamW), the overhead the technique adds per step at `augment_prob = 1`.

Tokens counted are those of the input sequences: the predicted (non-padding) tokens, words and
EOS, for the batch form; the words of each bare sentence for the per-sequence API. Figures go to
the benchmark's `extra_info` (see `--benchmark-json`) and are printed.
"""

from __future__ import annotations

import functools
import time

import pytest
import torch

from step7bench.engine import build_optimizer
from step7bench.techniques.data_augmentation import LanguageDataAugmenter, SynonymTable, augment_lm_batch
from step7bench.workloads import get_workload
from step7bench.workloads.base import IGNORE_INDEX

SYNONYM_PROB = DELETION_PROB = 0.1


@functools.cache
def _workload():
    return get_workload("grammar-lm", "small")


def _batch(size: int):
    return _workload().train.gather(torch.arange(size))


def _tokens(batch) -> int:
    return int((batch.targets != IGNORE_INDEX).sum())


def _report(benchmark, label: str, tokens: int) -> float:
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(tokens=tokens, tokens_per_s=tokens / seconds)
    print(f"\n{label}: {tokens / seconds / 1e6:.2f} M tokens/s ({seconds * 1e3:.3f} ms for {tokens} tokens)")
    return seconds


def _augment_batch(batch, table, generator):
    return augment_lm_batch(batch.inputs, batch.targets, table, synonym_prob=SYNONYM_PROB,
                            deletion_prob=DELETION_PROB, augment_prob=1.0, pad_id=0, generator=generator)


@pytest.mark.parametrize("batch_multiple", [1, 8])
def test_batch_form_tokens_per_second(benchmark, batch_multiple):
    workload = _workload()
    batch = _batch(workload.hparams.batch_size * batch_multiple)
    table = SynonymTable.from_rows(workload.synonym_classes, workload.num_classes)
    generator = torch.Generator().manual_seed(0)
    benchmark(_augment_batch, batch, table, generator)
    _report(benchmark, f"batch form, {len(batch)} sequences", _tokens(batch))


def test_per_sequence_api_tokens_per_second(benchmark):
    workload = _workload()
    batch = _batch(workload.hparams.batch_size)
    lengths = (batch.targets != IGNORE_INDEX).sum(dim=1) - 1  # words, without EOS
    sequences = [row[1:1 + n].tolist() for row, n in zip(batch.inputs, lengths.tolist(), strict=True)]
    augmenter = LanguageDataAugmenter(workload.vocab, SYNONYM_PROB, DELETION_PROB, max_augmentations=1,
                                      synonyms=workload.synonym_classes)

    def augment_all():
        return [augmenter.augment_sequence(sequence) for sequence in sequences]

    benchmark(augment_all)
    _report(benchmark, f"per-sequence API, {len(sequences)} sequences", int(lengths.sum()))


def _training_step_s(batch, repeats: int = 20) -> float:
    workload = _workload()
    torch.manual_seed(0)
    model = workload.build_model()
    optimizer = build_optimizer(model, workload.hparams)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        workload.loss(model(batch.inputs), batch.targets).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        best = min(best, time.perf_counter() - start)
    return best


def test_batch_form_against_a_training_step(benchmark):
    workload = _workload()
    batch = _batch(workload.hparams.batch_size)
    table = SynonymTable.from_rows(workload.synonym_classes, workload.num_classes)
    benchmark(_augment_batch, batch, table, torch.Generator().manual_seed(0))
    augment_s = _report(benchmark, "batch form at the preset's batch size", _tokens(batch))
    step_s = _training_step_s(batch)
    benchmark.extra_info.update(training_step_s=step_s, fraction_of_step=augment_s / step_s)
    print(f"training step {step_s * 1e3:.2f} ms; augmentation is {augment_s / step_s:.1%} of it")
