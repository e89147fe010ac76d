"""How fast the command line answers: `step7bench --help` as a fresh process (goal: well under a
second; building the parser imports no torch, scipy or pandas), and `step7bench list`, which
loads every workload, technique and suite, for comparison.

Each round starts a new interpreter, as a user's shell does; the first round warms the file
cache and is thrown away.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# The installed console script when it is there (what a user runs), else the module.
SCRIPT = Path(sys.executable).with_name("step7bench")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "step7bench.cli"]
HELP_GOAL_S = 1.0


def _run(*argv: str) -> None:
    subprocess.run([*COMMAND, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_help_as_a_fresh_process(benchmark):
    benchmark.pedantic(_run, args=("--help",), rounds=10, warmup_rounds=1)
    benchmark.extra_info["goal_s"] = HELP_GOAL_S


@pytest.mark.parametrize("verb", ["run", "gate", "export"])
def test_verb_help_as_a_fresh_process(benchmark, verb):
    benchmark.pedantic(_run, args=(verb, "--help"), rounds=5, warmup_rounds=1)


def test_list_as_a_fresh_process(benchmark):
    benchmark.pedantic(_run, args=("list",), rounds=3, warmup_rounds=1)
