"""Difficulty prediction: the seed's function, the predictor and skip rule, the plug-in and its control."""

from __future__ import annotations

import dataclasses
import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from torch import nn

from step7bench.engine import run_trial
from step7bench.techniques import technique_specs
from step7bench.techniques.difficulty_prediction import (JUDGE_EVERY_PAIRS, SkipRanker, SkipRule, StaleLossPredictor,
                                                         easiest, per_example_criterion, predictor_beats_stale_loss,
                                                         skip_count, spearman, train_with_difficulty_prediction)
from step7bench.workloads import get_workload
from step7bench.workloads.base import ExampleDataset


@functools.cache
def _grammar_micro():
    return get_workload("grammar-lm", "micro")


def _head(dataset: ExampleDataset, n: int) -> ExampleDataset:
    return ExampleDataset(dataset.inputs[:n], dataset.targets[:n])


def _digits_setup(digits, n: int = 96):
    torch.manual_seed(0)
    model = digits.build_model()
    train = digits.train
    return model, torch.utils.data.TensorDataset(train.inputs[:n], train.targets[:n])


# -- the seed document's example ---------------------------------------------------------------
def test_seed_example_on_digits(digits_micro):
    model, train_dataset = _digits_setup(digits_micro)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()

    from step7bench.techniques.difficulty_prediction import train_with_difficulty_prediction

    # Train with difficulty-based skipping
    metrics = train_with_difficulty_prediction(
        model,
        train_dataset,
        optimizer,
        criterion,
        num_epochs=5,
        skip_threshold=0.5
    )

    assert len(metrics["epoch_loss"]) == 5 and all(math.isfinite(loss) for loss in metrics["epoch_loss"])
    assert metrics["examples_skipped"][0] == 0  # nothing has a stale loss in the first epoch
    for seen, skipped, rate in zip(metrics["examples_seen"], metrics["examples_skipped"], metrics["skip_rate"],
                                   strict=True):
        assert seen + skipped == 96 and 0.0 <= rate <= 0.5 and rate == skipped / 96
    assert metrics["total_examples_skipped"] > 0 and metrics["predictor_wall_s"] > 0
    assert metrics["optimizer_steps"] == 5 * 3  # no batch is skipped whole at a threshold of 0.5
    assert -1.0 <= metrics["predictor_spearman"][1] <= 1.0
    assert set(metrics["ranking"]) <= {"predictor", "stale_loss"} and len(metrics["ranking"]) == 5


def test_seed_function_trains_a_sequence_model():
    workload = _grammar_micro()
    torch.manual_seed(0)
    model = workload.build_model()
    metrics = train_with_difficulty_prediction(model, _head(workload.train, 64), torch.optim.AdamW(model.parameters()),
                                               nn.CrossEntropyLoss(), num_epochs=3, skip_threshold=0.25,
                                               batch_size=16, device="cpu")
    assert metrics["examples_skipped"] == [0, 16, 16]
    assert metrics["epoch_loss"][-1] < metrics["epoch_loss"][0]


def test_skip_threshold_zero_trains_everything(digits_micro):
    model, dataset = _digits_setup(digits_micro, n=40)
    metrics = train_with_difficulty_prediction(model, dataset, torch.optim.SGD(model.parameters(), lr=0.1),
                                               nn.CrossEntropyLoss(), num_epochs=2, skip_threshold=0.0)
    assert metrics["total_examples_skipped"] == 0 and metrics["total_examples_seen"] == 80


@pytest.mark.parametrize(("kwargs", "name"), [({"skip_threshold": 1.5}, "skip_threshold"),
                                              ({"skip_threshold": -0.1}, "skip_threshold"),
                                              ({"num_epochs": 0}, "num_epochs"), ({"batch_size": 0}, "batch_size"),
                                              ({"max_consecutive_skips": 0}, "max_consecutive_skips")])
def test_bad_arguments_name_themselves(digits_micro, kwargs, name):
    model, dataset = _digits_setup(digits_micro, n=8)
    with pytest.raises(ValueError, match=name):
        train_with_difficulty_prediction(model, dataset, torch.optim.SGD(model.parameters(), lr=0.1),
                                         nn.CrossEntropyLoss(), **kwargs)


