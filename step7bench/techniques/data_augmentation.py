"""Data augmentation of token sequences: synonym replacement and random deletion.

**Semantics against EDA** (Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques"). EDA's
synonym replacement changes a *count* of words, ``n = max(1, floor(alpha * len))``, and its
random deletion drops each word with probability ``p``. Here both operations are *per-token
probabilities*: every token that has a synonym is replaced with probability `synonym_prob` by
another member of its class, chosen uniformly, and every deletable token is dropped with
probability `deletion_prob`. So the expected number of replacements is
``synonym_prob x (tokens with a synonym)`` rather than a fixed count, and a sequence with no
synonyms is left alone instead of being forced to change. Like EDA, deletion never empties a
sequence: if every deletable token of a sequence is drawn for deletion, one of them (uniformly
chosen) is kept. EDA's gains were reported mainly for small training sets (N < 500).

**Synonym sources**, in the order they apply:

- a user-given mapping (``synonyms=``): either classes (lists of ids or words that may replace
  one another) or ``{word: [replacements]}`` (one-directional);
- a workload's ``synonym_classes``: for grammar-lm, the words of one preterminal of the
  grammar, synonyms by construction; for code-lm, identifiers mined from the training corpus as
  distributional neighbours (PPMI context vectors over +-2 tokens, grouped when their cosine
  similarity is at least ``step7bench.workloads.code_lm.SYNONYM_COSINE_THRESHOLD``; see
  ``step7bench.workloads.code_lm.mine_synonym_classes``).

A plain ``{word: id}`` vocabulary says nothing about meaning, so with no synonym source
synonym replacement *cannot* apply: the augmenter warns once when built, and
``'synonym'`` leaves every token unchanged (deletion still works).

**The engine plug-in** (technique ``augmentation``, a transform stage, sequence workloads).
Augmented examples *replace* their originals in the batch, they are not added: each example is
replaced by one augmented view with probability `augment_prob` and keeps its id. The batch
size, the steps and the FLOPs per step therefore stay the baseline's (deletion only shortens
sequences, so tokens through forward can only fall), and the technique's whole cost is the
transform's wall time, booked as overhead. Augmentation neither shrinks, reorders nor skips
data, so it has no random control.

A next-token example is ``(inputs, targets)`` shifted by one: the transform rebuilds each
example's token stream (``inputs[0]`` then the targets up to padding), edits the stream, and
derives both inputs and targets again from it, so they stay consistent; the stream's first
token (BOS, the context every prediction conditions on) and last token (EOS) are never
deleted.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from step7bench.engine import Plugin, TransformStage
from step7bench.engine.context import TrialContext
from step7bench.seeding import torch_generator
from step7bench.techniques._common import percent
from step7bench.techniques.registry import TechniqueSpec, activity
from step7bench.workloads.base import IGNORE_INDEX, Batch, Workload

METHODS = ("synonym", "deletion")

SynonymSource = Sequence[Sequence[int | str]] | Mapping[int | str, Sequence[int | str]]


# -- synonym lookup tables ------------------------------------------------------------------
@dataclass(frozen=True)
class SynonymTable:
    """Synonym rows as tensors, for vectorised replacement.

    Row ``r`` of `members` lists token ids (padded with -1 up to the longest row);
    ``class_of[v]`` is the row token ``v`` draws its replacements from (-1: no synonym) and
    ``slot_of[v]`` its own position in that row, which a replacement skips. A partition into
    classes shares one row per class; a one-directional mapping ``v -> [w...]`` gets the row
    ``[v, w...]``, with ``v`` at slot 0.
    """

    class_of: torch.Tensor  # (V,) long
    slot_of: torch.Tensor  # (V,) long
    members: torch.Tensor  # (R, M) long, -1 padded
    sizes: torch.Tensor  # (R,) long, members per row (>= 2)

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[int]], vocab_size: int, *, owner_first: bool = False) -> SynonymTable:
        """Rows of ids that may replace one another. With `owner_first`, each row belongs to
        its first id only (a mapping); otherwise to all its members (classes, disjoint)."""
        class_of = torch.full((vocab_size,), -1, dtype=torch.long)
        slot_of = torch.zeros(vocab_size, dtype=torch.long)
        kept = [list(dict.fromkeys(row)) for row in rows]
        kept = [row for row in kept if len(row) >= 2]
        width = max((len(row) for row in kept), default=1)
        members = torch.full((len(kept), width), -1, dtype=torch.long)
        for index, row in enumerate(kept):
            bad = [token for token in row if not 0 <= token < vocab_size]
            if bad:
                raise ValueError(f"synonyms: token id {bad[0]} is outside the vocabulary (size {vocab_size})")
            members[index, :len(row)] = torch.tensor(row)
            for slot, token in enumerate(row[:1] if owner_first else row):
                if class_of[token] >= 0:
                    raise ValueError(f"synonyms: token id {token} is in two synonym classes")
                class_of[token], slot_of[token] = index, slot
        sizes = torch.tensor([len(row) for row in kept], dtype=torch.long)
        return cls(class_of, slot_of, members, sizes)

    def to(self, device: torch.device | str) -> SynonymTable:
        return SynonymTable(self.class_of.to(device), self.slot_of.to(device), self.members.to(device),
                            self.sizes.to(device))

    @property
    def empty(self) -> bool:
        return self.members.shape[0] == 0



def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 1-D table, through index_select: advanced indexing of a small
    table by a large index runs a parallel kernel that is orders of magnitude slower on a busy
    CPU (see benchmarks/test_augmentation.py)."""
    return table.index_select(0, index.flatten()).view(index.shape)


