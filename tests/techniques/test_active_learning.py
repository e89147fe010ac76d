"""Active learning: the seed's selector, the acquisition math, the select stage and its control."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.utils.data import TensorDataset

from step7bench.engine import Plugin, run_trial
from step7bench.engine.stages import ShuffledEpochs
from step7bench.techniques import get_technique
from step7bench.techniques.active_learning import (STRATEGIES, ActiveLearningSelector, acquisition_plan,
                                                   acquisition_scores, candidate_count, most_informative,
                                                   position_scores)
from step7bench.workloads.models import MLPClassifier, TinyGPT


def _short(workload, max_steps):
    """A copy of `workload` (sharing its data) with a shorter step budget."""
    short = copy.copy(workload)
    short.preset = dataclasses.replace(workload.preset, budget=dataclasses.replace(workload.budget, max_steps=max_steps))
    return short


# -- the seed document's example ----------------------------------------------------------------


def test_seed_example_selects_the_most_uncertain(digits_micro):
    torch.manual_seed(0)
    model = MLPClassifier(64, 32, 10, depth=1)
    unlabeled_pool = TensorDataset(digits_micro.train.inputs[:300])

    from step7bench.techniques.active_learning import ActiveLearningSelector

    # Create selector
    selector = ActiveLearningSelector(
        model,
        selection_strategy='uncertainty',  # or 'margin', 'entropy'
        device='cpu'
    )

    # Select most uncertain examples
    selected_indices, uncertainties = selector.select_examples(
        unlabeled_pool,
        num_select=100,
        batch_size=32
    )

    assert len(selected_indices) == 100 == len(set(selected_indices.tolist()))
    assert 0 <= int(selected_indices.min()) and int(selected_indices.max()) < 300
    with torch.no_grad():
        all_scores = 1.0 - torch.softmax(model(digits_micro.train.inputs[:300]), dim=-1).amax(dim=-1)
    torch.testing.assert_close(uncertainties, all_scores[selected_indices])
    assert float(uncertainties.min()) >= float(all_scores.sort(descending=True).values[99]) - 1e-6
    assert torch.all(uncertainties[:-1] >= uncertainties[1:])


# -- the math -----------------------------------------------------------------------------------

probabilities = st.integers(2, 8).flatmap(
    lambda c: st.lists(st.lists(st.floats(0.01, 1.0), min_size=c, max_size=c), min_size=1, max_size=6))


def _normalised(rows):
    probs = torch.tensor(rows, dtype=torch.float64)
    return probs / probs.sum(dim=-1, keepdim=True)


@settings(max_examples=50, deadline=None)
@given(probabilities)
def test_scores_are_bounded_and_maximal_at_the_uniform_distribution(rows):
    probs = _normalised(rows)
    n_classes = probs.shape[-1]
    uniform = torch.full((1, n_classes), 1.0 / n_classes, dtype=torch.float64)
    upper = {"uncertainty": 1.0 - 1.0 / n_classes, "margin": 1.0, "entropy": math.log(n_classes)}
    for strategy in STRATEGIES:
        scores = position_scores(probs, strategy)
        assert torch.all(scores >= -1e-9) and torch.all(scores <= upper[strategy] + 1e-9)
        assert float(position_scores(uniform, strategy)) == pytest.approx(upper[strategy])


def test_scores_match_their_definitions():
    probs = torch.tensor([[0.7, 0.2, 0.1]])
    assert float(position_scores(probs, "uncertainty")) == pytest.approx(0.3)
    assert float(position_scores(probs, "margin")) == pytest.approx(1.0 - 0.5)
    expected_entropy = -sum(p * math.log(p) for p in (0.7, 0.2, 0.1))
    assert float(position_scores(probs, "entropy")) == pytest.approx(expected_entropy)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.sampled_from(STRATEGIES), st.integers(0, 1000))
def test_sequence_scores_are_length_normalised(repeats, strategy, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 3, 5, generator=generator)
    longer = logits.repeat(1, repeats, 1)
    torch.testing.assert_close(acquisition_scores(longer, strategy), acquisition_scores(logits, strategy))
    padded = torch.cat([logits, torch.randn(1, 4, 5, generator=generator)], dim=1)
    mask = torch.tensor([[True] * 3 + [False] * 4])
    torch.testing.assert_close(acquisition_scores(padded, strategy, mask), acquisition_scores(logits, strategy))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-10, 10), min_size=1, max_size=40), st.data())
def test_most_informative_takes_the_top_scores(values, data):
    scores = torch.tensor(values)
    k = data.draw(st.integers(0, len(values)))
    positions, picked = most_informative(scores, k)
    assert len(set(positions.tolist())) == k
    torch.testing.assert_close(picked, scores.sort(descending=True).values[:k])


@settings(max_examples=50, deadline=None)
@given(st.integers(10, 5000), st.floats(0.01, 0.5), st.floats(0.5, 1.0), st.integers(1, 8), st.floats(0.05, 1.0),
       st.integers(1, 2000))
@example(10, 0.5, 1.0, 3, 0.05, 100)  # 3 x 0.05 x 100 / 3 is 5.000000000000001 in floats
def test_acquisition_plan_reaches_the_budget_by_its_last_round(n, seed_fraction, budget_fraction, rounds,
                                                               acquire_until, max_steps):
    plan = acquisition_plan(n, seed_fraction=seed_fraction, budget_fraction=budget_fraction, rounds=rounds,
                            acquire_until=acquire_until, max_steps=max_steps)
    assert 1 <= plan.seed_size <= plan.budget_size <= n
    assert plan.budget_size == max(plan.seed_size, round(budget_fraction * n))
    steps = [step for step, _ in plan.rounds]
    assert steps == sorted(steps) and all(1 <= s <= math.ceil(acquire_until * max_steps) for s in steps)
    sizes = [size for _, size in plan.rounds]
    assert all(size > 0 for size in sizes) and max(sizes, default=0) - min(sizes, default=0) <= 1


# -- the seed API with sequences ---------------------------------------------------------------------


def test_sequence_pool_ignores_targets_and_padding(grammar_micro):
    torch.manual_seed(0)
    model = TinyGPT(grammar_micro.num_classes, d_model=16, n_layers=1, n_heads=2, max_len=16)
    inputs, targets = grammar_micro.train.inputs[:64], grammar_micro.train.targets[:64]
    selector = ActiveLearningSelector(model, "entropy", device="cpu", pad_id=0)
    with_targets = selector.score_pool(TensorDataset(inputs, targets), batch_size=16)
    inputs_only = selector.score_pool(TensorDataset(inputs), batch_size=16)
    torch.testing.assert_close(with_targets, inputs_only)
    with torch.no_grad():
        real = inputs[0] != 0
        by_hand = position_scores(torch.softmax(model(inputs[:1])[0], dim=-1), "entropy")[real].mean()
    assert float(with_targets[0]) == pytest.approx(float(by_hand), rel=1e-5)


@pytest.mark.parametrize(("call", "name"), [
    (lambda m, pool: ActiveLearningSelector(m, "bald", device="cpu"), "selection_strategy"),
    (lambda m, pool: ActiveLearningSelector(m, device="tpu"), "device"),
    (lambda m, pool: ActiveLearningSelector(m, device="cpu").select_examples(pool, 11), "num_select"),
    (lambda m, pool: ActiveLearningSelector(m, device="cpu").select_examples(pool, -1), "num_select"),
    (lambda m, pool: ActiveLearningSelector(m, device="cpu").select_examples(pool, 2.5), "num_select"),
    (lambda m, pool: ActiveLearningSelector(m, device="cpu").select_examples(pool, 2, batch_size=0), "batch_size"),
])
def test_bad_arguments_name_the_argument(call, name):
    pool = TensorDataset(torch.rand(10, 64))
    with pytest.raises(ValueError, match=name):
        call(MLPClassifier(64, 8, 10, depth=1), pool)


# -- the engine plug-in ------------------------------------------------------------------------------


class _InPlayRecorder(ShuffledEpochs):
    """The baseline order, noting each distinct in-play tensor it is handed."""

    def setup(self, ctx):
        super().setup(ctx)
        self.seen: list[torch.Tensor] = []

    def next_ids(self, ctx, in_play, batch_size):
        if not self.seen or in_play is not self.seen[-1]:
            self.seen.append(in_play)
        return super().next_ids(ctx, in_play, batch_size)


@pytest.mark.parametrize("workload_name", ["digits", "grammar-lm"])
def test_plugin_and_control_select_the_same_sizes_at_the_same_rounds(workload_name, digits_micro, grammar_micro):
    workload = _short(digits_micro if workload_name == "digits" else grammar_micro, max_steps=12)
    results, seen = {}, {}
    for name in ("active_learning", "active_learning_random"):
        recorder = _InPlayRecorder()
        plugins = [get_technique(name).plugin(workload, {"rounds": 3}), Plugin("recorder", order=recorder)]
        results[name] = run_trial(workload, 0, plugins, device="cpu")
        assert results[name].error is None
        seen[name] = recorder.seen
    chosen, control = results["active_learning"], results["active_learning_random"]
    stats, control_stats = chosen.technique_stats["active_learning"], control.technique_stats["active_learning_random"]
    assert stats["rounds_done"] == control_stats["rounds_done"] == 3
    assert stats["selected_examples"] == control_stats["selected_examples"] == round(0.5 * len(workload.train))
    # Identity changes exactly once per round; the seed sets are the same; the rounds differ.
    assert [len(t) for t in seen["active_learning"]] == [len(t) for t in seen["active_learning_random"]]
    assert len(seen["active_learning"]) == 4
    assert torch.equal(seen["active_learning"][0], seen["active_learning_random"][0])
    assert not torch.equal(seen["active_learning"][-1], seen["active_learning_random"][-1])
    # Pool scoring is charged; the control draws candidates of the same sizes and scores nothing.
    assert chosen.ledger.examples_overhead == stats["examples_scored"] > 0
    assert chosen.ledger.flops_overhead > 0 and chosen.ledger.wall_overhead_s > 0
    assert control.ledger.examples_overhead == control.ledger.flops_overhead == 0
    assert stats["examples_scored"] == sum(stats["candidates_per_round"])
    assert stats["candidates_per_round"] == control_stats["candidates_per_round"]
    assert control_stats["activity"]["summary"].endswith("scored 0 examples")


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 50_000), st.integers(1, 5000), st.integers(0, 100_000),
       st.one_of(st.none(), st.floats(1.0, 8.0)))
def test_candidate_count_is_sized_to_what_the_round_can_add_and_training_use(pool, round_size, draws_left, factor):
    round_size = min(round_size, pool)  # a round never adds more than the pool holds
    count = candidate_count(pool, round_size, draws_left, factor)
    assert round_size <= count <= pool
    if factor is None:
        assert count == pool
    else:
        assert count <= max(round_size, math.ceil(factor * min(round_size, draws_left)))
        assert count == pool or count >= factor * min(round_size, draws_left)


def _rounds_run(workload, name, config, steps=12):
    result = run_trial(_short(workload, steps), 0, [get_technique(name).plugin(workload, config)], device="cpu")
    assert result.error is None
    return result, result.technique_stats[name]


def test_default_candidates_are_a_multiple_of_a_rounds_size_and_all_scores_the_whole_pool(grammar_micro):
    rounds, n = 3, len(grammar_micro.train)
    result, stats = _rounds_run(grammar_micro, "active_learning", {"rounds": rounds})
    plan = acquisition_plan(n, seed_fraction=0.1, budget_fraction=0.5, rounds=rounds, acquire_until=0.5,
                            max_steps=12)
    batch_size = grammar_micro.hparams.batch_size
    expected = [candidate_count(n - plan.seed_size - sum(size for _, size in plan.rounds[:k]), size,
                                (12 - step) * batch_size, 2.0) for k, (step, size) in enumerate(plan.rounds)]
    assert stats["candidates_per_round"] == expected and stats["examples_scored"] == sum(expected)
    assert result.ledger.examples_overhead == sum(expected)
    _, everything = _rounds_run(grammar_micro, "active_learning", {"rounds": rounds, "candidate_pool": "all"})
    pools = [n - plan.seed_size - sum(size for _, size in plan.rounds[:k]) for k in range(rounds)]
    assert everything["candidates_per_round"] == pools and everything["examples_scored"] == sum(pools)
    assert sum(expected) < sum(pools)


@pytest.mark.parametrize("name", ["active_learning", "active_learning_random"])
def test_activity_says_how_much_data_was_trained_on_and_scored(digits_micro, name):
    _, stats = _rounds_run(digits_micro, name, {"rounds": 2})
    scored = stats.get("examples_scored", 0)
    assert stats["activity"] == {"fired": True, "value": stats["selected_fraction"],
                                 "summary": f"trained on {stats['selected_fraction']:.0%} of the data, "
                                            f"scored {scored} examples"}
    _, before_any_round = _rounds_run(digits_micro, name, {"rounds": 2}, steps=1)  # the first round is due at step 1
    assert before_any_round["rounds_done"] == 0 and before_any_round["activity"]["fired"] is False
    assert before_any_round["activity"]["summary"] == "trained on 10% of the data, scored 0 examples"


@pytest.mark.parametrize("name", ["active_learning", "active_learning_random"])
def test_stats_work_before_setup(digits_micro, name):
    stats = get_technique(name).plugin(digits_micro).select.stats()
    assert stats["selected_examples"] == stats["rounds_done"] == 0 and stats["activity"]["fired"] is False


@pytest.mark.parametrize(("config", "key"), [
    ({"candidate_pool": 0.5}, "candidate_pool"), ({"candidate_pool": "some"}, "candidate_pool"),
    ({"strategy": "bald"}, "strategy"), ({"budget_fraction": 1.5}, "budget_fraction"),
    ({"seed_fraction": 0.0}, "seed_fraction"), ({"seed_fraction": 0.6}, "seed_fraction"),
    ({"rounds": 0}, "rounds"), ({"acquire_until": 0.0}, "acquire_until"),
    ({"score_batch_size": 0}, "score_batch_size"), ({"pool": 3}, "pool"),
])
def test_bad_configuration_names_the_key(config, key, digits_micro):
    for name in ("active_learning", "active_learning_random"):
        with pytest.raises(ValueError, match=key):
            get_technique(name).plugin(digits_micro, config)