def test_inputs_only_dataset_and_reductionless_criterion_are_refused(digits_micro):
    model, dataset = _digits_setup(digits_micro, n=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="train_dataset"):
        train_with_difficulty_prediction(model, [row for row, _ in dataset], optimizer, nn.CrossEntropyLoss())
    with pytest.raises(ValueError, match="criterion"):
        train_with_difficulty_prediction(model, dataset, optimizer, lambda logits, targets: logits.sum())


def test_per_example_criterion_keeps_the_criterion_settings():
    logits, targets = torch.randn(3, 4, 5), torch.tensor([[1, 2, -1, -1], [0, 0, 0, 0], [4, -1, -1, -1]])
    losses = per_example_criterion(nn.CrossEntropyLoss(ignore_index=-1, label_smoothing=0.1))(logits, targets)
    expected = [nn.functional.cross_entropy(logits[i][targets[i] != -1], targets[i][targets[i] != -1],
                                            label_smoothing=0.1) for i in range(3)]
    assert torch.allclose(losses, torch.stack(expected))
    mse = per_example_criterion(nn.MSELoss())(torch.ones(2, 3), torch.zeros(2, 3))
    assert mse.shape == (2, 3)


# -- pure functions and the predictor ---------------------------------------------------------------
@given(batch=st.integers(0, 256), threshold=st.floats(0.0, 1.0), eligible=st.integers(0, 256))
def test_skip_count_bounds(batch, threshold, eligible):
    count = skip_count(batch, threshold, eligible)
    assert 0 <= count <= eligible and count <= threshold * batch + 1e-6
    assert count == eligible or count > threshold * batch - 1  # as many as the threshold allows


@given(values=st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=40), data=st.data())
def test_easiest_picks_the_lowest_eligible(values, data):
    predicted = torch.tensor(values, dtype=torch.float64)
    eligible = torch.tensor(data.draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values))))
    count = data.draw(st.integers(0, int(eligible.sum())))
    chosen = easiest(predicted, eligible, count)
    assert len(set(chosen.tolist())) == count and bool(eligible[chosen].all())
    rest = predicted[eligible & ~torch.isin(torch.arange(len(values)), chosen)]
    if count and rest.numel():
        assert predicted[chosen].max() <= rest.min()


@settings(deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(-100, 100), st.floats(-100, 100)), min_size=3, max_size=50, unique_by=(
    lambda p: p[0], lambda p: p[1])))
def test_spearman_matches_scipy_without_ties(pairs):
    a, b = (torch.tensor(column, dtype=torch.float64) for column in zip(*pairs, strict=True))
    assert spearman(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-9)


def test_predictor_has_no_prediction_before_a_loss_and_learns_a_trend():
    predictor = StaleLossPredictor(torch.ones(64, dtype=torch.long))
    ids = torch.arange(64)
    assert torch.isnan(predictor.predict(ids, 0)).all()
    base = torch.linspace(0.5, 3.0, 64, dtype=torch.float64)
    for visit in range(10):  # each example's loss falls by a fifth between visits
        predictor.observe(ids, base * 0.8**visit, step=visit)
    actual = base * 0.8**10
    error = (predictor.predict(ids, 10) - actual).abs().max()
    assert error < 0.2 * (predictor.stale_loss - actual).abs().max()  # beats the bare stale loss


def _ranker_fed(loss_of_visit, n=64, visits=12, seed=0):
    """A SkipRanker that saw every one of `n` examples (lengths 1..n) `visits` times, the loss of
    each visit from `loss_of_visit(visit, lengths, generator)`; the rate it judged on included."""
    lengths = torch.arange(1, n + 1)
    ranker = SkipRanker(lengths, ridge=1.0, forget=0.99, holdout_fraction=0.2,
                        generator=torch.Generator().manual_seed(seed))
    generator, ids = torch.Generator().manual_seed(seed + 1), torch.arange(n)
    for visit in range(visits):
        predicted = ranker.predictor.predict(ids, visit)
        ranker.observe(ids, predicted, loss_of_visit(visit, lengths.double(), generator), visit)
    return ranker


