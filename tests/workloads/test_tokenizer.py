"""The byte-level BPE tokenizer: lossless on any text, deterministic, merges as specified."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step7bench.workloads.tokenizer import BYTE_TOKENS, BPETokenizer, pretokenize

# Text that looks like code: identifiers, digits, indentation, punctuation, and a little of
# everything else (non-ASCII, \r, tabs) so the lossless claim is tested where it is hardest.
code_like_text = st.text(
    alphabet=st.one_of(st.sampled_from(list("abcxyz_ABC019 \n\t()[]:.,=+-'\"#")),
                       st.characters(codec="utf-8")),
    max_size=200,
)

SAMPLE = '''def greet(name, count=3):
    """Say hello."""
    for i in range(count):
        print("hello", name, i)
    return None
'''


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.learn([SAMPLE * 3, "x = 1\ny = 22\n"], vocab_size=320)


@given(code_like_text)
def test_pretokens_concatenate_to_the_text(text: str) -> None:
    assert "".join(pretokenize(text)) == text


def test_pretokens_keep_one_leading_space_and_the_next_lines_indentation() -> None:
    assert pretokenize("if x:\n    return  y1\n") == ["if", " x", ":", "\n    ", "return", "  ", "y1", "\n"]


@settings(max_examples=200, deadline=None)
@given(code_like_text)
def test_decode_inverts_encode_on_any_text(tokenizer: BPETokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_learning_merges_the_most_frequent_pair_first_and_stops_at_pairs_seen_once() -> None:
    # Pre-tokens "ab", " ab", " ab": (a, b) occurs 3 times, (space, a) twice; after merging
    # (a, b) into 256, (space, 256) occurs twice; then no pair occurs twice.
    learned = BPETokenizer.learn(["ab ab ab"], vocab_size=1000)
    assert learned.merges == ((ord("a"), ord("b")), (ord(" "), 256))
    assert learned.vocab_size == BYTE_TOKENS + 2
    assert learned.encode("ab ab") == [256, 257]
    assert learned.token_string(257) == " ab"


def test_vocab_size_caps_the_merges() -> None:
    assert BPETokenizer.learn([SAMPLE * 5], vocab_size=BYTE_TOKENS + 7).vocab_size == BYTE_TOKENS + 7


def test_learning_is_deterministic() -> None:
    texts = [SAMPLE, SAMPLE.replace("name", "who"), "z = [1, 2, 3]\n" * 4]
    assert BPETokenizer.learn(texts, 400).merges == BPETokenizer.learn(texts, 400).merges


def test_frequent_identifiers_become_single_tokens(tokenizer: BPETokenizer) -> None:
    assert len(tokenizer.encode(" name")) == 1
    assert tokenizer.piece_share(" name") == 0.0
    assert tokenizer.piece_share("qqqq") == 1.0  # never seen: spelled in pieces


def test_vocab_names_every_id_once(tokenizer: BPETokenizer) -> None:
    vocab = tokenizer.vocab()
    assert sorted(vocab.values()) == list(range(tokenizer.vocab_size))
    assert vocab["\n"] == ord("\n")
    assert tokenizer.token_string(0xE2) == "<0xE2>"  # a lone UTF-8 lead byte is not text


def test_merges_survive_a_round_trip_through_an_array(tokenizer: BPETokenizer) -> None:
    rebuilt = BPETokenizer([tuple(pair) for pair in tokenizer.merges_array().tolist()])
    assert rebuilt.encode(SAMPLE) == tokenizer.encode(SAMPLE)


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.learn([SAMPLE], vocab_size=100)
    with pytest.raises(ValueError, match="not yet defined"):
        BPETokenizer([(ord("a"), 300)])


def test_round_trip_on_real_standard_library_files() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    learned_from = [(root / name).read_text(encoding="utf-8") for name in ("argparse.py", "shutil.py")]
    held_out = [(root / name).read_text(encoding="utf-8") for name in ("textwrap.py", "json/decoder.py")]
    tokenizer = BPETokenizer.learn(learned_from, vocab_size=1024)
    for text in held_out:
        ids = tokenizer.encode(text)
        assert tokenizer.decode(ids) == text
        assert len(ids) < len(text) / 2  # merges learned on other files still compress
