"""A byte-level BPE tokenizer for Python source, learned from a corpus.

Two stages, both lossless, so ``decode(encode(text)) == text`` for every string that UTF-8
can encode (every decoded source file):

1. **Pre-tokenizer.** A regular expression cuts the text into pre-tokens whose
   concatenation is the text: an identifier or keyword, a run of digits, or one other
   non-space character — each with at most one leading space (GPT-2's trick: `` self`` is one
   piece, so a line costs about half as many tokens) — a line break together with the next
   line's indentation (``"\\n        "``), a run of spaces or tabs, or any other single
   character (``\\r``, ``\\f``). Merges never cross a pre-token boundary.
2. **Byte-pair encoding** (Sennrich, Haddow & Birch 2016; byte-level as in GPT-2, Radford et
   al. 2019). Ids 0-255 are the 256 bytes; each learned merge joins two existing tokens into
   a new one, most frequent adjacent pair first, counted over the pre-tokens of the training
   texts. Encoding applies the merges in the order they were learned.

Because the 256 bytes are tokens, every text encodes: nothing maps to ``<unk>``. A pre-token
the learned merges do not cover whole is spelled in several pieces (a rare identifier as
subwords, a non-ASCII character as its bytes); `piece_share` measures how many tokens that
is on a given text.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

BYTE_TOKENS = 256
"""Ids below this are single bytes; merged tokens follow, in the order they were learned."""

PRETOKEN_PATTERN = re.compile(
    r" ?[A-Za-z_][A-Za-z0-9_]*"  # identifier or keyword
    r"| ?[0-9]+"                 # digits (a float is digits, '.', digits)
    r"| ?[^\sA-Za-z0-9_]"        # one punctuation mark or non-ASCII character
    r"|\n[ \t]*"                 # line break plus the next line's indentation
    r"|[ \t]+"                   # other runs of spaces and tabs
    r"|.",                       # anything left: \r, \f, \v
    re.ASCII | re.DOTALL,
)


def pretokenize(text: str) -> list[str]:
    """The pre-tokens of `text`; ``"".join(pretokenize(text)) == text``."""
    return PRETOKEN_PATTERN.findall(text)


class BPETokenizer:
    """Byte-level BPE with `merges[i]` = the pair of token ids that token ``256 + i`` joins."""

    def __init__(self, merges: Sequence[tuple[int, int]]) -> None:
        self.merges: tuple[tuple[int, int], ...] = tuple((int(a), int(b)) for a, b in merges)
        self._merged_id = {pair: BYTE_TOKENS + rank for rank, pair in enumerate(self.merges)}
        for rank, (left, right) in enumerate(self.merges):
            if max(left, right) >= BYTE_TOKENS + rank:
                raise ValueError(f"merges[{rank}] = {(left, right)} refers to a token not yet defined")
        self._token_bytes: list[bytes] = [bytes([b]) for b in range(BYTE_TOKENS)]
        for left, right in self.merges:
            self._token_bytes.append(self._token_bytes[left] + self._token_bytes[right])
        self._pretoken_ids: dict[str, tuple[int, ...]] = {}

    # -- learning ---------------------------------------------------------------------------
    @classmethod
    def learn(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        """Learn up to ``vocab_size - 256`` merges from `texts`.

        Ties between equally frequent pairs go to the smaller pair of ids, so the result is a
        function of the texts alone. Learning stops early when no pair occurs twice (a merge
        seen once would only memorise), so the vocabulary may come out smaller than asked.
        """
        if vocab_size < BYTE_TOKENS:
            raise ValueError(f"vocab_size must be at least {BYTE_TOKENS}, got {vocab_size}")
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(pretokenize(text))
        return cls(_learn_merges(counts, vocab_size - BYTE_TOKENS))

    # -- encoding ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self._token_bytes)

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for pretoken in pretokenize(text):
            ids.extend(self._tokens_of(pretoken))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; raises UnicodeDecodeError if they split a character's bytes."""
        return b"".join(self._token_bytes[int(i)] for i in ids).decode("utf-8")

    def _tokens_of(self, pretoken: str) -> tuple[int, ...]:
        # Code repeats itself: most pre-tokens were seen before, so their encoding is cached.
        cached = self._pretoken_ids.get(pretoken)
        if cached is None:
            cached = self._pretoken_ids[pretoken] = self._encode_pretoken(pretoken.encode("utf-8"))
        return cached

    def _encode_pretoken(self, data: bytes) -> tuple[int, ...]:
        # Apply the earliest-learned merge present until none applies: the order of learning.
        symbols = list(data)
        while len(symbols) > 1:
            candidates = [self._merged_id.get(pair) for pair in zip(symbols, symbols[1:])]
            best = min((c for c in candidates if c is not None), default=None)
            if best is None:
                break
            symbols = _merge(symbols, self.merges[best - BYTE_TOKENS], best)
        return tuple(symbols)

    # -- vocabulary -------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        return self._token_bytes[token_id]

    def token_string(self, token_id: int) -> str:
        """A token's text; tokens that are not whole UTF-8 characters are written ``<0xNN>``
        per byte (no pre-token can hold ``<0x``, so the names never clash with real text)."""
        data = self._token_bytes[token_id]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"<0x{b:02X}>" for b in data)

    def vocab(self) -> dict[str, int]:
        """Token string -> id, for every id."""
        return {self.token_string(i): i for i in range(self.vocab_size)}

    def merges_array(self) -> np.ndarray:
        """The merges as an (n_merges, 2) int64 array, for saving."""
        return np.asarray(self.merges, dtype=np.int64).reshape(-1, 2)

    def piece_share(self, text: str) -> float:
        """Share of `text`'s tokens that spell a pre-token in two or more pieces: the part of
        the stream a vocabulary of whole pre-tokens would have had to send to ``<unk>``."""
        pieces = [self._tokens_of(p) for p in pretokenize(text)]
        total = sum(len(ids) for ids in pieces)
        return sum(len(ids) for ids in pieces if len(ids) > 1) / total if total else 0.0


