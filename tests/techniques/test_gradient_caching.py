"""Gradient caching: the seed's trainer, the signature math, the cache, and the plug-ins."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from step7bench.engine import Plugin, run_trial
from step7bench.techniques.gradient_caching import (AGE_NEIGHBOURS, RANDOM_SPEC, SPEC, AgeMatchedReuse,
                                                    CachedGradientStepStage, GradientCache, GradientCachingTrainer,
                                                    LastLayerSigner, SimilarReuse, best_hit, cosine_to_rows,
                                                    flatten_gradients, load_gradients, nearest_in_age, output_error,
                                                    output_layer, sketch_flops, sketch_last_layer_gradient)
from step7bench.workloads.base import IGNORE_INDEX

STAT_KEYS = {"activity", "hit_rate", "hits", "misses", "mean_similarity_on_hit", "mean_age_on_hit",
             "cached_vs_fresh_cosine", "audited_hits", "cache_entries", "cache_bytes"}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 5))


def _batch(seed: int = 0, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, 6, generator=generator), torch.randint(0, 5, (size,), generator=generator)


# -- the seed's example ------------------------------------------------------------------------------------


def test_the_seed_example_runs(capsys):
    model = _model()
    x_batch, y_batch = _batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()

    from step7bench.techniques.gradient_caching import GradientCachingTrainer

    # Create trainer
    trainer = GradientCachingTrainer(
        model,
        cache_size=100,
        similarity_threshold=0.9,
        device='cpu'
    )

    # Training step
    loss, used_cache = trainer.train_step(
        x_batch, y_batch, optimizer, criterion
    )

    # Get statistics
    stats = trainer.get_cache_statistics()
    print(f"Cache hit rate: {stats['hit_rate']:.2%}")

    assert capsys.readouterr().out == "Cache hit rate: 0.00%\n"  # the first batch always misses
    assert math.isfinite(loss) and used_cache is False
    assert STAT_KEYS <= set(stats) and stats["misses"] == 1 and stats["cache_entries"] == 1
    parameters = sum(p.numel() for p in model.parameters())
    assert stats["cache_bytes"] >= 100 * parameters * 4  # cache_size x parameter count, fp32


def test_a_hit_skips_the_backward_and_applies_the_cached_gradient():
    model = _model()
    trainer = GradientCachingTrainer(model, similarity_threshold=-1.0, device="cpu", audit_fraction=1.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss()
    _, first_hit = trainer.train_step(*_batch(0), optimizer, criterion)
    cached = flatten_gradients(list(model.parameters()))
    before = torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    _, second_hit = trainer.train_step(*_batch(1), optimizer, criterion)
    after = torch.nn.utils.parameters_to_vector(model.parameters()).detach()
    assert (first_hit, second_hit) == (False, True)
    torch.testing.assert_close(after, before - 0.1 * cached)
    stats = trainer.get_cache_statistics()
    assert stats["hits"] == stats["audited_hits"] == 1 and stats["hit_rate"] == 0.5
    assert -1.0 <= stats["cached_vs_fresh_cosine"] <= 1.0 and stats["audit_s"] > 0
    assert stats["overhead_flops"] == 2 * sketch_flops(12, 5, 16)  # both batches signed: 12 rows, 5 classes, width 16


def test_sequence_logits_are_flattened_and_padding_is_ignored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 8), nn.Linear(8, 7))
    trainer = GradientCachingTrainer(model, device="cpu")
    tokens = torch.randint(0, 7, (3, 5))
    targets = tokens.roll(-1, dims=1)
    targets[:, -2:] = IGNORE_INDEX
    loss, used_cache = trainer.train_step(tokens, targets, torch.optim.AdamW(model.parameters()),
                                          nn.CrossEntropyLoss())
    assert math.isfinite(loss) and not used_cache


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"cache_size": 0}, "cache_size"), ({"cache_size": 2.5}, "cache_size"),
    ({"similarity_threshold": 1.5}, "similarity_threshold"), ({"audit_fraction": -0.1}, "audit_fraction"),
    ({"device": "tpu"}, "device"),
])
def test_bad_arguments_name_the_argument(kwargs, named):
    with pytest.raises(ValueError, match=named):
        GradientCachingTrainer(_model(), **{"device": "cpu", **kwargs})


def test_a_model_without_a_linear_output_layer_is_refused():
    with pytest.raises(ValueError, match="model"):
        GradientCachingTrainer(nn.Sequential(nn.Conv1d(1, 1, 1)), device="cpu")


# -- the signature ------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 2**16))
def test_output_error_rows_sum_to_zero_and_ignored_rows_are_zero(rows, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, classes, generator=generator)
    targets = torch.randint(0, classes, (rows,), generator=generator)
    targets[0] = IGNORE_INDEX
    error = output_error(logits, targets)
    torch.testing.assert_close(error.sum(dim=1), torch.zeros(rows), atol=1e-6, rtol=0)
    assert not error[0].any()
    assert ((error < 0).sum(dim=1) == (targets != IGNORE_INDEX).long()).all()  # only the true class is negative


def test_the_sketch_is_the_kronecker_projection_of_the_exact_last_layer_gradient():
    model = _model()
    signer = LastLayerSigner(model, seed=0)
    inputs, targets = _batch()
    logits = model(inputs)
    nn.functional.cross_entropy(logits, targets, reduction="sum").backward()
    exact = model[-1].weight.grad  # G = E^T H, (classes, width)
    signature = signer.sign(logits, targets, IGNORE_INDEX)
    projected = signer._projection_out.T @ exact @ signer._projection_hidden
    torch.testing.assert_close(signature, projected.flatten(), rtol=1e-4, atol=1e-4)


def test_sketch_matches_a_direct_product_on_random_inputs():
    generator = torch.Generator().manual_seed(3)
    error, hidden = torch.randn(9, 4, generator=generator), torch.randn(9, 5, generator=generator)
    out, width = torch.randn(4, 3, generator=generator), torch.randn(5, 2, generator=generator)
    torch.testing.assert_close(sketch_last_layer_gradient(error, hidden, out, width),
                               (out.T @ error.T @ hidden @ width).flatten())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(1, 30), st.integers(1, 20))
def test_sketch_flops_are_what_torchs_counter_counts(rows, classes, width, sketch_width):
    from torch.utils.flop_counter import FlopCounterMode

    error, hidden = torch.randn(rows, classes), torch.randn(rows, width)
    with FlopCounterMode(display=False) as counter:
        sketch_last_layer_gradient(error, hidden, torch.randn(classes, sketch_width), torch.randn(width, sketch_width))
    assert sketch_flops(rows, classes, width, sketch_width) == counter.get_total_flops()


@given(st.integers(1, 6), st.integers(0, 2**16))
def test_cosine_to_rows_finds_a_scaled_copy(rows, seed):
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(rows, 8, generator=generator)
    similarity = cosine_to_rows(3.0 * table[-1], table)
    assert similarity.shape == (rows,)
    assert float(similarity[-1]) == pytest.approx(1.0, abs=1e-5)
    assert bool((similarity <= 1.0 + 1e-5).all())


# -- the cache ----------------------------------------------------------------------------------------------


def test_gradients_round_trip_through_one_vector():
    model = _model()
    vector = torch.arange(sum(p.numel() for p in model.parameters()), dtype=torch.float32)
    load_gradients(list(model.parameters()), vector)
    torch.testing.assert_close(flatten_gradients(list(model.parameters())), vector)


@given(st.integers(1, 5), st.integers(0, 12))
def test_the_cache_keeps_the_newest_entries_and_evicts_the_oldest(capacity, inserts):
    cache = GradientCache(capacity, parameter_count=2, device=torch.device("cpu"), dtype=torch.float32)
    for value in range(inserts):
        cache.insert(torch.full((2,), float(value)), torch.tensor([1.0, float(value)]))
    assert len(cache) == min(capacity, inserts)
    kept = sorted(int(row[0]) for row in cache.gradients[: len(cache)])
    assert kept == list(range(max(0, inserts - capacity), inserts))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0, width=32), max_size=12), st.floats(-1.0, 1.0, width=32))
def test_best_hit_is_the_largest_cosine_when_it_reaches_the_threshold(cosines, threshold):
    hit = best_hit(torch.tensor(cosines), threshold)
    if not cosines or max(cosines) < threshold:
        assert hit is None
    else:
        index, cosine = hit
        assert cosines[index] == cosine == max(cosines) and index == cosines.index(max(cosines))  # the first of ties


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 12), st.integers(0, 20), st.integers(1, 6), st.data())
def test_nearest_in_age_takes_the_closest_others(capacity, inserts, count, data):
    cache = GradientCache(capacity, parameter_count=1, device=torch.device("cpu"), dtype=torch.float32)
    for value in range(inserts + 1):
        cache.insert(torch.zeros(1), torch.tensor([1.0, float(value)]))
    ages = cache.ages()
    assert sorted(ages.tolist()) == list(range(len(cache)))  # the newest is 0, then one per later write
    match = data.draw(st.integers(0, len(cache) - 1))
    chosen = nearest_in_age(ages, match, count)
    assert len(chosen) == min(count, len(cache) - 1) and match not in chosen.tolist()
    assert len(set(chosen.tolist())) == len(chosen)
    distance = (ages - ages[match]).abs()
    rest = [i for i in range(len(cache)) if i != match and i not in chosen.tolist()]
    if len(chosen) and rest:
        assert int(distance[chosen].max()) <= int(distance[rest].min())


def test_age_matched_reuse_hits_when_similar_reuse_does_and_swaps_the_match():
    cache = GradientCache(8, parameter_count=1, device=torch.device("cpu"), dtype=torch.float32)
    control = AgeMatchedReuse(0.9, torch.Generator().manual_seed(0))
    assert control.choose(cache, torch.tensor([1.0, 0.0])) is None  # an empty cache misses
    cache.insert(torch.zeros(1), torch.tensor([1.0, 0.0]))
    assert control.choose(cache, torch.tensor([1.0, 0.0]))[0] == 0  # the one entry: nothing else of its age
    for angle in (0.5, 1.0, 1.5, 2.0, 2.5):
        cache.insert(torch.zeros(1), torch.tensor([math.cos(angle), math.sin(angle)]))
    query = torch.tensor([1.0, 0.0])
    assert SimilarReuse(0.9).choose(cache, query)[0] == 0
    picks = {control.choose(cache, query)[0] for _ in range(50)}
    assert picks == set(nearest_in_age(cache.ages(), 0, AGE_NEIGHBOURS).tolist()) == {1, 2, 3, 4}
    assert control.choose(cache, torch.tensor([0.0, -1.0])) is None  # below the threshold: a miss, like the technique


def test_similar_reuse_hits_only_at_or_above_its_threshold():
    cache = GradientCache(4, parameter_count=1, device=torch.device("cpu"), dtype=torch.float32)
    assert SimilarReuse(0.5).choose(cache, torch.tensor([1.0, 0.0])) is None  # an empty cache misses
    cache.insert(torch.zeros(1), torch.tensor([1.0, 0.0]))
    cache.insert(torch.ones(1), torch.tensor([0.0, 1.0]))
    index, similarity = SimilarReuse(0.7).choose(cache, torch.tensor([1.0, 1.0]))
    assert similarity == pytest.approx(math.sqrt(0.5)) and index in (0, 1)
    assert SimilarReuse(0.8).choose(cache, torch.tensor([1.0, 1.0])) is None


# -- the plug-ins -----------------------------------------------------------------------------------------------


def _short(workload, steps: int = 8):
    return dataclasses.replace(workload.budget, max_steps=steps, max_seconds=1e9)


def test_the_plugin_charges_its_overhead_and_keeps_the_audit_apart(digits_micro):
    plugin = SPEC.plugin(digits_micro, {"similarity_threshold": -1.0, "audit_fraction": 1.0})
    result = run_trial(digits_micro, 0, [plugin], device="cpu", target_val_loss=0.0, budget=_short(digits_micro))
    assert result.status == "missed", result.error
    stats = result.technique_stats["gradient_caching"]
    assert STAT_KEYS <= set(stats)
    ledger, batch = result.ledger, digits_micro.hparams.batch_size
    assert ledger.steps == 8 and (stats["hits"], stats["misses"]) == (7, 1)  # threshold -1: every look-up hits
    assert ledger.examples_forward == 8 * batch and ledger.examples_backward == 1 * batch
    assert ledger.wall_overhead_s > 0 and ledger.wall_audit_s > 0
    assert ledger.flops_audit == 7 * ledger.flops_backward  # each audited hit: one full backward, off the bill
    head = output_layer(digits_micro.build_model())
    assert ledger.flops_overhead == 8 * sketch_flops(batch, head.out_features, head.in_features)  # every step signs
    assert -1.0 <= stats["cached_vs_fresh_cosine"] <= 1.0


def test_the_random_control_reuses_at_the_techniques_rate_and_pays_the_same_look_ups(digits_micro):
    config = {"similarity_threshold": 0.5, "audit_fraction": 0.0}
    technique, control = (run_trial(digits_micro, 0, [spec.plugin(digits_micro, config)], device="cpu",
                                    target_val_loss=0.0, budget=_short(digits_micro, 20))
                          for spec in (SPEC, RANDOM_SPEC))
    assert technique.status == control.status == "missed", (technique.error, control.error)
    stats, control_stats = technique.technique_stats["gradient_caching"], control.technique_stats[
        "gradient_caching_random"]
    assert control_stats["hits"] + control_stats["misses"] == 20 and control_stats["hits"] > 0
    # the same look-up rule: the rates stay close once the runs part (the first reuse parts them)
    assert abs(control_stats["hit_rate"] - stats["hit_rate"]) <= 0.15
    assert control_stats["mean_similarity_on_hit"] < stats["mean_similarity_on_hit"]  # not chosen for similarity
    assert control_stats["audited_hits"] == 0
    assert control.ledger.examples_backward == control_stats["misses"] * digits_micro.hparams.batch_size
    assert control.ledger.wall_overhead_s > 0  # it signs and looks up like the technique


class _Recorded:
    """A reuse policy that notes, per look-up, the entry it reused and the best match's entry and age."""

    def __init__(self, policy):
        self.policy, self.hits = policy, []

    def choose(self, cache, signature):
        choice = self.policy.choose(cache, signature)
        if choice is not None:
            match, _ = best_hit(cache.similarities(signature), -math.inf)
            ages = cache.ages()
            self.hits.append((len(cache), choice[0], match, int(ages[choice[0]]), int(ages[match])))
        return choice


