"""The grammar: exact probabilities, exact entropy, unambiguity, prefix-freeness, bounds."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step7bench.workloads.grammar import Grammar, GrammarSpec, RuleShape

SHAPES = (RuleShape(2, 0, 0.2), RuleShape(3, 0, 0.1), RuleShape(2, 1, 0.2), RuleShape(3, 1, 0.25),
          RuleShape(3, 2, 0.25))
MICRO = GrammarSpec(n_types=3, depth=3, n_preterminals=8, words_per_preterminal=4, shapes=SHAPES)
SMALL = GrammarSpec(n_types=6, depth=4, n_preterminals=16, words_per_preterminal=6, shapes=SHAPES)
# Tolerance of the sampling checks, in standard errors: a correct grammar fails one of them
# about once in 16,000 runs, a wrong entropy by a few percent fails every time.
TOLERANCE_SE = 4.0


def make(spec: GrammarSpec = MICRO, seed: int = 0) -> Grammar:
    return Grammar.generate(spec, np.random.default_rng(seed))


def sentences(sample) -> list[list[int]]:
    return [sample.words[i, :length].tolist() for i, length in enumerate(sample.lengths)]


def ratio_and_standard_error(numerators: np.ndarray, denominators: np.ndarray) -> tuple[float, float]:
    """sum(x) / sum(y) over i.i.d. pairs and its delta-method standard error."""
    ratio = numerators.sum() / denominators.sum()
    residuals = numerators - ratio * denominators
    standard_error = residuals.std(ddof=1) / np.sqrt(len(numerators)) / denominators.mean()
    return float(ratio), float(standard_error)


def inside(grammar: Grammar, words: list[int]) -> tuple[float, int]:
    """(probability, number of derivations) of `words` from the start symbol, summed over every
    derivation by an exhaustive inside recursion over all splits. It uses only the rule and word
    tables, never the sampler or the grammar's left-to-right parser."""
    n_pre = grammar.spec.n_preterminals
    words_per = grammar.spec.words_per_preterminal
    rules: dict[int, list[tuple[tuple[int, ...], float]]] = {}
    for rhs, length, prob, owner in zip(grammar.rule_rhs, grammar.rule_length, grammar.rule_prob,
                                        grammar.rule_owner, strict=True):
        rules.setdefault(int(owner) + n_pre, []).append((tuple(int(s) for s in rhs[:length]), float(prob)))

    @lru_cache(maxsize=None)
    def symbol(sym: int, start: int, end: int) -> tuple[float, int]:
        if sym < n_pre:
            if end == start + 1 and words[start] // words_per == sym:
                return float(grammar.word_probs[sym, words[start] % words_per]), 1
            return 0.0, 0
        prob_total, count_total = 0.0, 0
        for rhs, prob in rules[sym]:
            inner_prob, inner_count = sequence(rhs, start, end)
            prob_total += prob * inner_prob
            count_total += inner_count
        return prob_total, count_total

    @lru_cache(maxsize=None)
    def sequence(rhs: tuple[int, ...], start: int, end: int) -> tuple[float, int]:
        if len(rhs) == 1:
            return symbol(rhs[0], start, end)
        prob_total, count_total = 0.0, 0
        for split in range(start + 1, end - len(rhs) + 2):  # every symbol covers at least one word
            head_prob, head_count = symbol(rhs[0], start, split)
            if head_count:
                tail_prob, tail_count = sequence(rhs[1:], split, end)
                prob_total += head_prob * tail_prob
                count_total += head_count * tail_count
        return prob_total, count_total

    return symbol(grammar.start_symbol, 0, len(words))


# -- (a) the analytic floor matches sampling ---------------------------------------------------
@pytest.mark.parametrize("spec", [MICRO, SMALL], ids=["micro", "small"])
def test_empirical_entropy_per_token_matches_the_analytic_floor(spec):
    grammar = make(spec, seed=3)
    sample = grammar.sample(20_000, np.random.default_rng(11))
    tokens = sample.lengths + 1.0  # words + EOS
    nll_per_token, standard_error = ratio_and_standard_error(-sample.log_prob, tokens)
    assert abs(nll_per_token - grammar.loss_floor) < TOLERANCE_SE * standard_error
    mean_length_se = sample.lengths.std(ddof=1) / np.sqrt(len(sample.lengths))
    assert abs(sample.lengths.mean() - grammar.expected_length) < TOLERANCE_SE * mean_length_se


