"""The grammar-lm workload: example layout, vocabulary, determinism, presets, and a model that
trains toward (never below) the exact loss floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from step7bench.errors import UserError
from step7bench.workloads import IGNORE_INDEX, PRESET_NAMES, get_workload
from step7bench.workloads.grammar_lm import BOS_ID, EOS_ID, PAD_ID, WORD_OFFSET, GrammarLM
from step7bench.workloads.models import TinyGPT

TOLERANCE_SE = 4.0  # how far below the floor a validation loss may fall, in standard errors


@pytest.fixture(scope="module")
def micro() -> GrammarLM:
    return GrammarLM("micro", data_seed=0)


def sentence_words(workload: GrammarLM, targets: torch.Tensor) -> list[list[int]]:
    """Grammar word ids of each target row (EOS and padding dropped)."""
    return [[int(t) - WORD_OFFSET for t in row if t >= WORD_OFFSET] for row in targets]


def val_nll_standard_error(workload: GrammarLM) -> float:
    """Standard error of the token-weighted NLL of the validation set under the true grammar
    (delta method for a ratio of sums), from an exact parse of every validation sentence."""
    words = sentence_words(workload, workload.val.targets)
    nll = -np.array([workload.grammar.log_prob(sentence) for sentence in words])
    tokens = workload.val.token_counts().numpy().astype(np.float64)
    residuals = nll - nll.sum() / tokens.sum() * tokens
    return float(residuals.std(ddof=1) / np.sqrt(len(nll)) / tokens.mean())


def unigram_val_loss(workload: GrammarLM) -> float:
    """Token-weighted cross-entropy on val of the add-one-smoothed unigram model of train's
    targets: the best a model that ignores context can do, up to smoothing."""
    def counts(targets: torch.Tensor) -> torch.Tensor:
        return torch.bincount(targets[targets != IGNORE_INDEX], minlength=workload.num_classes).double()

    log_probs = torch.log((counts(workload.train.targets) + 1) / (counts(workload.train.targets) + 1).sum())
    val_counts = counts(workload.val.targets)
    return float(-(val_counts * log_probs).sum() / val_counts.sum())


def test_registry_builds_it_by_name():
    workload = get_workload("grammar-lm", preset="micro", data_seed=3)
    assert isinstance(workload, GrammarLM) and workload.data_seed == 3
    assert set(GrammarLM.presets) == set(PRESET_NAMES)
    with pytest.raises(UserError, match="no preset"):
        GrammarLM("huge")


def test_examples_are_shifted_sentences_with_bos_eos_and_padding(micro):
    for dataset in (micro.train, micro.val, micro.source_train, micro.source_val):
        inputs, targets = dataset.inputs, dataset.targets
        assert inputs.shape == targets.shape and inputs.shape[1] == micro.seq_len
        assert inputs.dtype == targets.dtype == torch.long
        lengths = (targets >= WORD_OFFSET).sum(dim=1)
        rows = torch.arange(len(dataset))
        assert (inputs[:, 0] == BOS_ID).all()
        assert (targets[rows, lengths] == EOS_ID).all()
        is_word = torch.arange(micro.seq_len - 1) < lengths[:, None]
        assert torch.equal(inputs[:, 1:][is_word], targets[:, :-1][is_word])
        assert (inputs[:, 1:][~is_word] == PAD_ID).all()
        after_eos = torch.arange(micro.seq_len) > lengths[:, None]
        assert (targets[after_eos] == IGNORE_INDEX).all()
        assert torch.equal(dataset.token_counts(), lengths + 1)
        assert inputs.min() >= 0 and inputs.max() < micro.num_classes
        assert targets[targets != IGNORE_INDEX].max() < micro.num_classes


def test_every_example_is_a_sentence_of_its_grammar(micro):
    for dataset, grammar in ((micro.val, micro.grammar), (micro.source_val, micro.source_grammar)):
        assert all(np.isfinite(grammar.log_prob(words)) for words in sentence_words(micro, dataset.targets))


def test_sizes_follow_the_preset(micro):
    data = micro.preset.data
    assert [len(micro.train), len(micro.val), len(micro.source_train), len(micro.source_val)] == \
        [data["train"], data["val"], data["source_train"], data["source_val"]]


def test_vocab_and_synonym_classes(micro):
    vocab = micro.vocab
    assert len(vocab) == micro.num_classes
    assert sorted(vocab.values()) == list(range(micro.num_classes))
    assert [vocab["<pad>"], vocab["<bos>"], vocab["<eos>"]] == [PAD_ID, BOS_ID, EOS_ID]
    assert vocab["noun0_0"] == WORD_OFFSET
    classes = micro.synonym_classes
    members = [token for group in classes for token in group]
    assert len(members) == len(set(members))  # disjoint
    assert set(members) == set(range(WORD_OFFSET, micro.num_classes))  # every word, no special token
    assert all(len(group) >= 2 for group in classes)
    names = {token: name for name, token in vocab.items()}
    for group in classes:  # a class is one preterminal's words: `noun3_0`, `noun3_1`, ...
        assert len({names[token].rsplit("_", 1)[0] for token in group}) == 1


def test_same_data_seed_same_data_different_seed_different_data():
    first, again, other = (GrammarLM("micro", data_seed=seed) for seed in (0, 0, 1))
    for split in ("train", "val", "source_train", "source_val"):
        assert torch.equal(getattr(first, split).inputs, getattr(again, split).inputs)
        assert torch.equal(getattr(first, split).targets, getattr(again, split).targets)
        assert not torch.equal(getattr(first, split).inputs, getattr(other, split).inputs)
    assert first.fingerprint() == again.fingerprint()
    assert first.fingerprint()["grammar_digest"] != other.fingerprint()["grammar_digest"]


def test_source_data_comes_from_the_shifted_grammar(micro):
    assert micro.source_grammar.templates == micro.grammar.templates
    assert micro.source_grammar.digest() != micro.grammar.digest()
    assert not torch.equal(micro.source_train.inputs[:100], micro.train.inputs[:100])


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_preset_target_sits_above_the_floor_and_sequences_fit(preset):
    workload = GrammarLM(preset)  # builds no data: only the grammar
    assert workload.target_val_loss > workload.loss_floor
    assert workload.seq_len == workload.spec.max_sentence_length + 1
    assert workload.preset.tuning
    assert workload.hparams.warmup_steps < workload.budget.max_steps


def test_model_takes_examples_and_predicts_the_vocabulary(micro):
    torch.manual_seed(0)
    model = micro.build_model()
    assert isinstance(model, TinyGPT)
    batch = micro.train.gather(torch.arange(4))
    assert model(batch.inputs).shape == (4, micro.seq_len, micro.num_classes)


def test_val_set_loss_of_the_true_grammar_is_the_floor_within_sampling_error(micro):
    words = sentence_words(micro, micro.val.targets)
    nll = -sum(micro.grammar.log_prob(sentence) for sentence in words)
    empirical_floor = nll / int(micro.val.token_counts().sum())
    assert abs(empirical_floor - micro.loss_floor) < TOLERANCE_SE * val_nll_standard_error(micro)


@pytest.fixture
def one_thread():
    """Run on one intra-op thread, then restore: matmuls this small gain nothing from threads, and
    threads that spin on cores other processes share make a seconds-long test take minutes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_brief_training_approaches_but_never_beats_the_floor(micro, one_thread):
    torch.manual_seed(0)
    model = micro.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    order = torch.Generator().manual_seed(0)
    for _ in range(300):
        batch = micro.train.gather(torch.randint(len(micro.train), (32,), generator=order))
        loss = micro.loss(model(batch.inputs), batch.targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    val_loss = micro.evaluate(model, "cpu")
    assert val_loss >= micro.loss_floor - TOLERANCE_SE * val_nll_standard_error(micro)
    assert val_loss < unigram_val_loss(micro)  # it learned structure, not just word frequencies