def _recorded_trial(workload, make_policy):
    """A trial whose weights never move (learning rate 0), so the technique and its control sign the
    same batches alike and take the same hit decisions: only the reused entries can differ."""
    recorder: list[_Recorded] = []

    def policy(ctx):
        recorder.append(_Recorded(make_policy(ctx)))
        return recorder[0]

    stage = CachedGradientStepStage(100, policy, audit_fraction=0.0, cache_on_cpu=False)
    frozen = dataclasses.replace(workload.hparams, lr=0.0)
    result = run_trial(workload, 0, [Plugin("gradient_caching", step=stage)], device="cpu", target_val_loss=0.0,
                       budget=_short(workload, 30), hparams=frozen)
    assert result.status == "missed", result.error
    return result.technique_stats["gradient_caching"], recorder[0].hits


def test_on_the_same_weights_the_control_reuses_as_often_but_other_entries_of_about_the_same_age(grammar_micro):
    technique, technique_hits = _recorded_trial(grammar_micro, lambda ctx: SimilarReuse(0.5))
    control, control_hits = _recorded_trial(
        grammar_micro, lambda ctx: AgeMatchedReuse(0.5, ctx.torch_generator("gradient-cache-age-matched")))
    assert control["hits"] == technique["hits"] > 0 and control["misses"] == technique["misses"]
    assert [hit[:1] + hit[2:3] for hit in control_hits] == [hit[:1] + hit[2:3] for hit in technique_hits]
    assert all(reused == match for _, reused, match, _, _ in technique_hits)
    substituted = [hit for hit in control_hits if hit[0] > 1]
    assert substituted and all(reused != match for _, reused, match, _, _ in substituted)
    assert all(abs(age - match_age) <= AGE_NEIGHBOURS for _, _, _, age, match_age in control_hits)
    assert control["mean_similarity_on_hit"] < technique["mean_similarity_on_hit"]