def test_cross_entropy_under_the_source_grammar_matches_its_analytic_value():
    target = make(MICRO, seed=5)
    source = target.shifted(np.random.default_rng(6))
    sample = target.sample(3000, np.random.default_rng(7))
    source_nll = -np.array([source.log_prob(words) for words in sentences(sample)])
    nll_per_token, standard_error = ratio_and_standard_error(source_nll, sample.lengths + 1.0)
    assert abs(nll_per_token - target.cross_entropy_per_token(source)) < TOLERANCE_SE * standard_error
    assert target.cross_entropy_per_token(source) > target.loss_floor  # Gibbs: KL > 0 when they differ


def test_entropy_is_known_in_closed_form_for_a_one_rule_grammar():
    # S -> a b, with Zipf(1) over 2 words per preterminal: each word carries H(2/3, 1/3) nats,
    # nothing else is random, and 3 tokens are predicted (a, b, EOS).
    spec = GrammarSpec(n_types=1, depth=1, n_preterminals=2, words_per_preterminal=2,
                       shapes=(RuleShape(2, 0, 1.0),))
    grammar = make(spec)
    word_entropy = -(2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3))
    assert grammar.entropy_per_sentence == pytest.approx(2 * word_entropy)
    assert grammar.loss_floor == pytest.approx(2 * word_entropy / 3)


def test_floor_and_length_do_not_depend_on_the_seed():
    floors = {round(make(SMALL, seed).loss_floor, 12) for seed in range(4)}
    lengths = {round(make(SMALL, seed).expected_length, 12) for seed in range(4)}
    assert len(floors) == 1 and len(lengths) == 1


# -- (b) an independent parse agrees with the sampler: one derivation, same probability ------------
def test_inside_algorithm_finds_one_derivation_with_the_recorded_probability():
    grammar = make(MICRO, seed=1)
    sample = grammar.sample(200, np.random.default_rng(2))
    for words, log_prob in zip(sentences(sample), sample.log_prob, strict=True):
        probability, derivations = inside(grammar, words)
        assert derivations == 1
        assert np.log(probability) == pytest.approx(log_prob, abs=1e-9)


def test_no_proper_prefix_of_a_sentence_is_a_sentence():
    grammar = make(MICRO, seed=4)
    for words in sentences(grammar.sample(100, np.random.default_rng(3))):
        for cut in range(1, len(words)):
            assert inside(grammar, words[:cut]) == (0.0, 0)
            assert grammar.log_prob(words[:cut]) == -np.inf


def test_log_prob_rejects_strings_outside_the_language():
    grammar = make(MICRO, seed=0)
    words = sentences(grammar.sample(1, np.random.default_rng(0)))[0]
    assert grammar.log_prob(words + words) == -np.inf
    assert grammar.log_prob([]) == -np.inf
    assert grammar.log_prob([MICRO.vocab_size]) == -np.inf


def test_rules_of_a_nonterminal_start_with_distinct_preterminals():
    grammar = make(SMALL, seed=8)
    for nonterminal in range(grammar.n_nonterminals):
        leading = grammar.rule_rhs[grammar.rule_owner == nonterminal, 0]
        assert len(set(leading.tolist())) == len(leading)
        assert (leading < SMALL.n_preterminals).all()


# -- bounds and properties over seeds ---------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_sample_parses_fits_and_stays_in_range(seed):
    grammar = make(MICRO, seed)
    sample = grammar.sample(64, np.random.default_rng(seed + 1))
    assert grammar.max_length == MICRO.max_sentence_length
    assert sample.lengths.min() >= 1 and sample.lengths.max() <= MICRO.max_sentence_length
    is_word = np.arange(sample.words.shape[1]) < sample.lengths[:, None]
    assert ((sample.words >= 0) & (sample.words < MICRO.vocab_size) | ~is_word).all()
    assert (sample.words[~is_word] == -1).all()
    parsed = [grammar.log_prob(words) for words in sentences(sample)]
    np.testing.assert_allclose(parsed, sample.log_prob, rtol=0, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift_seed=st.integers(0, 2**32 - 1))
