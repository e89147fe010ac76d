"""Curriculum learning: the seed's scheduler, pacing and difficulty math, the order stage and
its random control."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from step7bench.engine import GateStage, Plugin, run_trial
from step7bench.techniques import get_technique
from step7bench.techniques.curriculum_learning import (STRATEGIES, CurriculumLearningScheduler, PacedOrder, Pacing,
                                                       PaceClock, _Difficulty, admitted_count, easiest_first,
                                                       epoch_progress, length_difficulty, next_pace_rate,
                                                       next_token_targets, nll_difficulty, rarity_difficulty,
                                                       scoring_quota, token_mask, token_rarity)
from step7bench.workloads.base import IGNORE_INDEX
from step7bench.workloads.models import MLPClassifier, TinyGPT


def _short(workload, max_steps):
    """A copy of `workload` (sharing its data) with a shorter step budget."""
    short = copy.copy(workload)
    short.preset = dataclasses.replace(workload.preset, budget=dataclasses.replace(workload.budget, max_steps=max_steps))
    return short


@pytest.fixture(scope="module")
def lm_model(grammar_micro):
    torch.manual_seed(0)
    return TinyGPT(grammar_micro.num_classes, d_model=16, n_layers=1, n_heads=2, max_len=grammar_micro.seq_len)


# -- the seed document's example ----------------------------------------------------------------


def test_seed_example_admits_the_easiest_examples_first(grammar_micro, lm_model):
    train_dataset = TensorDataset(grammar_micro.train.inputs[:200], grammar_micro.train.targets[:200])
    model = lm_model

    from step7bench.techniques.curriculum_learning import CurriculumLearningScheduler

    # Create scheduler
    scheduler = CurriculumLearningScheduler(
        train_dataset,
        model,
        difficulty_metric='perplexity',
        device='cpu'
    )

    # Compute difficulties
    difficulties = scheduler.compute_difficulties(batch_size=32)

    # Get curriculum dataloader for epoch
    curriculum_loader = scheduler.get_curriculum_dataloader(
        epoch=0,
        total_epochs=10,
        batch_size=32,
        strategy='linear'  # or 'exponential', 'root'
    )

    assert difficulties.shape == (200,)
    with torch.no_grad():
        logits = model(grammar_micro.train.inputs[:200])
    torch.testing.assert_close(difficulties, nll_difficulty(logits, None, grammar_micro.train.targets[:200]))
    admitted = curriculum_loader.dataset.indices
    assert 0 < len(admitted) < 200
    rest = sorted(set(range(200)) - set(admitted))
    assert float(difficulties[admitted].max()) <= float(difficulties[rest].min())
    assert sum(len(inputs) for inputs, _ in curriculum_loader) == len(admitted)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_grows_from_a_strict_subset_to_the_full_set(strategy, grammar_micro, lm_model):
    dataset = TensorDataset(grammar_micro.train.inputs[:100], grammar_micro.train.targets[:100])
    scheduler = CurriculumLearningScheduler(dataset, lm_model, "length", device="cpu",
                                            pacing=Pacing(full_at=1.0))
    sizes = [len(scheduler.get_curriculum_dataloader(epoch, 5, strategy=strategy).dataset) for epoch in range(5)]
    assert sizes[0] < 100 and sizes[-1] == 100 and sizes == sorted(sizes)


def test_inputs_only_token_data_is_scored_on_its_next_tokens(grammar_micro, lm_model):
    inputs = grammar_micro.train.inputs[:40]
    scheduler = CurriculumLearningScheduler(TensorDataset(inputs), lm_model, "perplexity", device="cpu", pad_id=0)
    with torch.no_grad():
        expected = nll_difficulty(lm_model(inputs), None, next_token_targets(inputs, pad_id=0))
    torch.testing.assert_close(scheduler.compute_difficulties(batch_size=16), expected)


def test_loss_metric_on_a_classifier_is_the_cross_entropy(digits_micro):
    torch.manual_seed(0)
    model = MLPClassifier(64, 16, 10, depth=1)
    x, y = digits_micro.train.inputs[:50], digits_micro.train.targets[:50]
    scheduler = CurriculumLearningScheduler(TensorDataset(x, y), model, "loss", device="cpu")
    with torch.no_grad():
        expected = F.cross_entropy(model(x), y, reduction="none")
    torch.testing.assert_close(scheduler.compute_difficulties(), expected)


def test_dynamic_scheduler_holds_while_validation_stalls(grammar_micro, lm_model):
    dataset = TensorDataset(grammar_micro.train.inputs[:100], grammar_micro.train.targets[:100])
    scheduler = CurriculumLearningScheduler(dataset, lm_model, "length", device="cpu", dynamic=True)
    sizes = []
    for epoch, val_loss in enumerate([3.0, 2.0, 2.0, 2.0]):
        sizes.append(len(scheduler.get_curriculum_dataloader(epoch, 10).dataset))
        scheduler.observe_validation_loss(val_loss)
    static = [admitted_count(Pacing().fraction(e / 9), 100) for e in range(4)]
    assert sizes[:2] == static[:2] and sizes[2] > static[2]  # sped up after the loss improved
    assert sizes[3] == sizes[2]                                # held while it stalled


# -- pacing --------------------------------------------------------------------------------------

pacings = st.builds(Pacing, strategy=st.sampled_from(STRATEGIES),
                    start_fraction=st.one_of(st.none(), st.floats(0.001, 1.0)), full_at=st.floats(0.05, 1.0),
                    root_power=st.floats(1.0, 4.0), growth=st.floats(1.1, 4.0))


@settings(max_examples=100, deadline=None)
@given(pacings, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_pacing_is_monotone_bounded_and_full_from_full_at(pacing, a, b):
    low, high = sorted((a, b))
    assert 0.0 < pacing.fraction(low) <= pacing.fraction(high) <= 1.0
    assert pacing.fraction(0.0) == pytest.approx(pacing.c0)
    assert pacing.fraction(pacing.full_at) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.floats(0.001, 0.5), st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_root_pacing_admits_at_least_as_much_as_linear(c0, full_at, progress):
    linear, root = Pacing("linear", c0, full_at), Pacing("root", c0, full_at)
    assert root.fraction(progress) >= linear.fraction(progress) - 1e-12


def test_pacing_formulas_at_known_points():
    assert Pacing("linear", 0.01, 0.5).fraction(0.25) == pytest.approx(0.01 + 0.99 * 0.5)
    assert Pacing("root", 0.01, 0.5).fraction(0.25) == pytest.approx(math.sqrt(0.0001 + 0.9999 * 0.5))
    # Hacohen & Weinshall: s = 0.04, growth 1.9 needs 6 stairs to reach 1 (0.04 * 1.9^5 < 1).
    exponential = Pacing("exponential", None, 0.6)
    assert [exponential.fraction(k * 0.1) for k in range(6)] == pytest.approx([0.04 * 1.9 ** k for k in range(6)])


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(1, 10000), st.integers(1, 64))
def test_admitted_count_is_bounded(fraction, n, minimum):
    count = admitted_count(fraction, n, minimum)
    assert min(n, minimum) <= count <= n and count >= min(n, math.ceil(fraction * n))


def test_epoch_progress_reaches_one_at_the_last_epoch():
    assert [epoch_progress(e, 5) for e in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert epoch_progress(0, 1) == 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=50), st.integers(0, 100))
def test_easiest_first_sorts_and_breaks_ties_at_random(values, seed):
    difficulties = torch.tensor(values, dtype=torch.float)
    order = easiest_first(difficulties, torch.Generator().manual_seed(seed))
    assert sorted(order.tolist()) == list(range(len(values)))
    assert torch.all(difficulties[order][:-1] <= difficulties[order][1:])


# -- dynamic difficulty adjustment -----------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 4.0), st.booleans(), st.floats(1.0, 3.0), st.floats(1.0, 8.0))
def test_pace_rate_speeds_up_on_improvement_and_holds_on_stall(rate, improved, speedup, max_rate):
    new_rate = next_pace_rate(rate, improved, speedup=speedup, max_rate=max_rate)
    if not improved:
        assert new_rate == 0.0
    elif rate == 0.0:
        assert new_rate == 1.0
    else:
        assert new_rate == min(max_rate, rate * speedup)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.1, 5.0), min_size=1, max_size=20), st.floats(0.1, 1.0))
def test_pace_clock_is_monotone_and_has_everything_in_play_by_the_end(val_losses, full_at):
    clock = PaceClock(full_at)
    times = []
    for k, val_loss in enumerate(val_losses):
        times.append(clock.time_at(k / len(val_losses)))
        clock.observe(val_loss)
    assert times == sorted(times)
    assert clock.time_at(1.0) >= full_at


def test_pace_clock_holds_at_its_floor_while_stalled():
    clock = PaceClock(0.5)
    clock.observe(1.0)  # the first check only sets the reference
    assert clock.time_at(0.2) == pytest.approx(0.2)
    clock.observe(1.0)  # no improvement: hold
    assert clock.time_at(0.6) == pytest.approx(0.3)  # the floor progress * full_at, not 0.6


# -- difficulty metrics --------------------------------------------------------------------------


def test_length_and_rarity_follow_their_definitions():
    tokens = torch.tensor([[5, 6, 0], [5, 5, 7]])
    targets = torch.tensor([[1, 1, IGNORE_INDEX], [1, 1, 1]])
    mask = token_mask(tokens, targets, pad_id=None)
    torch.testing.assert_close(length_difficulty(mask), torch.tensor([2.0, 3.0]))
    rarity = token_rarity(tokens, mask)  # counts over real tokens: 5 x3, 6 x1, 7 x1 of 5
    neg_log = {5: -math.log(3 / 5), 6: -math.log(1 / 5), 7: -math.log(1 / 5)}
    expected = torch.tensor([neg_log[5] + neg_log[6], 2 * neg_log[5] + neg_log[7]])
    torch.testing.assert_close(rarity_difficulty(tokens, mask, rarity), expected)
    assert torch.equal(token_mask(tokens, None, pad_id=0), tokens != 0)


def test_next_token_targets_shift_and_ignore_padding():
    inputs = torch.tensor([[1, 5, 6, 0, 0]])
    assert next_token_targets(inputs, pad_id=0).tolist() == [[5, 6, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


# -- bad arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "name"), [
    (lambda d, m: CurriculumLearningScheduler(d, m, "difficulty"), "difficulty_metric"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="tpu"), "device"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="cpu").compute_difficulties(batch_size=0), "batch_size"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="cpu").get_curriculum_dataloader(3, 3), "epoch"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="cpu").get_curriculum_dataloader(0, 0), "total_epochs"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="cpu").get_curriculum_dataloader(0, 3, strategy="step"),
     "strategy"),
    (lambda d, m: CurriculumLearningScheduler(d, m, "length", device="cpu").compute_difficulties(),
     "difficulty_metric"),
    (lambda d, m: CurriculumLearningScheduler(d, m, device="cpu").observe_validation_loss(1.0), "dynamic"),
    (lambda d, m: Pacing(start_fraction=0.0), "start_fraction"),
    (lambda d, m: Pacing(start_fraction=1.5), "start_fraction"),
    (lambda d, m: Pacing(full_at=0.0), "full_at"),
    (lambda d, m: Pacing(growth=1.0), "growth"),
])
def test_bad_arguments_name_the_argument(call, name):
    dataset = TensorDataset(torch.rand(10, 64), torch.randint(10, (10,)))
    with pytest.raises(ValueError, match=name):
        call(dataset, MLPClassifier(64, 8, 10, depth=1))


@pytest.mark.parametrize(("config", "key"), [
    ({"difficulty_metric": "length"}, "difficulty_metric"), ({"difficulty_metric": "size"}, "difficulty_metric"),
    ({"strategy": "step"}, "strategy"), ({"full_at": 2.0}, "full_at"),
    ({"reference_fraction": 0.0}, "reference_fraction"), ({"dynamic": True, "dynamic_speedup": 0.5}, "dynamic_speedup"),
    ({"pace": 1}, "pace"), ({"candidate_pool": 0}, "candidate_pool"), ({"candidate_pool": "most"}, "candidate_pool"),
])
def test_bad_configuration_names_the_key(config, key, digits_micro):
    with pytest.raises(ValueError, match=key):
        get_technique("curriculum").plugin(digits_micro, config)


# -- the engine plug-in ------------------------------------------------------------------------------


class _FirstBatchRecorder(GateStage):
    """Lets every batch through, keeping the ids of the first one."""

    first_ids: torch.Tensor | None = None

    def gate(self, ctx, batch):
        if self.first_ids is None:
            self.first_ids = batch.ids.clone()
        return batch


@pytest.mark.parametrize(("workload_name", "metric"), [
    ("digits", "perplexity"), ("grammar-lm", "perplexity"), ("grammar-lm", "length"), ("grammar-lm", "rarity")])
def test_plugin_trains_charged_and_its_control_costs_nothing(workload_name, metric, digits_micro, grammar_micro):
    workload = _short(digits_micro if workload_name == "digits" else grammar_micro, max_steps=10)
    config = {"difficulty_metric": metric, "dynamic": True, "candidate_pool": "all"}
    result = run_trial(workload, 0, [get_technique("curriculum").plugin(workload, config)], device="cpu")
    control = run_trial(workload, 0, [get_technique("curriculum_random").plugin(workload, config)], device="cpu")
    assert result.error is None and control.error is None
    stats = result.technique_stats["curriculum"]
    assert stats["difficulty_metric"] == metric
    assert stats["admitted_fraction"] == control.technique_stats["curriculum_random"]["admitted_fraction"]
    assert stats["activity"] == control.technique_stats["curriculum_random"]["activity"]  # the same pacing
    if metric == "perplexity":  # the reference's training and its scoring pass, all charged
        batch_size = workload.hparams.batch_size
        assert stats["reference_steps"] == 1 and stats["examples_scored"] == len(workload.train)
        assert result.ledger.examples_overhead == batch_size * stats["reference_steps"] + stats["examples_scored"]
        assert result.ledger.flops_overhead > 0 and result.ledger.wall_overhead_s > 0
    assert control.ledger.examples_overhead == control.ledger.flops_overhead == 0


def test_first_batch_holds_the_easiest_examples(grammar_micro):
    workload = _short(grammar_micro, max_steps=2)
    recorder = _FirstBatchRecorder()
    plugins = [get_technique("curriculum").plugin(workload, {"difficulty_metric": "length"}),
               Plugin("recorder", gate=recorder)]
    assert run_trial(workload, 0, plugins, device="cpu").error is None
    lengths = (workload.train.targets != IGNORE_INDEX).sum(dim=1)
    batch_size = workload.hparams.batch_size  # 1% of the data is fewer: one batch's worth is admitted
    assert int(lengths[recorder.first_ids].max()) <= int(lengths.sort().values[batch_size - 1])


def test_stacked_under_active_learning_scores_only_the_selection(digits_micro):
    workload = _short(digits_micro, max_steps=12)
    plugins = [get_technique("active_learning").plugin(workload, {"rounds": 2}),
               get_technique("curriculum").plugin(workload, {"candidate_pool": "all"})]
    result = run_trial(workload, 0, plugins, device="cpu")
    assert result.error is None
    selected = result.technique_stats["active_learning"]["selected_examples"]
    assert result.technique_stats["curriculum"]["examples_scored"] == selected < len(workload.train)
    # By default each round tops the scored examples up to the quota of its step, no further:
    # the seed set (135) at step 0 (quota 12 x 32), then up to 9 x 32 at the first round (step 3),
    # and nothing at the second (step 6: quota 6 x 32, already met).
    plugins = [get_technique("active_learning").plugin(workload, {"rounds": 2}),
               get_technique("curriculum").plugin(workload)]
    result = run_trial(workload, 0, plugins, device="cpu")
    assert result.error is None
    assert result.technique_stats["curriculum"]["examples_scored"] == 9 * 32 < selected


class _RecordedDifficulty(_Difficulty):
    """Difficulty = the example's id (lower id = easier), noting every id scored."""

    def __init__(self):
        self.scored: list[int] = []

    def of(self, ctx, ids):
        self.scored.extend(ids.tolist())
        return ids.float()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 100_000), st.integers(0, 100_000), st.one_of(st.none(), st.floats(0.1, 4.0)))