def test_activity_says_what_share_of_steps_reused_a_gradient(grammar_micro):
    fired = run_trial(grammar_micro, 0, [SPEC.plugin(grammar_micro, {"similarity_threshold": 0.3})], device="cpu",
                      target_val_loss=0.0, budget=_short(grammar_micro, 10)).technique_stats["gradient_caching"]
    assert fired["activity"]["fired"] is True and fired["activity"]["value"] == fired["hit_rate"] > 0
    assert fired["activity"]["summary"] == f"{fired['hit_rate']:.0%} of steps reused a gradient"
    for spec in (SPEC, RANDOM_SPEC):  # a threshold no sketch reaches: the mechanism never fires
        result = run_trial(grammar_micro, 0, [spec.plugin(grammar_micro, {"similarity_threshold": 0.9999})],
                           device="cpu", target_val_loss=0.0, budget=_short(grammar_micro, 10))
        stats = result.technique_stats[spec.name]
        assert stats["hits"] == 0 and stats["activity"]["fired"] is False and stats["activity"]["value"] == 0.0
        assert stats["activity"]["summary"].startswith("0%")


def test_the_plugin_trains_a_sequence_workload():
    from step7bench.workloads import get_workload

    workload = get_workload("grammar-lm", "micro")
    plugin = SPEC.plugin(workload, {"similarity_threshold": 0.5})
    result = run_trial(workload, 0, [plugin], device="cpu", target_val_loss=0.0, budget=_short(workload, 4))
    assert result.status == "missed", result.error
    stats = result.technique_stats["gradient_caching"]
    assert stats["hits"] + stats["misses"] == 4
    assert result.ledger.examples_backward == stats["misses"] * workload.hparams.batch_size
    head, positions = output_layer(workload.build_model()), workload.train.inputs.shape[1]  # every position signs
    assert result.ledger.flops_overhead == 4 * sketch_flops(workload.hparams.batch_size * positions,
                                                            head.out_features, head.in_features)