def _merge(symbols: list[int], pair: tuple[int, int], merged: int) -> list[int]:
    """`symbols` with every non-overlapping occurrence of `pair`, left to right, replaced."""
    out: list[int] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _learn_merges(pretoken_counts: Counter[str], max_merges: int) -> list[tuple[int, int]]:
    """BPE training over distinct pre-tokens weighted by their counts.

    Pair counts are updated incrementally: a merge rewrites only the words that contain its
    pair, and a lazy max-heap (stale entries skipped on pop) finds the next most frequent pair.
    """
    words = [list(p.encode("utf-8")) for p in pretoken_counts]
    weights = list(pretoken_counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    words_with: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for index, (word, weight) in enumerate(zip(words, weights)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += weight
            words_with[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    while heap and len(merges) < max_merges:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale: the count changed after this entry was pushed
        if -negative_count < 2:
            break
        merged = BYTE_TOKENS + len(merges)
        merges.append(pair)
        touched: set[tuple[int, int]] = set()
        for index in words_with.pop(pair):
            old = words[index]
            new = _merge(old, pair, merged)
            if len(new) == len(old):
                continue  # an earlier merge already consumed this word's occurrence
            for old_pair in zip(old, old[1:]):
                pair_counts[old_pair] -= weights[index]
                touched.add(old_pair)
            for new_pair in zip(new, new[1:]):
                pair_counts[new_pair] += weights[index]
                words_with[new_pair].add(index)
                touched.add(new_pair)
            words[index] = new
        pair_counts.pop(pair, None)
        for changed in touched - {pair}:
            if pair_counts[changed] > 0:
                heapq.heappush(heap, (-pair_counts[changed], changed))
            else:
                del pair_counts[changed]
    return merges
