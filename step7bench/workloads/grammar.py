"""A synthetic probabilistic context-free grammar whose entropy is known exactly.

Construction, all drawn from one seeded generator:

* `n_preterminals` preterminals with `words_per_preterminal` words each, named like `noun3_7`
  (word 7 of preterminal `noun3`; the part-of-speech names are labels only, they carry no
  meaning). Word sets are disjoint, so a word names its preterminal. The words of one
  preterminal form a **synonym class**: swapping one for another keeps a sentence grammatical
  (parsing looks at preterminals only) and scales its probability by the ratio of the two words'
  probabilities. Within a class, words follow a Zipf law, p(rank k) proportional to k^-s with
  s = `zipf_exponent`, over a random order of the class: synonyms are interchangeable in syntax,
  not in frequency.
* `n_types` nonterminal types. Each type has one rule template per `RuleShape` of the spec: a
  leading preterminal, distinct among the templates of that type, then preterminals and child
  types at random positions (a child in the middle makes centre embedding, which a language
  model can only predict by keeping a stack).
* Every type exists at depths 0..depth-1. A child of a depth-d nonterminal is its type at depth
  d+1, and at the deepest level only the shapes without children remain, their weights
  renormalised. Recursion is therefore bounded inside the grammar: nothing is ever rejected
  while sampling, so the sampled distribution is exactly the grammar's.

Properties the workload relies on (tests check each):

* **Unambiguous, LL(1).** Every rule starts with a preterminal, the rules of one nonterminal
  start with distinct preterminals, and word sets are disjoint. Reading left to right, the next
  word decides how the leftmost open nonterminal expands, so a string has at most one
  derivation: its probability is its derivation's, and string entropy equals derivation entropy.
* **Prefix-free.** That parse consumes one word per step without look-ahead, so after a complete
  sentence nothing is left open and no longer string extends it. The end-of-sentence token is
  then certain after a complete sentence and impossible before: it adds no entropy.
* **Bounded length.** The longest sentence is `GrammarSpec.max_sentence_length`, reached for
  every seed.
* **Seed-independent difficulty.** Every type has the same shapes and weights and every
  preterminal the same Zipf law, so expected counts per depth, the length distribution and the
  entropy are the same for every seed; the seed decides which words and types go where.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

PART_OF_SPEECH_LABELS = ("noun", "verb", "adj", "adv", "det", "prep", "pron", "conj")


@dataclass(frozen=True)
class RuleShape:
    """The form of one rule template: `symbols` on its right-hand side (the leading preterminal
    included), of which `children` are nonterminals, chosen with unnormalised `weight`."""

    symbols: int
    children: int
    weight: float

    def __post_init__(self) -> None:
        if self.symbols < 1:
            raise ValueError(f"symbols must be >= 1, got {self.symbols}")
        if not 0 <= self.children <= self.symbols - 1:
            raise ValueError(f"children must lie in [0, symbols - 1] (the first symbol is a preterminal), "
                             f"got {self.children} with symbols={self.symbols}")
        if not self.weight > 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")


@dataclass(frozen=True)
class GrammarSpec:
    """Everything that fixes a grammar except its seed.

    `source_shift` is the sigma of the log-normal perturbation that makes the source grammar
    (see `Grammar.shifted`).
    """

    n_types: int
    depth: int
    n_preterminals: int
    words_per_preterminal: int
    shapes: tuple[RuleShape, ...]
    zipf_exponent: float = 1.0
    source_shift: float = 0.5

    def __post_init__(self) -> None:
        for name in ("n_types", "depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.words_per_preterminal < 2:
            raise ValueError(f"words_per_preterminal must be >= 2 (a synonym class needs two words), "
                             f"got {self.words_per_preterminal}")
        if not self.shapes:
            raise ValueError("shapes must not be empty")
        if not any(shape.children == 0 for shape in self.shapes):
            raise ValueError("shapes need one without children: the deepest level has only those")
        if len(self.shapes) > self.n_preterminals:
            raise ValueError(f"n_preterminals={self.n_preterminals} is too few for {len(self.shapes)} "
                             "shapes: the rules of a type must start with distinct preterminals")
        if self.zipf_exponent < 0 or self.source_shift < 0:
            raise ValueError("zipf_exponent and source_shift must be >= 0")

    @property
    def vocab_size(self) -> int:
        """Words in the grammar (no special tokens)."""
        return self.n_preterminals * self.words_per_preterminal

    @property
    def max_sentence_length(self) -> int:
        """The longest sentence in words, over every seed (every type has every shape)."""
        longest = max(shape.symbols for shape in self.shapes if shape.children == 0)
        for _ in range(self.depth - 1):
            longest = max(shape.symbols - shape.children + shape.children * longest for shape in self.shapes)
        return longest


@dataclass(frozen=True)
class Sample:
    """Sampled sentences: `words` (N, max_sentence_length) grammar word ids padded with -1,
    `lengths` (N,) in words, `log_prob` (N,) each sentence's exact log-probability in nats."""

    words: np.ndarray
    lengths: np.ndarray
    log_prob: np.ndarray