@pytest.mark.parametrize(("spec", "config", "named"), [
    (SPEC, {"cache_size": 0}, "cache_size"), (SPEC, {"similarity_threshold": 2.0}, "similarity_threshold"),
    (RANDOM_SPEC, {"similarity_threshold": 1.5}, "similarity_threshold"),
    (RANDOM_SPEC, {"audit_fraction": 2.0}, "audit_fraction"), (RANDOM_SPEC, {"reuse_rate": 0.2}, "reuse_rate"),
])
def test_bad_settings_name_the_key(spec, config, named, digits_micro):
    with pytest.raises(ValueError, match=named):
        spec.plugin(digits_micro, config)


@pytest.mark.parametrize("spec", [SPEC, RANDOM_SPEC])
def test_stats_work_before_setup(spec, digits_micro):
    # a trial that fails before setup still collects every technique's stats
    stats = spec.plugin(digits_micro).step.stats()
    assert STAT_KEYS <= set(stats) and stats["hits"] == stats["cache_entries"] == 0
    assert stats["activity"] == {"fired": False, "summary": "0% of steps reused a gradient", "value": 0.0}


def test_the_users_loop_doors_synchronise_the_trainers_own_device(monkeypatch):
    from step7bench.measure import clock
    from step7bench.techniques.gradient_caching import _TimedDoors

    synced = []
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda device=None: synced.append(device))
    doors = _TimedDoors(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), torch.device("cuda:1"))
    with doors.overhead():
        pass
    assert synced == [torch.device("cuda:1")] * 2 and doors.overhead_s >= 0.0
