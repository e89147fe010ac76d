"""Data augmentation: the seed's example, the operations' properties, the batch form and the plug-in."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from step7bench.engine import run_trial
from step7bench.techniques import technique_specs
from step7bench.techniques.data_augmentation import (LanguageDataAugmenter, SynonymTable, augment_lm_batch,
                                                     delete_tokens, lm_rows, lm_streams, replace_synonyms,
                                                     synonym_table)
from step7bench.workloads import get_workload
from step7bench.workloads.base import IGNORE_INDEX

VOCAB_SIZE = 12
CLASSES = [[2, 3, 4], [5, 6], [7, 8, 9, 10]]  # 0, 1 and 11 have no synonym


@functools.cache
def _grammar_micro():
    return get_workload("grammar-lm", "micro")


def _class_of(token: int) -> int | None:
    return next((index for index, members in enumerate(CLASSES) if token in members), None)


# -- the seed document's example ----------------------------------------------------------------
def test_seed_example_runs_with_a_plain_vocabulary_and_says_synonyms_cannot_apply():
    vocab_dict = {f"word{i}": i for i in range(VOCAB_SIZE)}
    token_ids = [1, 2, 5, 7, 11, 3, 0]
    with pytest.warns(UserWarning, match="no synonym source"):
        from step7bench.techniques.data_augmentation import LanguageDataAugmenter

        # Create augmenter
        augmenter = LanguageDataAugmenter(
            vocab=vocab_dict,
            synonym_prob=0.1,
            deletion_prob=0.1,
            max_augmentations=2
        )

        # Augment sequence
        aug_sequences = augmenter.augment_sequence(
            token_ids,
            methods=['synonym', 'deletion']
        )

    assert len(aug_sequences) <= 2
    for sequence in aug_sequences:
        assert 1 <= len(sequence) <= len(token_ids) and set(sequence) <= set(token_ids)


def test_synonyms_given_as_words_map_one_way():
    vocab = {"big": 0, "large": 1, "huge": 2, "cat": 3}
    augmenter = LanguageDataAugmenter(vocab, synonym_prob=1.0, synonyms={"big": ["large", "huge"]})
    outputs = augmenter.augment_sequence([0, 3, 1], methods=["synonym"])
    assert outputs and all(seq[0] in (1, 2) and seq[1:] == [3, 1] for seq in outputs)


def test_tensor_input_gives_tensors_and_protected_ids_survive():
    augmenter = LanguageDataAugmenter({str(i): i for i in range(VOCAB_SIZE)}, deletion_prob=1.0,
                                      synonyms=CLASSES, protected_ids=[0, 11], max_augmentations=3)
    outputs = augmenter.augment_sequence(torch.tensor([0, 2, 5, 11]), methods=["deletion"])
    assert outputs and all(isinstance(seq, torch.Tensor) for seq in outputs)
    # every deletable token drawn for deletion: one of them is kept, never the protected ones lost
    assert all(seq.tolist()[0] == 0 and seq.tolist()[-1] == 11 and len(seq) == 3 for seq in outputs)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"synonym_prob": 1.5}, "synonym_prob"), ({"deletion_prob": -0.1}, "deletion_prob"),
    ({"max_augmentations": 0}, "max_augmentations"), ({"synonyms": [[0, 99]]}, "synonyms"),
    ({"synonyms": {"nope": ["word1"]}}, "synonyms"), ({"synonyms": [[1, 2], [2, 3]]}, "synonyms"),
])
def test_bad_constructor_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LanguageDataAugmenter({f"word{i}": i for i in range(VOCAB_SIZE)}, **kwargs)


@pytest.mark.parametrize(("token_ids", "methods", "name"), [
    ([1, 2], ["synonym", "shuffle"], "methods"), ([1, 99], ["deletion"], "token_ids"),
    ([], ["deletion"], "token_ids"), ([[1, 2]], ["deletion"], "token_ids"),
])
def test_bad_call_arguments_name_themselves(token_ids, methods, name):
    augmenter = LanguageDataAugmenter({f"word{i}": i for i in range(VOCAB_SIZE)}, synonyms=CLASSES)
    with pytest.raises(ValueError, match=name):
        augmenter.augment_sequence(token_ids, methods=methods)


# -- properties of the operations ----------------------------------------------------------------
token_rows = st.lists(st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=12), min_size=1, max_size=6)
probabilities = st.floats(0.0, 1.0)


def _padded(rows: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    tokens = torch.tensor([row + [pad] * (width - len(row)) for row in rows])
    return tokens, torch.tensor([len(row) for row in rows])


@settings(max_examples=60, deadline=None)
@given(rows=token_rows, prob=probabilities, seed=st.integers(0, 2**31))
def test_replacements_stay_inside_their_class(rows, prob, seed):
    tokens, _ = _padded(rows)
    table = SynonymTable.from_rows(CLASSES, VOCAB_SIZE)
    new, replaced = replace_synonyms(tokens, table, prob, torch.Generator().manual_seed(seed))
    for old, fresh, was in zip(tokens.flatten().tolist(), new.flatten().tolist(), replaced.flatten().tolist(),
                               strict=True):
        assert was == (old != fresh)
        if was:
            assert _class_of(old) is not None and _class_of(old) == _class_of(fresh)


@settings(max_examples=60, deadline=None)
@given(rows=token_rows, prob=probabilities, seed=st.integers(0, 2**31))
def test_deletion_never_empties_keeps_order_and_bounds_lengths(rows, prob, seed):
    tokens, lengths = _padded(rows, pad=11)
    eligible = torch.ones_like(tokens, dtype=torch.bool)
    new, new_lengths, deleted = delete_tokens(tokens, lengths, prob, torch.Generator().manual_seed(seed),
                                              eligible, pad_id=11)
    assert torch.all(new_lengths >= 1) and torch.all(new_lengths <= lengths)
    assert torch.equal(new_lengths, lengths - deleted.sum(dim=1))
    for row, new_row, length in zip(rows, new.tolist(), new_lengths.tolist(), strict=True):
        kept = iter(row)
        assert all(token in kept for token in new_row[:length])  # a subsequence: order kept
        assert all(token == 11 for token in new_row[length:])


@settings(max_examples=40, deadline=None)
@given(sequence=st.lists(st.integers(0, VOCAB_SIZE - 1), min_size=1, max_size=20), synonym_prob=probabilities,
       deletion_prob=probabilities, count=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_augment_sequence_bounds_and_determinism(sequence, synonym_prob, deletion_prob, count, seed):
    vocab = {f"word{i}": i for i in range(VOCAB_SIZE)}

    def augmenter():
        return LanguageDataAugmenter(vocab, synonym_prob, deletion_prob, count, synonyms=CLASSES, seed=seed)

    outputs = augmenter().augment_sequence(sequence)
    assert len(outputs) <= count and outputs == augmenter().augment_sequence(sequence)
    for output in outputs:
        assert 1 <= len(output) <= len(sequence) and output != sequence
        assert all(0 <= token < VOCAB_SIZE for token in output)


def test_streams_round_trip_on_grammar_rows():
    train = _grammar_micro().train
    stream, lengths = lm_streams(train.inputs, train.targets, pad_id=0)
    inputs, targets = lm_rows(stream, lengths, pad_id=0)
    assert torch.equal(inputs, train.inputs) and torch.equal(targets, train.targets)


@settings(max_examples=25, deadline=None)
@given(synonym_prob=probabilities, deletion_prob=probabilities, seed=st.integers(0, 2**31))
def test_batch_form_keeps_inputs_and_targets_consistent(synonym_prob, deletion_prob, seed):
    workload = _grammar_micro()
    batch = workload.train.gather(torch.arange(64))
    table = SynonymTable.from_rows(workload.synonym_classes, workload.num_classes)
    inputs, targets, counts = augment_lm_batch(batch.inputs, batch.targets, table, synonym_prob=synonym_prob,
                                               deletion_prob=deletion_prob, augment_prob=0.5, pad_id=0,
                                               generator=torch.Generator().manual_seed(seed))
    assert inputs.shape == batch.inputs.shape and targets.shape == batch.targets.shape
    predicted = targets != IGNORE_INDEX
    lengths = predicted.sum(dim=1)
    assert torch.all(lengths >= 2) and torch.all(lengths <= (batch.targets != IGNORE_INDEX).sum(dim=1))
    assert torch.all(inputs[:, 0] == batch.inputs[:, 0])  # BOS kept
    assert torch.all(targets[torch.arange(len(batch)), lengths - 1] == 2)  # EOS kept
    # next-token consistency: inputs[t + 1] == targets[t] wherever both are real
    both = predicted[:, :-1] & predicted[:, 1:]
    assert torch.equal(inputs[:, 1:][both], targets[:, :-1][both])
    assert torch.all(inputs[~predicted] == 0)
    assert int(counts.tokens_deleted) == int((batch.targets != IGNORE_INDEX).sum() - predicted.sum())
    changed_rows = int(((inputs != batch.inputs) | (targets != batch.targets)).any(dim=1).sum())
    assert int(counts.examples_changed) == changed_rows <= int(counts.examples)


def test_synonym_table_of_nothing_replaces_nothing():
    table = synonym_table(None, {"a": 0, "b": 1})
    tokens = torch.tensor([[0, 1, 1]])
    new, replaced = replace_synonyms(tokens, table, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(new, tokens) and not replaced.any()


# -- the engine plug-in --------------------------------------------------------------------------
def _short(workload, steps: int = 6):
    return dataclasses.replace(workload.budget, max_steps=steps, max_seconds=60.0)


def test_plugin_trains_and_books_the_transform_as_overhead():
    workload = _grammar_micro()
    spec = technique_specs()["augmentation"]
    result = run_trial(workload, seed=0, plugins=[spec.plugin(workload)], device="cpu", budget=_short(workload))
    assert result.status == "missed", result.error
    stats = result.technique_stats["augmentation"]
    assert result.ledger.steps == 6 and result.ledger.wall_overhead_s > 0
    assert result.ledger.flops_overhead == 0  # integer ops only: no FLOPs to count
    assert 0 < stats["augmented_examples"] < 6 * workload.hparams.batch_size
    assert stats["tokens_replaced"] > 0 and stats["tokens_deleted"] > 0
    baseline = run_trial(workload, seed=0, device="cpu", budget=_short(workload))
    # augmented views replace originals: same examples, fewer tokens (deletions)
    assert result.ledger.examples_forward == baseline.ledger.examples_forward
    assert result.ledger.tokens_forward == baseline.ledger.tokens_forward - stats["tokens_deleted"]


@pytest.mark.parametrize(("config", "fired"), [({}, True),
                                               ({"synonym_prob": 0.0, "deletion_prob": 0.0}, False)])
def test_activity_counts_the_examples_the_operations_changed(config, fired):
    workload = _grammar_micro()
    result = run_trial(workload, seed=0, plugins=[technique_specs()["augmentation"].plugin(workload, config)],
                       device="cpu", budget=_short(workload))
    stats = result.technique_stats["augmentation"]
    assert stats["augmented_examples"] > 0  # drawn for augmentation either way
    assert 0 <= stats["changed_examples"] <= stats["augmented_examples"]
    assert stats["changed_fraction"] == stats["changed_examples"] / (6 * workload.hparams.batch_size)
    assert stats["activity"]["fired"] is fired and stats["activity"]["value"] == stats["changed_fraction"]
    assert stats["activity"]["summary"].endswith(" of examples augmented")
    if not fired:
        assert stats["changed_examples"] == 0 and stats["activity"]["summary"] == "0% of examples augmented"


def test_plugin_is_deterministic_per_seed():
    workload = _grammar_micro()
    spec = technique_specs()["augmentation"]
    runs = [run_trial(workload, seed=3, plugins=[spec.plugin(workload)], device="cpu", budget=_short(workload, 3))
            for _ in range(2)]
    assert runs[0].technique_stats == runs[1].technique_stats
    assert runs[0].ledger.tokens_forward == runs[1].ledger.tokens_forward


@pytest.mark.parametrize(("config", "name"), [({"augment_prob": 2.0}, "augment_prob"),
                                              ({"deletion_prob": -1.0}, "deletion_prob"),
                                              ({"copies": 2}, "copies")])
def test_plugin_rejects_bad_settings(config, name):
    with pytest.raises(ValueError, match=name):
        technique_specs()["augmentation"].plugin(_grammar_micro(), config)


def test_plugin_refuses_classification(digits_micro):
    with pytest.raises(ValueError, match="does not apply"):
        technique_specs()["augmentation"].plugin(digits_micro)


def test_plugin_needs_synonym_classes_unless_synonyms_are_off():
    workload = _grammar_micro()
    no_synonyms = type("NoSynonyms", (type(workload),), {"synonym_classes": property(lambda self: None)})("micro")
    spec = technique_specs()["augmentation"]
    with pytest.raises(ValueError, match="synonym_prob"):
        spec.plugin(no_synonyms)
    assert spec.plugin(no_synonyms, {"synonym_prob": 0.0}).transform is not None



def test_stats_work_before_setup():
    # a trial that fails before setup still collects every technique's stats
    stats = technique_specs()["augmentation"].plugin(_grammar_micro()).transform.stats()
    assert stats["augmented_examples"] == 0 and stats["augmented_fraction"] == 0.0
