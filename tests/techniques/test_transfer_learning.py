"""Transfer learning: the seed's example, the pure helpers, the pretraining cache and the init
stage through the engine (pretraining charged under its own heading, hit or miss)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from step7bench.engine import Plugin, run_trial
from step7bench.engine.stages import AllExamples
from step7bench.measure.fingerprint import device_fingerprint
from step7bench.techniques import get_technique, transfer_learning
from step7bench.techniques.transfer_learning import (DEFAULTS, EpochMetrics, Pretrained, TransferLearningPipeline,
                                                     cache_dir, measuring_conditions, pretraining_key,
                                                     pretraining_steps, split_batch)
from step7bench.workloads.base import Budget, ExampleDataset
from step7bench.workloads.digits import Digits
from step7bench.workloads.models import TinyGPT

PRETRAIN_STEPS = 4
BUDGET = Budget(4, math.inf)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEP7BENCH_CACHE", str(tmp_path))


def _classification_data(seed: int, n: int = 48) -> ExampleDataset:
    generator = torch.Generator().manual_seed(seed)
    return ExampleDataset(torch.randn(n, 6, generator=generator), torch.randint(0, 3, (n,), generator=generator))


# -- the seed's example ---------------------------------------------------------------------


def test_seed_example_runs_in_a_users_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    pretrain_dataset, finetune_dataset = _classification_data(1), _classification_data(2)

    # The seed's block, with only the import path and the device changed.
    from step7bench.techniques.transfer_learning import TransferLearningPipeline

    # Create pipeline
    pipeline = TransferLearningPipeline(model, device='cpu')

    # Pretrain
    pipeline.pretrain(
        pretrain_dataset,
        optimizer,
        criterion,
        num_epochs=5,
        batch_size=32
    )

    # Finetune
    pipeline.finetune(
        finetune_dataset,
        optimizer,
        criterion,
        num_epochs=3,
        batch_size=32,
        learning_rate=1e-4
    )

    assert [group["lr"] for group in optimizer.param_groups] == [1e-4]


def test_pipeline_returns_per_epoch_metrics_and_learns():
    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-2)
    pipeline = TransferLearningPipeline(model, device="cpu")
    metrics = pipeline.pretrain(_classification_data(1), optimizer, nn.CrossEntropyLoss(), num_epochs=4,
                                batch_size=16)
    assert [m.epoch for m in metrics] == [0, 1, 2, 3]
    assert all(isinstance(m, EpochMetrics) and m.examples == 48 and m.wall_s >= 0 for m in metrics)
    assert metrics[-1].mean_loss < metrics[0].mean_loss


def test_pipeline_finetunes_a_language_model_on_bare_token_sequences():
    torch.manual_seed(0)
    model = TinyGPT(vocab_size=11, d_model=16, n_layers=1, n_heads=2, max_len=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sequences = torch.randint(0, 11, (20, 9), generator=torch.Generator().manual_seed(3))
    metrics = TransferLearningPipeline(model, device="cpu").finetune(
        sequences, optimizer, nn.CrossEntropyLoss(), num_epochs=1, batch_size=8)
    assert metrics[0].examples == 20 and math.isfinite(metrics[0].mean_loss)


@pytest.mark.parametrize(("call", "named"), [
    (lambda p, o, c, d: p.pretrain(d, o, c, num_epochs=0), "num_epochs"),
    (lambda p, o, c, d: p.pretrain(d, o, c, batch_size=0), "batch_size"),
    (lambda p, o, c, d: p.finetune(d, o, c, learning_rate=0.0), "learning_rate"),
])
def test_pipeline_rejects_bad_arguments(call, named):
    model = nn.Linear(6, 3)
    pipeline = TransferLearningPipeline(model, device="cpu")
    with pytest.raises(ValueError, match=named):
        call(pipeline, torch.optim.SGD(model.parameters(), lr=0.1), nn.CrossEntropyLoss(), _classification_data(1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is missing")
def test_pipeline_names_a_missing_device():
    with pytest.raises(ValueError, match="device"):
        TransferLearningPipeline(nn.Linear(2, 2))  # the seed's default, 'cuda'


# -- pure helpers ---------------------------------------------------------------------------


@given(st.integers(1, 8), st.integers(2, 12))
def test_split_batch_shifts_bare_sequences_by_one(batch, length):
    tokens = torch.arange(batch * length).view(batch, length)
    inputs, targets = split_batch(tokens)
    assert inputs.shape == targets.shape == (batch, length - 1)
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_split_batch_keeps_pairs_and_rejects_other_shapes():
    pair = (torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    assert split_batch(pair) == pair
    with pytest.raises(ValueError, match="parts"):
        split_batch((torch.zeros(1), torch.zeros(1), torch.zeros(1)))
    with pytest.raises(ValueError, match="token-id"):
        split_batch(torch.zeros(2, 3))


@given(st.one_of(st.none(), st.floats(0.01, 5.0)), st.one_of(st.none(), st.integers(1, 10_000)),
       st.integers(1, 10_000))
def test_pretraining_length_is_a_count_or_a_share_of_the_budget(fraction, steps, budget_steps):
    config = {**DEFAULTS, "pretrain_fraction": fraction, "pretrain_steps": steps}
    length = pretraining_steps(config, budget_steps)
    if fraction is not None:  # a fraction wins over a count (a grid point over a suite's setting)
        assert length == max(1, round(fraction * budget_steps)) >= 1
    else:
        assert length == (budget_steps if steps is None else steps)


def test_pretraining_key_changes_with_every_part(digits_micro):
    here = {"hardware_class": "cpu:x", "torch_threads": 2, "torch_version": "2.0"}
    key = pretraining_key(digits_micro, 0, here, 10)
    assert key == pretraining_key(Digits("micro"), 0, dict(here), 10)
    others = {pretraining_key(digits_micro, 1, here, 10), pretraining_key(digits_micro, 0, here, 11),
              pretraining_key(Digits("small"), 0, here, 10), pretraining_key(Digits("micro", data_seed=1), 0, here, 10),
              *(pretraining_key(digits_micro, 0, {**here, name: "other"}, 10) for name in here)}
    assert key not in others and len(others) == 4 + len(here)


def test_measuring_conditions_name_the_hardware_threads_and_torch_build():
    conditions = measuring_conditions(torch.device("cpu"))
    assert conditions == {"hardware_class": device_fingerprint("cpu")["hardware_class"],
                          "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__}


# -- the engine plug-in ---------------------------------------------------------------------


class _WeightsAtStart(AllExamples):
    """Select stage that records the model's weights and rate when training starts (setup runs
    after init, before the schedule's)."""

    def setup(self, ctx):
        super().setup(ctx)
        self.weights = {name: t.detach().clone() for name, t in ctx.model.state_dict().items()}
        self.lr = ctx.optimizer.param_groups[0]["lr"]