def test_synonym_replacement_keeps_a_sentence_grammatical(seed, shift_seed):
    grammar = make(MICRO, seed)
    rng = np.random.default_rng(shift_seed)
    words = sentences(grammar.sample(1, rng))[0]
    position = int(rng.integers(len(words)))
    synonyms = grammar.synonym_classes()[words[position] // MICRO.words_per_preterminal]
    replaced = words.copy()
    replaced[position] = int(rng.choice(synonyms))
    per_word = grammar.word_probs.ravel()
    expected_change = np.log(per_word[replaced[position]]) - np.log(per_word[words[position]])
    assert grammar.log_prob(replaced) == pytest.approx(grammar.log_prob(words) + expected_change, abs=1e-9)


def test_max_sentence_length_is_the_depth_bounded_worst_case():
    # Deepest level: leaves of up to 3 words; each level above: 1 word + 2 children at most.
    assert MICRO.max_sentence_length == 1 + 2 * (1 + 2 * 3)
    assert SMALL.max_sentence_length == 1 + 2 * MICRO.max_sentence_length
    assert make(SMALL, seed=2).max_length == SMALL.max_sentence_length


# -- synonym classes, names and the source grammar --------------------------------------------
def test_synonym_classes_partition_the_vocabulary_with_readable_names():
    grammar = make(MICRO)
    classes = grammar.synonym_classes()
    flat = [word for words in classes for word in words]
    assert sorted(flat) == list(range(MICRO.vocab_size))
    assert all(len(words) == MICRO.words_per_preterminal for words in classes)
    names = grammar.word_names()
    assert len(set(names)) == MICRO.vocab_size
    assert names[0] == "noun0_0" and names[MICRO.words_per_preterminal * 7 + 2] == "conj0_2"


def test_word_probabilities_within_a_class_are_zipf_not_uniform():
    grammar = make(MICRO)
    ranks = np.arange(1, MICRO.words_per_preterminal + 1)
    zipf = (1 / ranks) / (1 / ranks).sum()
    for probs in grammar.word_probs:
        np.testing.assert_allclose(np.sort(probs)[::-1], zipf)


def test_source_grammar_shares_structure_and_shifts_probabilities():
    target = make(SMALL, seed=2)
    source = target.shifted(np.random.default_rng(3))
    assert source.templates == target.templates
    np.testing.assert_array_equal(source.rule_rhs, target.rule_rhs)
    assert source.synonym_classes() == target.synonym_classes()
    assert source.word_names() == target.word_names()
    assert not np.allclose(source.rule_prob, target.rule_prob)
    assert not np.allclose(source.word_probs, target.word_probs)
    np.testing.assert_allclose(source.word_probs.sum(axis=1), 1.0)
    for nonterminal in range(source.n_nonterminals):
        assert source.rule_prob[source.rule_owner == nonterminal].sum() == pytest.approx(1.0)


def test_cross_entropy_needs_the_same_rules():
    with pytest.raises(ValueError, match="same rules"):
        make(MICRO, seed=0).cross_entropy_per_token(make(MICRO, seed=1))


def test_sampling_is_deterministic_in_the_generator():
    first = make(MICRO, seed=9).sample(50, np.random.default_rng(1))
    second = make(MICRO, seed=9).sample(50, np.random.default_rng(1))
    np.testing.assert_array_equal(first.words, second.words)
    np.testing.assert_array_equal(first.log_prob, second.log_prob)
    assert make(MICRO, seed=9).digest() != make(MICRO, seed=10).digest()


@pytest.mark.parametrize("shape_args, match", [((0, 0, 1.0), "symbols"), ((2, 2, 1.0), "children"),
                                               ((2, 0, 0.0), "weight")])
def test_rule_shape_rejects_bad_arguments(shape_args, match):
    with pytest.raises(ValueError, match=match):
        RuleShape(*shape_args)


@pytest.mark.parametrize("changes, match", [
    ({"depth": 0}, "depth"),
    ({"words_per_preterminal": 1}, "words_per_preterminal"),
    ({"shapes": (RuleShape(2, 1, 1.0),)}, "without children"),
    ({"n_preterminals": 4}, "n_preterminals"),
])
def test_grammar_spec_rejects_bad_arguments(changes, match):
    arguments = {"n_types": 2, "depth": 2, "n_preterminals": 8, "words_per_preterminal": 3, "shapes": SHAPES}
    with pytest.raises(ValueError, match=match):
        GrammarSpec(**{**arguments, **changes})


def test_grammar_and_sampler_reject_bad_arguments():
    grammar = make(MICRO)
    with pytest.raises(ValueError, match="word_probs"):
        Grammar(MICRO, grammar.templates, grammar.shape_probs, grammar.word_probs[:, :2])
    with pytest.raises(ValueError, match="n_sentences"):
        grammar.sample(0, np.random.default_rng(0))