def test_scoring_quota_is_sized_to_the_draws_left(in_play, draws_left, factor):
    quota = scoring_quota(in_play, draws_left, factor)
    assert quota == (in_play if factor is None else min(in_play, math.ceil(factor * draws_left)))


@pytest.mark.parametrize(("factor", "scored"), [(1.0, 10 * 32), (0.5, 5 * 32), (None, 2000)])
def test_only_a_quota_is_scored_and_unscored_examples_rank_after_the_scored(grammar_micro, factor, scored):
    workload = _short(grammar_micro, max_steps=10)
    difficulty, recorder = _RecordedDifficulty(), _FirstBatchRecorder()
    order = PacedOrder(Pacing("linear", 0.01, 0.5), difficulty, None, factor)
    plugins = [Plugin("curriculum", order=order), Plugin("recorder", gate=recorder)]
    assert run_trial(workload, 0, plugins, device="cpu").error is None
    assert len(difficulty.scored) == len(set(difficulty.scored)) == scored
    ranked = order._ranked.tolist()
    assert ranked[:scored] == sorted(difficulty.scored)  # the scored ones, easiest (lowest id) first
    assert set(ranked[scored:]) == set(range(2000)) - set(difficulty.scored)  # then the rest
    assert set(recorder.first_ids.tolist()) <= set(ranked[:32])  # the first batch: the admitted easiest


@pytest.mark.parametrize(("start_fraction", "fired"), [(0.01, True), (1.0, False)])
def test_activity_fires_only_when_a_step_saw_a_strict_subset(grammar_micro, start_fraction, fired):
    workload = _short(grammar_micro, max_steps=10)
    config = {"difficulty_metric": "length", "start_fraction": start_fraction}
    stats = run_trial(workload, 0, [get_technique("curriculum").plugin(workload, config)],
                      device="cpu").technique_stats["curriculum"]
    assert stats["activity"]["fired"] is fired
    if fired:  # linear from 1% to all at half the budget: steps 0-4 of the 10 before that
        assert stats["steps_on_a_subset"] == 5 and stats["activity"]["value"] == 0.5
        # 1% of 2,000 is 20 examples, fewer than a batch: a batch's worth (32) is admitted
        assert stats["activity"]["summary"] == "admitted 1.6% of the data at step 0; 50% of steps saw a strict subset"
    else:
        assert stats["activity"] == {"fired": False, "value": 0.0,
                                     "summary": "admitted 100% of the data at step 0; 0% of steps saw a strict subset"}