def test_the_predictor_ranks_only_when_it_beats_the_stale_loss_on_held_out_pairs():
    # a loss set by the example's length plus fresh noise each visit: the last measurement is a
    # noisy ranker, the fitted length term a better one
    noisy = _ranker_fed(lambda visit, lengths, g: lengths / 64 + 0.5 * torch.randn(len(lengths), generator=g,
                                                                                  dtype=torch.float64))
    figures = noisy.figures()
    assert noisy.held_out.total >= JUDGE_EVERY_PAIRS
    assert figures["predictor_spearman"] > figures["stale_loss_spearman"] and figures["ranking"] == "predictor"
    ids = torch.arange(64)
    predicted = noisy.predictor.predict(ids, 12)
    assert torch.equal(noisy.scores(predicted, ids), predicted)
    # a loss that repeats itself: the stale loss is already perfect, so the predictor cannot be higher
    repeating = _ranker_fed(lambda visit, lengths, g: lengths.flip(0) / 64)
    assert repeating.figures()["ranking"] == "stale_loss" and not repeating.uses_predictor
    assert torch.equal(repeating.scores(predicted, ids), repeating.predictor.stale_loss[ids])


def test_held_out_pairs_are_never_fitted():
    ranker = SkipRanker(torch.ones(8, dtype=torch.long), ridge=1.0, forget=1.0, holdout_fraction=0.5,
                        generator=torch.Generator().manual_seed(0))
    ids = torch.arange(8)
    ranker.observe(ids, torch.full((8,), math.nan, dtype=torch.float64), torch.ones(8), 0)  # first visit: no pairs
    predicted = ranker.predictor.predict(ids, 1)
    held_predicted, held_stale, held_measured = ranker.observe(ids, predicted, torch.full((8,), 2.0), 1)
    fitted = 8 - len(held_measured)
    assert 0 < len(held_measured) < 8 and ranker.held_out.total == len(held_measured)
    assert float(ranker.predictor._gram[0, 0]) == fitted  # the intercept feature counts the fitted pairs only
    assert torch.equal(held_stale, torch.ones(len(held_measured), dtype=torch.float64))