def _resolve(token: int | str, vocab: Mapping[str, int]) -> int:
    if isinstance(token, str):
        if token not in vocab:
            raise ValueError(f"synonyms: word {token!r} is not in the vocabulary")
        return vocab[token]
    return int(token)


def synonym_table(source: SynonymSource | None, vocab: Mapping[str, int]) -> SynonymTable:
    """The table of a synonym source (classes, or a ``{word: [replacements]}`` mapping; words
    or ids). None gives an empty table: no token has a synonym."""
    vocab_size = max(vocab.values(), default=-1) + 1
    if source is None:
        return SynonymTable.from_rows([], vocab_size)
    if isinstance(source, Mapping):
        rows = [[_resolve(key, vocab), *(_resolve(t, vocab) for t in values)] for key, values in source.items()]
        return SynonymTable.from_rows(rows, vocab_size, owner_first=True)
    return SynonymTable.from_rows([[_resolve(t, vocab) for t in row] for row in source], vocab_size)


# -- the operations (pure, vectorised over a batch of rows) -----------------------------------
def replace_synonyms(tokens: torch.Tensor, table: SynonymTable, prob: float, generator: torch.Generator,
                     eligible: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each eligible token that has a synonym, with probability `prob`, by another
    member of its row chosen uniformly. Returns the new tokens and the mask of replaced ones.

    `tokens` must hold valid ids (any shape); `eligible` (same shape, bool) restricts where
    replacement may happen (default: everywhere).
    """
    # Drawn even when nothing has a synonym, so the draws of later operations do not depend on the table.
    draw = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    pick = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    if table.empty:
        return tokens, torch.zeros_like(tokens, dtype=torch.bool)
    row = lookup(table.class_of, tokens)
    replace = (row >= 0) & (draw < prob)
    if eligible is not None:
        replace &= eligible
    row = row.clamp(min=0)
    others = lookup(table.sizes, row) - 1  # choices besides the token itself
    offset = torch.minimum((pick * others).long(), others - 1).clamp(min=0)
    slot = offset + (offset >= lookup(table.slot_of, tokens)).long()  # skip the token's own slot
    slot = torch.where(replace, slot, torch.zeros_like(slot))
    replacement = lookup(table.members.flatten(), row * table.members.shape[1] + slot)
    return torch.where(replace, replacement, tokens), replace


def delete_tokens(tokens: torch.Tensor, lengths: torch.Tensor, prob: float, generator: torch.Generator,
                  eligible: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop each eligible token of each row with probability `prob`, then close the gaps.

    `tokens` is (B, L) with the first ``lengths[b]`` positions of row b real; `eligible` (B, L)
    marks deletable positions (padding never is). A row whose eligible tokens would all go keeps
    one of them, chosen uniformly, so deletion never empties a row that had any. Returns the
    compacted tokens (padded with `pad_id`), the new lengths and the mask of deleted positions.
    """
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    real = positions < lengths[:, None]
    eligible = eligible & real
    draw = torch.rand(tokens.shape, generator=generator, device=tokens.device)
    delete = eligible & (draw < prob)
    emptied = eligible.any(dim=1) & ~(eligible & ~delete).any(dim=1)
    survivor = torch.where(eligible, draw, torch.full_like(draw, -1.0)).argmax(dim=1)  # uniform: iid draws
    delete &= ~torch.zeros_like(delete).scatter_(1, survivor[:, None], emptied[:, None])
    keep = real & ~delete
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept tokens first, in order
    compacted = tokens.gather(1, order)
    new_lengths = keep.sum(dim=1)
    compacted = torch.where(positions < new_lengths[:, None], compacted, torch.full_like(compacted, pad_id))
    return compacted, new_lengths, delete


def lm_streams(inputs: torch.Tensor, targets: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The token stream behind each row of a next-token batch, shape (B, T + 1), and its length.

    A row's stream is ``inputs[0]`` followed by its targets up to the first padding position
    (targets equal to IGNORE_INDEX, which must all sit at the end); positions past the length
    hold `pad_id`.
    """
    predicted = targets != IGNORE_INDEX
    stream = torch.cat([inputs[:, :1], torch.where(predicted, targets, torch.full_like(targets, pad_id))], dim=1)
    return stream, predicted.sum(dim=1) + 1


def lm_rows(stream: torch.Tensor, lengths: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of `lm_streams`: inputs = stream[:-1] padded with `pad_id`, targets = stream[1:]
    padded with IGNORE_INDEX, both of width T."""
    positions = torch.arange(stream.shape[1] - 1, device=stream.device)
    predicted = positions < (lengths - 1)[:, None]
    inputs = torch.where(predicted, stream[:, :-1], torch.full_like(stream[:, :-1], pad_id))
    targets = torch.where(predicted, stream[:, 1:], torch.full_like(stream[:, 1:], IGNORE_INDEX))
    return inputs, targets


@dataclass(frozen=True)
class AugmentCounts:
    """What one batch transform changed (tensors, so counting never syncs a device)."""

    examples: torch.Tensor  # rows drawn for augmentation
    examples_changed: torch.Tensor  # of those, rows with at least one token replaced or deleted
    tokens_replaced: torch.Tensor
    tokens_deleted: torch.Tensor


def augment_lm_batch(inputs: torch.Tensor, targets: torch.Tensor, table: SynonymTable, *, synonym_prob: float,
                     deletion_prob: float, augment_prob: float, pad_id: int,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, AugmentCounts]:
    """The vectorised batch form: each row, with probability `augment_prob`, is replaced by a
    view with synonyms replaced and tokens deleted (per-token probabilities); inputs and targets
    are derived again from the edited stream. The stream's first and last tokens are never
    deleted. Shapes are kept: (B, T) in, (B, T) out.
    """
    stream, lengths = lm_streams(inputs, targets, pad_id)
    chosen = torch.rand(stream.shape[0], generator=generator, device=stream.device) < augment_prob
    positions = torch.arange(stream.shape[1], device=stream.device)
    real = chosen[:, None] & (positions < lengths[:, None])
    stream, replaced = replace_synonyms(stream, table, synonym_prob, generator, eligible=real)
    interior = real & (positions > 0) & (positions < (lengths - 1)[:, None])
    stream, lengths, deleted = delete_tokens(stream, lengths, deletion_prob, generator, interior, pad_id)
    new_inputs, new_targets = lm_rows(stream, lengths, pad_id)
    changed = (replaced | deleted).any(dim=1)
    return new_inputs, new_targets, AugmentCounts(chosen.sum(), changed.sum(), replaced.sum(), deleted.sum())


# -- the seed document's API ------------------------------------------------------------------
def _check_probability(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class LanguageDataAugmenter:
    """Synonym replacement and random deletion of token-id sequences (see the module docstring
    for the semantics against EDA and the synonym sources).

    `vocab` maps words to ids. `synonym_prob` and `deletion_prob` are per-token probabilities;
    `max_augmentations` bounds how many augmented sequences `augment_sequence` returns.
    `synonyms` gives the synonym source; `protected_ids` are never deleted (special tokens such
    as BOS/EOS); `seed` seeds the augmenter's random stream, so two augmenters built with the
    same seed give the same outputs call for call.
    """

    def __init__(self, vocab: Mapping[str, int], synonym_prob: float = 0.1, deletion_prob: float = 0.1,
                 max_augmentations: int = 2, *, synonyms: SynonymSource | None = None,
                 protected_ids: Iterable[int] = (), seed: int = 0) -> None:
        if not vocab:
            raise ValueError("vocab must map at least one word to an id")
        if max_augmentations < 1:
            raise ValueError(f"max_augmentations must be >= 1, got {max_augmentations!r}")
        self.vocab = dict(vocab)
        self.synonym_prob = _check_probability("synonym_prob", synonym_prob)
        self.deletion_prob = _check_probability("deletion_prob", deletion_prob)
        self.max_augmentations = int(max_augmentations)
        self.table = synonym_table(synonyms, self.vocab)
        if synonyms is None:
            warnings.warn("LanguageDataAugmenter: no synonym source given (synonyms=...), and a plain vocabulary "
                          "carries no synonyms: 'synonym' will leave tokens unchanged", UserWarning, stacklevel=2)
        self._valid_ids = torch.tensor(sorted(set(self.vocab.values())), dtype=torch.long)
        self._protected_ids = torch.tensor(sorted(set(protected_ids)), dtype=torch.long)
        self._generator = torch_generator(seed, "augmentation")

    def augment_sequence(self, token_ids: Sequence[int] | torch.Tensor | np.ndarray,
                         methods: Sequence[str] = ("synonym", "deletion")) -> list[Any]:
        """Up to `max_augmentations` distinct augmented copies of `token_ids`, each with every
        method of `methods` applied in the order given. Copies identical to the input are left
        out (they add nothing), so fewer may come back. Every copy is non-empty, no longer than
        the input, and holds only ids of the vocabulary. A tensor input gives 1-D long tensors,
        anything else lists of ints.
        """
        unknown = [method for method in methods if method not in METHODS]
        if unknown:
            raise ValueError(f"methods: unknown method {unknown[0]!r} (choose from {', '.join(METHODS)})")
        original = self._checked_ids(token_ids)
        rows = original.repeat(self.max_augmentations, 1)
        lengths = torch.full((rows.shape[0],), rows.shape[1], dtype=torch.long)
        for method in methods:
            if method == "synonym":
                rows, _ = replace_synonyms(rows, self.table, self.synonym_prob, self._generator)
            else:
                deletable = ~torch.isin(rows, self._protected_ids)
                rows, lengths, _ = delete_tokens(rows, lengths, self.deletion_prob, self._generator, deletable,
                                                 pad_id=0)
        unique: dict[tuple[int, ...], None] = {}
        for row, length in zip(rows.tolist(), lengths.tolist(), strict=True):
            unique.setdefault(tuple(row[:length]), None)
        unique.pop(tuple(original.tolist()), None)
        as_tensor = isinstance(token_ids, torch.Tensor)
        return [torch.tensor(seq, dtype=torch.long) if as_tensor else list(seq) for seq in unique]

    def _checked_ids(self, token_ids: Sequence[int] | torch.Tensor | np.ndarray) -> torch.Tensor:
        ids = torch.as_tensor(np.asarray(token_ids) if not isinstance(token_ids, torch.Tensor) else token_ids)
        if ids.dim() != 1 or ids.numel() == 0:
            raise ValueError(f"token_ids must be a non-empty 1-D sequence of ids, got shape {tuple(ids.shape)}")
        ids = ids.detach().to("cpu", torch.long)
        unknown = ids[~torch.isin(ids, self._valid_ids)]
        if unknown.numel():
            raise ValueError(f"token_ids: id {int(unknown[0])} is not in the vocabulary")
        return ids


# -- the engine plug-in -----------------------------------------------------------------------

class AugmentBatches(TransformStage):
    """Replaces each example of a batch, with probability `augment_prob`, by an augmented view
    (`augment_lm_batch`); its wall time is booked as overhead."""

    def __init__(self, table: SynonymTable, *, synonym_prob: float, deletion_prob: float, augment_prob: float,
                 pad_id: int) -> None:
        self._table = table
        self._settings = {"synonym_prob": synonym_prob, "deletion_prob": deletion_prob,
                          "augment_prob": augment_prob, "pad_id": pad_id}
        self._reset_counts(torch.device("cpu"))  # so `stats` works even if the trial failed before setup

    def _reset_counts(self, device: torch.device) -> None:
        # Counts stay on the device: reading them would sync it at every step.
        self._examples_seen = 0
        self._tokens_seen, self._examples, self._changed, self._replaced, self._deleted = (
            torch.zeros((), dtype=torch.long, device=device) for _ in range(5))

    def setup(self, ctx: TrialContext) -> None:
        self._table = self._table.to(ctx.device)
        self._generator = torch_generator(ctx.seed, "augmentation", ctx.device)  # draws where the batch is
        self._reset_counts(ctx.device)

    def transform(self, ctx: TrialContext, batch: Batch) -> Batch:
        with ctx.overhead():
            inputs, targets, counts = augment_lm_batch(batch.inputs, batch.targets, self._table,
                                                       generator=self._generator, **self._settings)
            self._examples_seen += len(batch)
            self._tokens_seen += (batch.targets != IGNORE_INDEX).sum()
            self._examples += counts.examples
            self._changed += counts.examples_changed
            self._replaced += counts.tokens_replaced
            self._deleted += counts.tokens_deleted
        return Batch(batch.ids, inputs, targets)

    def stats(self) -> dict[str, Any]:
        """`augmented_*`: examples drawn for augmentation (at `augment_prob`); `changed_*`: those the
        operations actually changed (a drawn view without a synonym or a deletion is the original),
        which is what the activity counts."""
        tokens_seen = max(int(self._tokens_seen), 1)
        changed = int(self._changed) / max(self._examples_seen, 1)
        return {"activity": activity(changed > 0, f"{percent(changed)} of examples augmented", changed),
                "augmented_examples": int(self._examples),
                "changed_examples": int(self._changed), "changed_fraction": changed,
                "augmented_fraction": int(self._examples) / max(self._examples_seen, 1),
                "tokens_replaced": int(self._replaced), "tokens_deleted": int(self._deleted),
                "replaced_per_token": int(self._replaced) / tokens_seen,
                "deleted_per_token": int(self._deleted) / tokens_seen}


DEFAULTS = {
    "synonym_prob": 0.1,  # the seed's per-token default
    "deletion_prob": 0.1,  # the seed's default; EDA's p for random deletion is also 0.1
    "augment_prob": 0.5,  # half of each batch is an augmented view: originals and views in equal measure
}


def _build(workload: Workload, config: Mapping[str, Any]) -> Plugin:
    for key in DEFAULTS:
        _check_probability(key, config[key])
    classes = workload.synonym_classes
    if classes is None and config["synonym_prob"] > 0:
        raise ValueError(f"synonym_prob: workload {workload.name!r} knows no synonym classes; set it to 0")
    vocab = workload.vocab or {}
    table = SynonymTable.from_rows(classes or [], workload.num_classes)
    stage = AugmentBatches(table, pad_id=vocab.get("<pad>", 0), **{key: float(config[key]) for key in DEFAULTS})
    return Plugin("augmentation", transform=stage)


TECHNIQUES = (
    TechniqueSpec(
        name="augmentation",
        summary="synonym replacement and random deletion (EDA, Wei & Zou 2019); augmented views replace "
                "originals in the batch, transform time charged as overhead",
        stages=("transform",), build=_build, defaults=DEFAULTS, tasks=frozenset({"sequence"}),
        # The seed's example: per-token probabilities 0.1 and 0.1, and up to two augmented copies
        # per sequence, i.e. a stream of one original to two views: a view replaces an example
        # with probability 2/3.
        as_specified={"synonym_prob": 0.1, "deletion_prob": 0.1, "augment_prob": 2 / 3},
        grid=(
            {"synonym_prob": 0.05, "deletion_prob": 0.05, "augment_prob": 8 / 9},  # EDA, N_train ~2,000
            {"synonym_prob": 0.1, "deletion_prob": 0.1, "augment_prob": 0.8},      # EDA, N_train >= 5,000
            {"synonym_prob": 0.05, "deletion_prob": 0.05, "augment_prob": 0.5},
            {"synonym_prob": 0.1, "deletion_prob": 0.0, "augment_prob": 0.5},      # synonyms only
            {"synonym_prob": 0.0, "deletion_prob": 0.1, "augment_prob": 0.5},      # deletion only
            {"synonym_prob": 0.05, "deletion_prob": 0.05, "augment_prob": 0.2},    # a light touch
        ),
        grid_source="EDA (Wei & Zou 2019), its recommended settings: alpha 0.05 with 8 views per sentence at "
                    "~2,000 training sentences, alpha 0.1 with 4 views at 5,000 or more (a view replaces an "
                    "example with probability n/(n+1)); its ablations of each operation alone; and lighter mixes",
    ),
)
