"""Harness tests run against stand-in techniques (see harness_fakes.py) on digits micro."""

from __future__ import annotations

from pathlib import Path

import pytest

import harness_fakes
from harness_fakes import mini_suite_text

SUITES = Path(__file__).resolve().parent / "suites"


@pytest.fixture
def fake_specs(monkeypatch):
    return harness_fakes.install(monkeypatch)


@pytest.fixture
def mini_suite(tmp_path) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(mini_suite_text())
    return path
