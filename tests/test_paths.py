"""The cache root and the atomic write every cache uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from step7bench.paths import atomic_write, cache_root


def test_cache_root_follows_the_environment_and_defaults_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("STEP7BENCH_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.setenv("STEP7BENCH_CACHE", "")
    assert cache_root() == Path.home() / ".cache" / "step7bench"
    monkeypatch.delenv("STEP7BENCH_CACHE")
    assert cache_root() == Path.home() / ".cache" / "step7bench"


def test_atomic_write_creates_folders_and_replaces_the_whole_file(tmp_path):
    path = tmp_path / "a" / "b" / "entry.bin"
    atomic_write(path, lambda handle: handle.write(b"old"))
    atomic_write(path, lambda handle: handle.write(b"new"))
    assert path.read_bytes() == b"new"
    assert [p.name for p in path.parent.iterdir()] == ["entry.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "entry.bin"
    atomic_write(path, lambda handle: handle.write(b"old"))

    def half_then_fail(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["entry.bin"]