def _transfer_trial(workload, **config):
    recorder = _WeightsAtStart()
    plugin = get_technique("transfer").plugin(workload, {"pretrain_steps": PRETRAIN_STEPS, **config})
    result = run_trial(workload, 0, [plugin, Plugin("recorder", select=recorder)], device="cpu", budget=BUDGET)
    assert result.status == "missed", result.error
    return result, recorder


PRETRAIN_FIELDS = ("steps_pretrain", "examples_pretrain", "flops_pretrain")


def test_plugin_pretrains_once_then_reuses_the_cache_at_full_charge(digits_micro):
    first, recorder = _transfer_trial(digits_micro)
    second, _ = _transfer_trial(digits_micro)
    stats = first.technique_stats["transfer"], second.technique_stats["transfer"]
    assert [s["pretrain_cache_hit"] for s in stats] == [False, True]
    batch = digits_micro.hparams.batch_size
    assert first.ledger.steps_pretrain == PRETRAIN_STEPS and first.ledger.examples_pretrain == PRETRAIN_STEPS * batch
    assert first.ledger.flops_pretrain > 0 and first.ledger.wall_pretrain_s > 0
    for name in (*PRETRAIN_FIELDS, "wall_pretrain_s", "energy_pretrain_j"):
        assert getattr(second.ledger, name) == getattr(first.ledger, name)
    # a hit changes nothing downstream: same weights, same training
    assert [p.val_loss for p in second.curve] == [p.val_loss for p in first.curve]
    (entry,) = cache_dir().glob("*.pt")
    cached = Pretrained.load(entry)
    assert all(torch.equal(recorder.weights[name], cached.state_dict[name]) for name in cached.state_dict)
    assert first.ledger.steps == BUDGET.max_steps  # finetuning is counted apart from pretraining


