"""A small synthetic results folder, written once per test session, for the report tests; and the
report of every shape of suite in `report_suites.SHAPES`, rendered once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The synthetic trial tables live with the analysis tests, which own them; the report tests read them too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from synthetic import synthetic_seed_suite, write_store  # noqa: E402


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory):
    # One workload and four seeds keep the figures quick to draw; every section still has data.
    trials, curves, runs = synthetic_seed_suite(seeds=range(4), workloads=("grammar-lm",))
    return write_store(tmp_path_factory.mktemp("results"), trials, curves, runs)


@pytest.fixture(scope="session")
def report(results_dir):
    from step7bench.report import write_report

    return write_report(results_dir)


@pytest.fixture(scope="session")
def suite_reports(tmp_path_factory) -> dict[str, Path]:
    """Shape name -> the index.html of its report (every shape of `report_suites.SHAPES`)."""
    from report_suites import SHAPES, render_suite

    return {name: render_suite(tmp_path_factory.mktemp(name), shape) for name, shape in SHAPES.items()}