def preterminal_name(index: int) -> str:
    return f"{PART_OF_SPEECH_LABELS[index % len(PART_OF_SPEECH_LABELS)]}{index // len(PART_OF_SPEECH_LABELS)}"


def _entropy(probs: np.ndarray) -> float:
    """Shannon entropy in nats of a strictly positive distribution."""
    return float(-(probs * np.log(probs)).sum())


def _cross_entropy(probs: np.ndarray, model_probs: np.ndarray) -> float:
    return float(-(probs * np.log(model_probs)).sum())


def _normalise(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum(axis=-1, keepdims=True)


def _inverse_cdf_table(probs: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis with the last entry exactly 1, so that counting the
    entries <= u for u uniform in [0, 1) draws an index from `probs` and never runs past it."""
    cdf = np.cumsum(probs, axis=-1)
    cdf[..., -1] = 1.0
    return cdf


def _zipf_word_probs(spec: GrammarSpec, rng: np.random.Generator) -> np.ndarray:
    """(P, W) word probabilities: Zipf over a random order of each class."""
    ranks = np.argsort(rng.random((spec.n_preterminals, spec.words_per_preterminal)), axis=1) + 1.0
    return _normalise(ranks ** -spec.zipf_exponent)


def _draw_templates(spec: GrammarSpec, rng: np.random.Generator) -> tuple[tuple[tuple[int, ...], ...], ...]:
    """Right-hand sides per type and shape. Symbol s >= 0 is preterminal s; s < 0 is child
    type -s-1 (its depth is fixed when the template is instantiated)."""
    templates = []
    for _ in range(spec.n_types):
        leading = rng.choice(spec.n_preterminals, size=len(spec.shapes), replace=False)
        rules = []
        for first, shape in zip(leading, spec.shapes, strict=True):
            rest = rng.integers(spec.n_preterminals, size=shape.symbols - 1)
            child_slots = rng.choice(shape.symbols - 1, size=shape.children, replace=False)
            rest[child_slots] = -1 - rng.integers(spec.n_types, size=shape.children)
            rules.append((int(first), *(int(symbol) for symbol in rest)))
        templates.append(tuple(rules))
    return tuple(templates)


class Grammar:
    """A depth-bounded PCFG built from templates (see the module docstring) and its exact
    statistics. Symbols: preterminals are 0..P-1; nonterminal (type t, depth d) is
    P + d * n_types + t, so a child's index is always larger than its parent's.

    The compiled rules are public, one row per rule, stored in order of their owner:
    `rule_rhs` (right-hand side symbols, padded with -1), `rule_length`, `rule_prob` and
    `rule_owner` (the nonterminal's index, symbol - P); `word_probs` is (P, W).
    """

    def __init__(self, spec: GrammarSpec, templates: tuple[tuple[tuple[int, ...], ...], ...],
                 shape_probs: np.ndarray, word_probs: np.ndarray) -> None:
        expected_shapes = {"shape_probs": (spec.n_types, len(spec.shapes)),
                           "word_probs": (spec.n_preterminals, spec.words_per_preterminal)}
        for (name, shape), probs in zip(expected_shapes.items(), (shape_probs, word_probs), strict=True):
            if probs.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {probs.shape}")
        self.spec = spec
        self.templates = templates
        self.shape_probs = shape_probs
        self.word_probs = word_probs
        self._build_rule_tables()

    @classmethod
    def generate(cls, spec: GrammarSpec, rng: np.random.Generator) -> Grammar:
        """A grammar with the spec's shape weights for every type and Zipf words."""
        templates = _draw_templates(spec, rng)
        weights = np.array([shape.weight for shape in spec.shapes], dtype=np.float64)
        shape_probs = np.tile(_normalise(weights), (spec.n_types, 1))
        return cls(spec, templates, shape_probs, _zipf_word_probs(spec, rng))

    def shifted(self, rng: np.random.Generator) -> Grammar:
        """The related source grammar for transfer learning: the same rules, vocabulary and
        synonym classes, with every categorical distribution (each type's shape choice, shared by
        all its depths, and each preterminal's word choice) moved by log-normal noise,
        p'_i proportional to p_i * exp(sigma * z_i) with z_i ~ N(0, 1) and sigma = `source_shift`."""
        sigma = self.spec.source_shift
        def shift(probs: np.ndarray) -> np.ndarray:
            return _normalise(probs * np.exp(sigma * rng.standard_normal(probs.shape)))

        return Grammar(self.spec, self.templates, shift(self.shape_probs), shift(self.word_probs))

    # -- compiled rule tables ---------------------------------------------------------------
    @property
    def n_nonterminals(self) -> int:
        return self.spec.n_types * self.spec.depth

    @property
    def start_symbol(self) -> int:
        return self.spec.n_preterminals  # type 0 at depth 0

    def _rules_of(self, type_index: int, depth: int) -> list[tuple[tuple[int, ...], float]]:
        """(right-hand side as symbols, probability) of nonterminal (type, depth)."""
        spec = self.spec
        deepest = depth == spec.depth - 1
        usable = [k for k, shape in enumerate(spec.shapes) if not (deepest and shape.children)]
        probs = self.shape_probs[type_index, usable]
        probs = probs / probs.sum()
        child_base = spec.n_preterminals + (depth + 1) * spec.n_types
        rules = []
        for k, prob in zip(usable, probs, strict=True):
            rhs = tuple(s if s >= 0 else child_base + (-s - 1) for s in self.templates[type_index][k])
            rules.append((rhs, float(prob)))
        return rules

    def _build_rule_tables(self) -> None:
        spec = self.spec
        max_symbols = max(shape.symbols for shape in spec.shapes)
        per_nonterminal = [self._rules_of(t, d) for d in range(spec.depth) for t in range(spec.n_types)]
        n_rules = sum(len(rules) for rules in per_nonterminal)
        self.rule_rhs = np.full((n_rules, max_symbols), -1, dtype=np.int64)
        self.rule_length = np.zeros(n_rules, dtype=np.int64)
        self.rule_prob = np.zeros(n_rules)
        self.rule_owner = np.zeros(n_rules, dtype=np.int64)  # nonterminal index (symbol - P)
        widest = max(len(rules) for rules in per_nonterminal)
        self._choice_rule = np.zeros((self.n_nonterminals, widest), dtype=np.int64)
        # Padding sits above 1 so that a uniform draw in [0, 1) never selects it.
        self._choice_cdf = np.full((self.n_nonterminals, widest), 2.0)
        self._rule_by_first: dict[tuple[int, int], int] = {}
        rule_id = 0
        for nonterminal, rules in enumerate(per_nonterminal):
            probs = np.array([prob for _, prob in rules])
            self._choice_cdf[nonterminal, :len(rules)] = _inverse_cdf_table(probs)
            for k, (rhs, prob) in enumerate(rules):
                self.rule_rhs[rule_id, :len(rhs)] = rhs
                self.rule_length[rule_id] = len(rhs)
                self.rule_prob[rule_id] = prob
                self.rule_owner[rule_id] = nonterminal
                self._choice_rule[nonterminal, k] = rule_id
                self._rule_by_first[nonterminal, rhs[0]] = rule_id
                rule_id += 1
        self._word_cdf = _inverse_cdf_table(self.word_probs)

    # -- exact statistics ---------------------------------------------------------------------
    @cached_property
    def expected_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Expected expansions per sentence of each nonterminal (shape (N,), indexed by
        symbol - P) and of each preterminal (shape (P,)).

        Children always have larger indices than their parents, so one pass in index order
        solves the (triangular) linear system c = e_start + M^T c, M the mean child-count matrix.
        """
        n_pre = self.spec.n_preterminals
        nonterminal_counts = np.zeros(self.n_nonterminals)
        preterminal_counts = np.zeros(n_pre)
        nonterminal_counts[self.start_symbol - n_pre] = 1.0
        for rule in range(self.rule_owner.shape[0]):  # rules are stored in owner order
            flow = nonterminal_counts[self.rule_owner[rule]] * self.rule_prob[rule]
            for symbol in self.rule_rhs[rule, :self.rule_length[rule]]:
                if symbol < n_pre:
                    preterminal_counts[symbol] += flow
                else:
                    nonterminal_counts[symbol - n_pre] += flow
        return nonterminal_counts, preterminal_counts

    @property
    def expected_length(self) -> float:
        """Expected words per sentence (EOS not counted)."""
        return float(self.expected_counts[1].sum())

    @property
    def expected_predicted_tokens(self) -> float:
        """Expected predicted tokens per sentence: the words plus the end-of-sentence token."""
        return self.expected_length + 1.0

    def cross_entropy_per_sentence(self, model: Grammar | None = None) -> float:
        """Expected -log q(sentence) in nats for sentences of this grammar p, scored by `model`
        q (default: p itself, giving the entropy). Both must share rules, which makes each
        derivation unique under both, so the expectation splits over expansions:
        sum_X c_p(X) CE(p(.|X), q(.|X)) + sum_a c_p(a) CE(p(.|a), q(.|a)) (the derivational
        entropy of a PCFG: Soule 1974, "Entropies of probabilistic grammars"; Chi 1999,
        "Statistical properties of probabilistic context-free grammars")."""
        model = self if model is None else model
        if model.templates != self.templates or model.spec != self.spec:
            raise ValueError("model must be a grammar with the same rules (e.g. from Grammar.shifted)")
        nonterminal_counts, preterminal_counts = self.expected_counts
        rules_nats = 0.0
        for nonterminal in range(self.n_nonterminals):
            rules = self.rule_owner == nonterminal
            rule_nats = _cross_entropy(self.rule_prob[rules], model.rule_prob[rules])
            rules_nats += nonterminal_counts[nonterminal] * rule_nats
        words_nats = sum(count * _cross_entropy(p, q) for count, p, q in
                         zip(preterminal_counts, self.word_probs, model.word_probs, strict=True))
        return float(rules_nats + words_nats)

    def cross_entropy_per_token(self, model: Grammar | None = None) -> float:
        """`cross_entropy_per_sentence` / `expected_predicted_tokens` (nats per predicted token)."""
        return self.cross_entropy_per_sentence(model) / self.expected_predicted_tokens

    @property
    def entropy_per_sentence(self) -> float:
        """Exact entropy of a sentence in nats (= its derivation's: the grammar is unambiguous)."""
        return self.cross_entropy_per_sentence()

    @property
    def loss_floor(self) -> float:
        """The lowest expected token-weighted cross-entropy any model can reach on this grammar's
        sentences, in nats per predicted token: E[entropy of a sentence] / E[words + EOS].

        It is a ratio of expectations, the limit of sum(loss) / sum(tokens) over many sentences,
        which is what `Workload.evaluate` computes (not the mean of per-sentence ratios). EOS
        adds no entropy because the grammar is prefix-free.
        """
        return self.cross_entropy_per_token()

    @property
    def max_length(self) -> int:
        """The longest sentence this grammar derives, in words, computed from its rules."""
        n_pre = self.spec.n_preterminals
        longest = np.zeros(self.n_nonterminals, dtype=np.int64)
        for rule in reversed(range(self.rule_owner.shape[0])):  # children before parents
            rhs = self.rule_rhs[rule, :self.rule_length[rule]]
            length = sum(1 if s < n_pre else int(longest[s - n_pre]) for s in rhs)
            longest[self.rule_owner[rule]] = max(longest[self.rule_owner[rule]], length)
        return int(longest[self.start_symbol - n_pre])

    def digest(self) -> str:
        """A short hash of the rules and probabilities, for provenance."""
        hasher = hashlib.blake2b(digest_size=8)
        for array in (self.rule_rhs, self.rule_prob, self.word_probs):
            hasher.update(np.ascontiguousarray(array).tobytes())
        return hasher.hexdigest()

    # -- sampling and parsing ----------------------------------------------------------------------
    def sample(self, n_sentences: int, rng: np.random.Generator) -> Sample:
        """`n_sentences` independent sentences with their exact log-probabilities.

        Vectorised over the corpus: all sentences are one flat array of symbols, and each round
        replaces every nonterminal by the right-hand side of a sampled rule, in place and in
        order. Each round moves one level deeper, so `depth` rounds finish every sentence.
        """
        if n_sentences < 1:
            raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
        n_pre = self.spec.n_preterminals
        symbols = np.full(n_sentences, self.start_symbol, dtype=np.int64)
        sentence = np.arange(n_sentences)
        log_prob = np.zeros(n_sentences)
        while (open_mask := symbols >= n_pre).any():
            nonterminals = symbols[open_mask] - n_pre
            draws = rng.random(nonterminals.shape[0])
            choice = (draws[:, None] >= self._choice_cdf[nonterminals]).sum(axis=1)
            rules = self._choice_rule[nonterminals, choice]
            log_prob += np.bincount(sentence[open_mask], weights=np.log(self.rule_prob[rules]),
                                    minlength=n_sentences)
            symbols, sentence = self._expand(symbols, sentence, open_mask, rules)
        draws = rng.random(symbols.shape[0])
        choice = (draws[:, None] >= self._word_cdf[symbols]).sum(axis=1)
        log_prob += np.bincount(sentence, weights=np.log(self.word_probs[symbols, choice]),
                                minlength=n_sentences)
        words = symbols * self.spec.words_per_preterminal + choice
        return self._pack(words, sentence, n_sentences, log_prob)

    def _expand(self, symbols: np.ndarray, sentence: np.ndarray, open_mask: np.ndarray,
                rules: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Replace each open symbol by its rule's right-hand side, keeping order."""
        rule_at = np.full(symbols.shape[0], -1, dtype=np.int64)
        rule_at[open_mask] = rules
        out_length = np.where(open_mask, self.rule_length[rule_at], 1)
        source = np.repeat(np.arange(symbols.shape[0]), out_length)
        offset = np.arange(source.shape[0]) - np.repeat(np.cumsum(out_length) - out_length, out_length)
        expanded = np.where(open_mask[source], self.rule_rhs[rule_at[source], offset], symbols[source])
        return expanded, sentence[source]

    def _pack(self, words: np.ndarray, sentence: np.ndarray, n_sentences: int,
              log_prob: np.ndarray) -> Sample:
        """Flat words with their sentence index -> a padded (N, max_sentence_length) Sample."""
        lengths = np.bincount(sentence, minlength=n_sentences)
        position = np.arange(words.shape[0]) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        padded = np.full((n_sentences, self.spec.max_sentence_length), -1, dtype=np.int64)
        padded[sentence, position] = words
        return Sample(words=padded, lengths=lengths, log_prob=log_prob)

    def log_prob(self, words: list[int] | np.ndarray) -> float:
        """Exact log-probability in nats of a sentence of grammar word ids; -inf if the grammar
        does not derive it. A deterministic left-to-right (LL(1)) parse: the next word's
        preterminal picks the rule of the leftmost open nonterminal."""
        n_pre = self.spec.n_preterminals
        words_per = self.spec.words_per_preterminal
        stack = [self.start_symbol]
        total = 0.0
        for word in (int(w) for w in words):
            if not stack or not 0 <= word < self.spec.vocab_size:
                return -np.inf
            preterminal = word // words_per
            symbol = stack.pop()
            if symbol >= n_pre:
                rule = self._rule_by_first.get((symbol - n_pre, preterminal))
                if rule is None:
                    return -np.inf
                total += np.log(self.rule_prob[rule])
                stack.extend(reversed(self.rule_rhs[rule, 1:self.rule_length[rule]].tolist()))
            elif symbol != preterminal:
                return -np.inf
            total += np.log(self.word_probs[preterminal, word % words_per])
        return float(total) if not stack else -np.inf

    # -- names ----------------------------------------------------------------------------------
    def word_names(self) -> list[str]:
        """Readable name of each grammar word id: `noun3_7` is word 7 of preterminal noun3."""
        return [f"{preterminal_name(p)}_{j}" for p in range(self.spec.n_preterminals)
                for j in range(self.spec.words_per_preterminal)]

    def synonym_classes(self) -> list[list[int]]:
        """Grammar word ids of each preterminal: the synonym classes, disjoint by construction."""
        words_per = self.spec.words_per_preterminal
        return [list(range(p * words_per, (p + 1) * words_per)) for p in range(self.spec.n_preterminals)]