@pytest.mark.parametrize("change", ["threads", "hardware"])
def test_a_cache_entry_measured_under_other_conditions_is_a_miss(digits_micro, monkeypatch, change):
    first, _ = _transfer_trial(digits_micro)
    if change == "threads":
        threads = torch.get_num_threads()
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    else:
        monkeypatch.setattr(transfer_learning, "device_fingerprint", lambda device: {"hardware_class": "elsewhere"})
    second, _ = _transfer_trial(digits_micro)
    assert second.technique_stats["transfer"]["pretrain_cache_hit"] is False
    assert len(list(cache_dir().glob("*.pt"))) == 2


def test_a_pretraining_fraction_counts_the_trials_budget_and_activity_says_how_long(digits_micro):
    recorder = _WeightsAtStart()
    # the fraction wins over a suite's step count, as when the harness lays a grid point over it
    plugin = get_technique("transfer").plugin(digits_micro, {"pretrain_steps": 200, "pretrain_fraction": 1.5})
    result = run_trial(digits_micro, 0, [plugin, Plugin("recorder", select=recorder)], device="cpu", budget=BUDGET)
    assert result.status == "missed", result.error
    stats = result.technique_stats["transfer"]
    assert result.ledger.steps_pretrain == stats["pretrain_steps"] == 6  # 1.5 x the 4-step budget
    assert stats["pretrain_budget_fraction"] == 1.5
    assert stats["activity"] == {"fired": True, "summary": "pretrained 6 steps", "value": 6.0}


def test_stats_before_init_say_nothing_was_pretrained(digits_micro):
    stats = get_technique("transfer").plugin(digits_micro).init.stats()
    assert stats == {"activity": {"fired": False, "summary": "pretrained 0 steps", "value": 0.0}}


def test_plugin_scales_the_finetuning_rate_and_can_skip_the_cache(digits_micro):
    result, recorder = _transfer_trial(digits_micro, finetune_lr_scale=0.1, cache=False)
    assert recorder.lr == pytest.approx(0.1 * digits_micro.hparams.lr)
    assert result.technique_stats["transfer"]["pretrain_cache_hit"] is False
    assert not cache_dir().exists()


class _NoSource(Digits):
    def _build_data(self):
        return {**super()._build_data(), "source_train": None, "source_val": None}


@pytest.mark.parametrize(("config", "named"), [
    ({"pretrain_steps": 0}, "pretrain_steps"),
    ({"pretrain_fraction": 0.0}, "pretrain_fraction"),
    ({"pretrain_fraction": "long"}, "pretrain_fraction"),
    ({"finetune_lr_scale": 0.0}, "finetune_lr_scale"),
    ({"cache": "yes"}, "cache"),
])
def test_plugin_rejects_bad_config(digits_micro, config, named):
    with pytest.raises(ValueError, match=named):
        get_technique("transfer").plugin(digits_micro, config)


def test_plugin_needs_source_data():
    with pytest.raises(ValueError, match="source data"):
        get_technique("transfer").plugin(_NoSource("micro"))