@given(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_the_predictor_wins_only_when_strictly_higher_and_defined(predictor, stale):
    assert predictor_beats_stale_loss({"predictor_spearman": predictor, "stale_loss_spearman": stale}) == (
        predictor > stale)
    assert not predictor_beats_stale_loss({"predictor_spearman": math.nan, "stale_loss_spearman": stale})
    assert not predictor_beats_stale_loss({"predictor_spearman": predictor, "stale_loss_spearman": math.nan})


@settings(max_examples=30, deadline=None)
@given(threshold=st.floats(0.0, 1.0), max_skips=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_skip_rule_never_skips_unseen_examples_or_too_often_in_a_row(threshold, max_skips, seed):
    generator = torch.Generator().manual_seed(seed)
    rule = SkipRule(20, threshold, max_skips)
    ever_kept, in_a_row = torch.zeros(20, dtype=torch.bool), torch.zeros(20, dtype=torch.long)
    for _ in range(30):
        ids = torch.randperm(20, generator=generator)[:8]
        keep = rule.keep_mask(ids, lambda eligible, count: eligible.nonzero().squeeze(1)[:count])
        assert bool(keep[~ever_kept[ids]].all())
        in_a_row[ids[~keep]] += 1
        in_a_row[ids[keep]] = 0
        ever_kept[ids[keep]] = True
        assert int(in_a_row.max()) <= max_skips
    assert rule.skipped == rule.examples - int(rule._admitted.sum())


# -- the engine plug-in and its control -------------------------------------------------------------
def _trial(workload, names, train, steps=12, config=None):
    plugins = [technique_specs()[name].plugin(workload, (config or {}).get(name)) for name in names]
    return run_trial(workload, seed=0, plugins=plugins, device="cpu", train=train,
                     val=_head(workload.val, 64), budget=dataclasses.replace(workload.budget, max_steps=steps))


@pytest.mark.parametrize("name", ["difficulty_prediction", "difficulty_prediction_random"])
def test_plugin_and_control_skip_and_book_overhead(digits_micro, name):
    result = _trial(digits_micro, [name], _head(digits_micro.train, 64), config={name: {"skip_threshold": 0.5}})
    assert result.status == "missed", result.error
    stats, ledger = result.technique_stats[name], result.ledger
    assert stats["examples_skipped"] > 0 and 0 < stats["skip_rate"] <= 0.5
    assert ledger.examples_forward == ledger.examples_backward == stats["examples_gated"] - stats["examples_skipped"]
    assert ledger.wall_overhead_s > 0
    if name == "difficulty_prediction":
        # the predictor learned from every training forward that had a prediction, and was judged
        # on the held-out share of them
        assert 0 < stats["predictor_pairs"] <= ledger.examples_forward
        assert -1.0 <= stats["predictor_spearman"] <= 1.0 and -1.0 <= stats["stale_loss_spearman"] <= 1.0
        assert stats["ranking"] in {"predictor", "stale_loss"} and 0.0 <= stats["predictor_ranked_share"] <= 1.0
    assert stats["activity"]["fired"] is True and stats["activity"]["value"] == stats["skip_rate"]
    assert stats["activity"]["summary"].startswith(f"{stats['skip_rate']:.0%} of examples skipped")


@pytest.mark.parametrize("name", ["difficulty_prediction", "difficulty_prediction_random"])
def test_under_one_epoch_nothing_is_skipped_and_the_activity_says_why(name):
    workload = _grammar_micro()  # 2,000 examples; 8 steps of 32 see each at most once
    result = _trial(workload, [name], workload.train, steps=8, config={name: {"skip_threshold": 0.5}})
    assert result.status == "missed", result.error
    stats = result.technique_stats[name]
    assert stats["examples_skipped"] == 0
    assert stats["activity"] == {"fired": False, "value": 0.0,
                                 "summary": "0% of examples skipped: no example was seen twice within the budget"}


def test_control_skips_at_the_technique_rate(digits_micro):
    train = _head(digits_micro.train, 64)
    config = {"skip_threshold": 0.25}
    rates = [_trial(digits_micro, [name], train, steps=20, config={name: config}).technique_stats[name]["skip_rate"]
             for name in ("difficulty_prediction", "difficulty_prediction_random")]
    assert rates[0] == pytest.approx(rates[1], abs=0.02) and rates[0] > 0.1


def test_plugin_on_grammar_stacked_after_augmentation():
    workload = _grammar_micro()
    result = _trial(workload, ["augmentation", "difficulty_prediction"], _head(workload.train, 64), steps=8,
                    config={"difficulty_prediction": {"skip_threshold": 0.5}})
    assert result.status == "missed", result.error
    assert result.technique_stats["difficulty_prediction"]["examples_skipped"] > 0
    assert result.technique_stats["augmentation"]["augmented_examples"] > 0


@pytest.mark.parametrize(("name", "config", "key"), [
    ("difficulty_prediction", {"skip_threshold": 2.0}, "skip_threshold"),
    ("difficulty_prediction", {"ridge": 0.0}, "ridge"), ("difficulty_prediction", {"forget": 1.5}, "forget"),
    ("difficulty_prediction", {"holdout_fraction": 0.0}, "holdout_fraction"),
    ("difficulty_prediction", {"holdout_fraction": 1.0}, "holdout_fraction"),
    ("difficulty_prediction_random", {"holdout_fraction": 0.2}, "holdout_fraction"),
    ("difficulty_prediction_random", {"max_consecutive_skips": 0}, "max_consecutive_skips"),
    ("difficulty_prediction_random", {"ridge": 1.0}, "ridge"),
])
def test_plugin_rejects_bad_settings(digits_micro, name, config, key):
    with pytest.raises(ValueError, match=key):
        technique_specs()[name].plugin(digits_micro, config)


@pytest.mark.parametrize("name", ["difficulty_prediction", "difficulty_prediction_random"])
def test_stats_work_before_setup(digits_micro, name):
    # a trial that fails before setup still collects every technique's stats
    stats = technique_specs()[name].plugin(digits_micro).gate.stats()
    assert stats["examples_gated"] == 0 and stats["skip_rate"] == 0.0
    assert stats["activity"] == {"fired": False, "summary": "0% of examples skipped", "value": 0.0}
