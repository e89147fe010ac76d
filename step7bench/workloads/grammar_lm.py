"""grammar-lm: language modelling of a synthetic grammar whose loss floor is known exactly.

Each example is one sentence of the grammar (`step7bench.workloads.grammar`): inputs are
`[BOS, w1..wn]` padded with PAD, targets `[w1..wn, EOS]` padded with IGNORE_INDEX, both of the
preset's sequence length T = longest sentence + 1, so every word and the end of every sentence
is predicted and scored. The validation loss can never go below `loss_floor`, the grammar's
exact entropy per predicted token, which makes "how close to optimal" a measured fact rather
than a guess.

The source data for transfer learning comes from a related grammar with the same rules,
vocabulary and synonym classes and shifted probabilities (`Grammar.shifted`, log-normal noise of
sigma 0.5 on every rule and word distribution). How far apart the two are is exact too: a model
that knew the source grammar perfectly would score `grammar.cross_entropy_per_token(source_grammar)`
on target data, about 0.11 nats/token above the floor at the small preset (data_seeds 0 and 1).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from step7bench.seeding import numpy_rng
from step7bench.workloads.base import (IGNORE_INDEX, Budget, ExampleDataset, Hyperparameters, Preset,
                                       Workload)
from step7bench.workloads.grammar import Grammar, GrammarSpec, RuleShape, Sample
from step7bench.workloads.models import TinyGPT

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = range(len(SPECIAL_TOKENS))
WORD_OFFSET = len(SPECIAL_TOKENS)  # token id of grammar word w is w + WORD_OFFSET

# Rule shapes (symbols on the right-hand side, of which children, weight). The weights put
# the expected number of children per expansion near 1, so that sentences are long enough to
# need structure yet rarely near the depth-bounded maximum.
_SHAPES = (RuleShape(2, 0, 0.20), RuleShape(3, 0, 0.10), RuleShape(2, 1, 0.20), RuleShape(3, 1, 0.25),
           RuleShape(3, 2, 0.25))

_MICRO_GRAMMAR = GrammarSpec(n_types=3, depth=3, n_preterminals=8, words_per_preterminal=4, shapes=_SHAPES)
_SMALL_GRAMMAR = GrammarSpec(n_types=6, depth=4, n_preterminals=16, words_per_preterminal=6, shapes=_SHAPES)
_LARGE_GRAMMAR = GrammarSpec(n_types=12, depth=5, n_preterminals=48, words_per_preterminal=10, shapes=_SHAPES)

# Targets are the exact floor plus a margin that the tuned baseline reaches at about 80% of its
# step budget (floors do not depend on data_seed; see the grammar module). Tuning ran
# step7bench.engine.run_trial on data_seed 0, trial seeds 0-2, one intra-op thread of a 2-core CPU
# that other jobs shared (so its seconds are upper bounds); steps to target are exact.
_TUNING_MACHINE = "2-core CPU (shared), torch 2.13 CPU, 1 thread, run_trial, data_seed 0, seeds 0,1,2"

# Checks: every 25 steps, every 2 once within 3% of the target (a small check costs about four
# training steps), the crossing confirmed over 8 steps. Dense curves of 8 baseline seeds of the
# small preset at the quick suite's 300-step budget (2-core AMD EPYC): the last 25-step check
# before the crossing was 0.7-2.7% above the target, and the time to target varied 4% between
# seeds (11% when read at 25-step checks).
PRESETS = {
    "micro": Preset(  # tests: the baseline reaches its target in about 2 s of training
        name="micro",
        budget=Budget(max_steps=400, max_seconds=60.0),
        hparams=Hyperparameters(lr=1e-2, batch_size=32, warmup_steps=20, eval_every_fine=5, eval_fine_band=0.05,
                                confirm_steps=5),
        target_val_loss=1.68,  # floor 1.6201 + 0.06
        model={"d_model": 32, "n_layers": 1, "n_heads": 2},
        data={"grammar": _MICRO_GRAMMAR, "train": 2000, "val": 500, "source_train": 2000, "source_val": 500},
        tuning=f"{_TUNING_MACHINE}. Steps to 1.68 (budget 400): lr 3e-3 missed x3 (best 1.76-1.81); "
               "1e-2: 300, 300, 325; 2e-2: 300, 300, 325; 3e-2: missed (best 1.75), 325, 325. "
               "Chose 1e-2: tied fastest, and the rate above it starts to miss. About 2 s of training.",
    ),
    "small": Preset(  # the CPU suites: a trial reaches its target in about 10-15 s on 2 cores
        name="small",
        budget=Budget(max_steps=1000, max_seconds=120.0),
        hparams=Hyperparameters(lr=5e-3, batch_size=32, warmup_steps=50, eval_every_fine=2, eval_fine_band=0.03,
                                confirm_steps=8),
        target_val_loss=2.08,  # floor 2.0274 + 0.053
        model={"d_model": 64, "n_layers": 2, "n_heads": 4},
        # 1000 validation sentences, not more: evaluation every 25 steps is untimed but real time,
        # and the quick suite runs about a hundred of these trials.
        data={"grammar": _SMALL_GRAMMAR, "train": 20000, "val": 1000, "source_train": 20000,
              "source_val": 1000},
        tuning=f"{_TUNING_MACHINE}. Steps to 2.08 (budget 1000): lr 1e-3 missed x3 (best 2.17-2.20); "
               "2e-3 missed x3 (best 2.10-2.10); 3e-3: 950, 875, 900; 5e-3: 825, 800, 825; "
               "7e-3: 825, 850, 850; 1e-2: missed (best 2.089), 875, 850. Chose 5e-3. "
               "13-14 s of training per trial on the loaded machine.",
    ),
    "large": Preset(  # a GPU: deeper grammar (sentences up to 63 words), 8x the vocabulary
        name="large",
        budget=Budget(max_steps=20000, max_seconds=3600.0),
        hparams=Hyperparameters(lr=1e-3, batch_size=128, warmup_steps=200, eval_every=250, eval_every_fine=10,
                                eval_fine_band=0.03, confirm_steps=30),
        target_val_loss=2.53,  # floor 2.4747 + 0.055, provisional
        model={"d_model": 256, "n_layers": 4, "n_heads": 8},
        data={"grammar": _LARGE_GRAMMAR, "train": 500_000, "val": 10_000, "source_train": 500_000,
              "source_val": 10_000},
        tuning="not tuned: sized for a GPU and not run to its target on the CPU; lr and target are "
               "provisional (checked only that data builds and 30 CPU steps lower the loss)",
    ),
}


class GrammarLM(Workload):
    name = "grammar-lm"
    task = "sequence"
    presets = PRESETS
    description = ("next-token prediction on sentences of a seeded synthetic PCFG with an exactly known "
                   "loss floor, synonym classes and a shifted source grammar")

    # -- the grammars -------------------------------------------------------------------------
    @property
    def spec(self) -> GrammarSpec:
        return self.preset.data["grammar"]

    @cached_property
    def grammar(self) -> Grammar:
        """The target grammar, fixed by the preset's spec and `data_seed`."""
        return Grammar.generate(self.spec, numpy_rng(self.data_seed, "grammar-lm/structure"))

    @cached_property
    def source_grammar(self) -> Grammar:
        """The transfer-learning source: `grammar` with shifted probabilities."""
        return self.grammar.shifted(numpy_rng(self.data_seed, "grammar-lm/source-shift"))

    @property
    def seq_len(self) -> int:
        """Positions per example: the longest sentence plus BOS (inputs) or EOS (targets)."""
        return self.spec.max_sentence_length + 1

    # -- data -------------------------------------------------------------------------------
    def _build_data(self) -> dict[str, ExampleDataset | None]:
        splits = {"train": self.grammar, "val": self.grammar,
                  "source_train": self.source_grammar, "source_val": self.source_grammar}
        data: dict[str, ExampleDataset | None] = {}
        for split, grammar in splits.items():
            rng = numpy_rng(self.data_seed, f"grammar-lm/sample/{split}")
            data[split] = self._examples(grammar.sample(self.preset.data[split], rng))
        return data

    def _examples(self, sample: Sample) -> ExampleDataset:
        """Sentences as (inputs, targets) rows: [BOS, words] -> [words, EOS]."""
        n_sentences = sample.words.shape[0]
        is_word = sample.words >= 0
        token_ids = sample.words + WORD_OFFSET
        inputs = np.full((n_sentences, self.seq_len), PAD_ID, dtype=np.int64)
        inputs[:, 0] = BOS_ID
        inputs[:, 1:] = np.where(is_word, token_ids, PAD_ID)
        targets = np.full((n_sentences, self.seq_len), IGNORE_INDEX, dtype=np.int64)
        targets[:, :-1] = np.where(is_word, token_ids, IGNORE_INDEX)
        targets[np.arange(n_sentences), sample.lengths] = EOS_ID
        return ExampleDataset(torch.from_numpy(inputs), torch.from_numpy(targets))

    # -- model --------------------------------------------------------------------------------
    def build_model(self) -> TinyGPT:
        return TinyGPT(vocab_size=self.num_classes, max_len=self.seq_len, **self.preset.model)

    @property
    def num_classes(self) -> int:
        return WORD_OFFSET + self.spec.vocab_size

    # -- knowledge of the data -------------------------------------------------------------------
    @property
    def loss_floor(self) -> float:
        """Exact entropy of the grammar per predicted token (words + EOS), in nats: the limit of
        the token-weighted validation loss of the true distribution (see `Grammar.loss_floor`)."""
        return self.grammar.loss_floor

    @cached_property
    def vocab(self) -> dict[str, int]:
        names = list(SPECIAL_TOKENS) + self.grammar.word_names()
        return {name: token_id for token_id, name in enumerate(names)}

    @cached_property
    def synonym_classes(self) -> list[list[int]]:
        """Token ids of the words of each preterminal (see the grammar module)."""
        return [[word + WORD_OFFSET for word in words] for words in self.grammar.synonym_classes()]

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "grammar_digest": self.grammar.digest(),
                "source_grammar_digest": self.source_grammar.digest(), "loss_floor": self.loss_floor,
                "vocab_size": self.num_classes, "seq_len": self.seq_len}
