"""code-lm: the corpus, its file-level splits, the windows, the fingerprint, synonym classes,
and a real learning check on the real standard library."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from step7bench.errors import UserError
from step7bench.seeding import numpy_rng
from step7bench.workloads.base import mean_loss
from step7bench.workloads.code_lm import (SPLITS, VAL_FRACTION, CodeLM, cut_windows, greedy_classes,
                                          is_source_file, list_corpus_files, ppmi_context_vectors,
                                          split_of)

NOUNS = ["name", "path", "value", "count", "line", "item", "key", "data", "size", "node"]
VERBS = ["get", "set", "read", "write", "parse", "format", "check", "build"]


def _fake_module(rng: np.random.Generator, title: str, functions: int) -> str:
    lines = [f'"""The {title} module."""', "", "import os", ""]
    for k in range(functions):
        verb, noun, other = rng.choice(VERBS), rng.choice(NOUNS), rng.choice(NOUNS)
        lines += [f"def {verb}_{noun}_{k}({noun}, {other}=None):",
                  f'    """{verb.title()} the {noun} of a {other}."""',
                  f"    if {other} is None:",
                  f"        return {noun}",
                  f"    return os.path.join({noun}, str({other}))", ""]
    return "\n".join(lines)


def _write_fake_stdlib(root: Path) -> Path:
    """40 top-level modules (target), two packages of 20 files (source), and what must be skipped."""
    rng = numpy_rng(0, "test fake stdlib")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(40):
        (root / f"mod{i:02d}.py").write_text(_fake_module(rng, f"mod{i}", 12), encoding="utf-8")
    for package in ("alpha", "beta"):
        (root / package).mkdir()
        for i in range(20):
            (root / package / f"part{i:02d}.py").write_text(_fake_module(rng, f"{package}{i}", 12), encoding="utf-8")
    for skipped in ("test", "site-packages", "encodings"):
        (root / skipped).mkdir()
        (root / skipped / "skipped.py").write_text("x = 1\n", encoding="utf-8")
    (root / "latin1.py").write_bytes(b"# caf\xe9\n")  # not UTF-8: left out
    (root / "notes.txt").write_text("not python\n", encoding="utf-8")
    return root


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    return _write_fake_stdlib(tmp_path / "stdlib")


@pytest.fixture
def fake(fake_root: Path, tmp_path: Path) -> CodeLM:
    return CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "cache")


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory) -> CodeLM:
    """The real standard library at the micro preset, with a cache private to this module."""
    return CodeLM("micro", cache_dir=tmp_path_factory.mktemp("code-lm-cache"))


# -- corpus and splits ------------------------------------------------------------------------
def test_corpus_lists_python_files_in_sorted_order_without_excluded_folders(fake_root: Path) -> None:
    files = list_corpus_files(fake_root)
    assert files == sorted(files)
    assert len(files) == 81  # 40 modules + 40 package files + latin1.py (listed, not decodable)
    assert not any(f.split("/")[0] in {"test", "site-packages", "encodings"} for f in files)


def test_undecodable_files_are_left_out_of_the_corpus(fake: CodeLM) -> None:
    assert "latin1.py" not in fake.corpus.files
    assert len(fake.corpus.files) == 80


def test_every_file_lands_in_exactly_one_split_of_its_domain(fake: CodeLM) -> None:
    files = fake.files
    assert all(files[split] for split in SPLITS)
    every = [path for split in SPLITS for path in files[split]]
    assert len(every) == len(set(every)) == len(fake.corpus.files)
    assert all(is_source_file(p) for p in files["source_train"] + files["source_val"])
    assert not any(is_source_file(p) for p in files["train"] + files["val"])


def test_a_files_split_depends_on_its_path_and_the_data_seed_only() -> None:
    paths = [f"pkg{i}/mod{j}.py" for i in range(20) for j in range(50)]
    val_share = np.mean([split_of(p, 0) == "source_val" for p in paths])
    assert abs(val_share - VAL_FRACTION) < 0.03
    assert [split_of(p, 0) for p in paths] == [split_of(p, 0) for p in reversed(paths)][::-1]
    assert [split_of(p, 0) for p in paths] != [split_of(p, 1) for p in paths]


def test_the_real_splits_share_no_file(micro: CodeLM) -> None:
    seen = [path for paths in micro.files.values() for path in paths]
    assert len(seen) == len(set(seen))


# -- windows ------------------------------------------------------------------------------------
def test_windows_have_stride_t_and_drop_short_tails() -> None:
    streams = [np.arange(10), np.arange(100, 103)]  # the second is shorter than one window
    windows = cut_windows(streams, context=3)
    np.testing.assert_array_equal(windows, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])


def test_examples_are_next_token_pairs_with_ids_in_range(micro: CodeLM) -> None:
    context = micro.preset.data["context"]
    for split in SPLITS:
        dataset = getattr(micro, split)
        assert len(dataset) == micro.preset.data["windows"][split]
        assert dataset.inputs.shape == dataset.targets.shape == (len(dataset), context)
        assert dataset.inputs.dtype == torch.long
        assert 0 <= int(dataset.inputs.min()) and int(dataset.inputs.max()) < micro.num_classes
        torch.testing.assert_close(dataset.inputs[:, 1:], dataset.targets[:, :-1])


def test_every_window_is_contiguous_text_of_one_file_of_its_split(micro: CodeLM) -> None:
    sources = [(micro.corpus.root / p).read_bytes() for p in micro.files["val"]]
    for row in (0, len(micro.val) // 2, len(micro.val) - 1):
        ids = torch.cat([micro.val.inputs[row], micro.val.targets[row, -1:]]).tolist()
        window_bytes = b"".join(micro.tokenizer.token_bytes(i) for i in ids)
        assert any(window_bytes in source for source in sources)


# -- tokenizer, determinism, cache, fingerprint ---------------------------------------------------
def test_real_files_round_trip_including_validation_files(micro: CodeLM) -> None:
    for path in micro.files["val"] + micro.files["source_val"][:3] + micro.files["train"][:2]:
        text = (micro.corpus.root / path).read_text(encoding="utf-8")
        assert micro.tokenizer.decode(micro.tokenizer.encode(text)) == text


def test_building_is_deterministic_and_the_cache_returns_the_same_data(fake_root: Path, tmp_path: Path) -> None:
    first = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "a")
    fresh = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "b")
    cached = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "a")
    first.train  # builds and writes the cache that `cached` then reads
    for other in (fresh, cached):
        assert other.tokenizer.merges == first.tokenizer.merges
        assert other.files == first.files
        for split in SPLITS:
            assert torch.equal(getattr(other, split).inputs, getattr(first, split).inputs)
    assert len(list((tmp_path / "a").rglob("*.npz"))) == 1


def test_an_unreadable_cache_entry_is_rebuilt(fake_root: Path, tmp_path: Path) -> None:
    built = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "cache")
    built.train
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    entry.write_bytes(b"not a zip archive")
    rebuilt = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "cache")
    assert torch.equal(rebuilt.train.inputs, built.train.inputs)
    assert entry.read_bytes().startswith(b"PK")  # overwritten with a good archive


def test_a_cache_that_cannot_be_written_only_warns(fake_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder would go", encoding="utf-8")
    workload = CodeLM("micro", corpus_root=fake_root, cache_dir=blocker)
    with pytest.warns(UserWarning, match="could not cache"):
        assert len(workload.train) > 0


def test_fingerprint_changes_when_the_corpus_changes(fake_root: Path, tmp_path: Path) -> None:
    before = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "cache")
    fingerprint = before.fingerprint()
    assert fingerprint["corpus"]["python"] == platform.python_version()
    assert fingerprint["corpus"]["files"] == 80
    assert fingerprint["vocab_size"] == before.num_classes

    path = fake_root / "mod00.py"
    path.write_text(path.read_text(encoding="utf-8") + "\nEXTRA = 1\n", encoding="utf-8")
    after = CodeLM("micro", corpus_root=fake_root, cache_dir=tmp_path / "cache")
    assert after.fingerprint()["corpus"]["digest"] != fingerprint["corpus"]["digest"]
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2  # the stale cache entry is not reused


def test_a_different_data_seed_gives_different_splits(fake_root: Path, tmp_path: Path) -> None:
    seed0 = CodeLM("micro", data_seed=0, corpus_root=fake_root, cache_dir=tmp_path / "cache")
    seed1 = CodeLM("micro", data_seed=1, corpus_root=fake_root, cache_dir=tmp_path / "cache")
    assert seed0.files != seed1.files


def test_user_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a folder"):
        CodeLM("micro", corpus_root=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no UTF-8 .py files"):
        CodeLM("micro", corpus_root=tmp_path / "empty", cache_dir=tmp_path / "cache").train
    with pytest.raises(UserError, match="no preset"):
        CodeLM("huge")


# -- synonym classes --------------------------------------------------------------------------
def test_greedy_classes_are_disjoint_and_complete_linkage() -> None:
    similarity = np.array([[1.0, 0.9, 0.8, 0.1],
                           [0.9, 1.0, 0.2, 0.1],  # 1 and 2 are not similar: 2 cannot join 0's class
                           [0.8, 0.2, 1.0, 0.7],
                           [0.1, 0.1, 0.7, 1.0]])
    assert greedy_classes(similarity, threshold=0.5) == [[0, 1], [2, 3]]


def test_ppmi_vectors_of_words_in_the_same_contexts_are_close() -> None:
    # Tokens 1 and 2 both sit between 5 and 6; token 3 sits between 7 and 8.
    stream = np.array([5, 1, 6, 5, 2, 6, 7, 3, 8, 5, 1, 6, 7, 3, 8, 5, 2, 6])
    words = np.array([1, 2, 3])
    vectors = ppmi_context_vectors([stream], [np.isin(stream, words)], words, np.arange(9), vocab_size=9)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.9 > 0.1 > similarity[0, 2]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_real_synonym_classes_are_disjoint_identifiers_in_range(micro: CodeLM) -> None:
    classes = micro.synonym_classes
    assert classes
    members = [token for group in classes for token in group]
    assert len(members) == len(set(members))
    assert all(len(group) >= 2 for group in classes)
    assert all(0 <= token < micro.num_classes for token in members)
    texts = [micro.tokenizer.token_string(token).lstrip(" ") for token in members]
    assert all(text.isidentifier() for text in texts)


# -- a real learning check ----------------------------------------------------------------------
def test_a_briefly_trained_model_beats_the_unigram_entropy_of_the_validation_tokens(micro: CodeLM) -> None:
    """The bar is the entropy of the validation tokens under their own unigram frequencies:
    no model that ignores context can do better, even one told those frequencies."""
    counts = torch.bincount(micro.val.targets.flatten(), minlength=micro.num_classes).double()
    frequencies = counts[counts > 0] / counts.sum()
    unigram_entropy = float(-(frequencies * frequencies.log()).sum())

    hparams = micro.hparams
    torch.manual_seed(0)
    model = micro.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=hparams.lr, betas=hparams.betas,
                                  weight_decay=hparams.weight_decay)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / hparams.warmup_steps,
                                               total_iters=hparams.warmup_steps)
    order = torch.randperm(len(micro.train), generator=torch.Generator().manual_seed(0))
    for step in range(80):
        ids = order[(step * hparams.batch_size) % len(order):][:hparams.batch_size]
        batch = micro.train.gather(ids)
        optimizer.zero_grad(set_to_none=True)
        mean_loss(model(batch.inputs), batch.targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), hparams.grad_clip_norm)
        optimizer.step()
        warmup.step()
    val_loss = micro.evaluate(model, "cpu")
    assert math.isfinite(val_loss)
    assert val_loss < unigram_entropy - 0.2
