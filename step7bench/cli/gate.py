"""`step7bench gate`: compare each arm's speedups with a committed baseline; exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from step7bench.cli.arguments import add_verb, factor, non_negative_float, probability
from step7bench.cli.choices import (DEFAULT_ALPHA, DEFAULT_DRIFT_TOLERANCE, DEFAULT_FACTOR, DEFAULT_TOLERANCE,
                                    GATE_FORMATS)
from step7bench.cli.input_errors import check_results_database

if TYPE_CHECKING:
    from step7bench.analysis.gate import Thresholds

EXIT_REGRESSION = 1

DESCRIPTION = """
Compare each arm's speedups in a results folder with a baseline file (`step7bench baseline save`)
and exit 1 on a regression. On the baseline's hardware class deterministic metrics (steps,
examples, FLOPs) must match within --tolerance and noisy ones (wall-clock, energy) change only
when --factor and a Mann-Whitney test at --alpha agree; on another hardware class deterministic
metrics are compared with the drift-tolerant rule and noisy ones are not compared.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "gate", summary="compare speedups with a baseline file; exit 1 on a regression",
                      description=DESCRIPTION,
                      examples=["step7bench gate --baseline baselines/smoke-cpu.json --results reports/smoke",
                                "step7bench gate --baseline baselines/smoke-cpu.json --format markdown > comment.md"])
    parser.add_argument("--baseline", type=Path, required=True, metavar="FILE",
                        help="a file written by `step7bench baseline save`")
    parser.add_argument("--results", type=Path, metavar="DIR",
                        help="results folder (default: reports/<the baseline's suite>/)")
    parser.add_argument("--format", choices=GATE_FORMATS, default="text",
                        help="text (a terminal), markdown (a pull-request comment), json, junit (a CI test view)")
    add_threshold_arguments(parser)
    parser.set_defaults(handler=_run)


def add_threshold_arguments(parser: argparse.ArgumentParser) -> None:
    """What counts as a change (the gate's Thresholds), shared with `compare`."""
    parser.add_argument("--tolerance", type=non_negative_float, default=DEFAULT_TOLERANCE, metavar="T",
                        help=f"relative change of a deterministic metric that still counts as equal on the "
                             f"baseline's hardware class (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--drift-tolerance", type=non_negative_float, default=DEFAULT_DRIFT_TOLERANCE, metavar="D",
                        help=f"the same across hardware classes, on the median and a majority of seeds "
                             f"(default {DEFAULT_DRIFT_TOLERANCE:g})")
    parser.add_argument("--factor", type=factor, default=DEFAULT_FACTOR, metavar="F",
                        help=f"ratio (>= 1) a noisy metric must pass to count as changed (default {DEFAULT_FACTOR:g})")
    parser.add_argument("--alpha", type=probability, default=DEFAULT_ALPHA, metavar="A",
                        help="significance level of the Mann-Whitney test on noisy metrics, in (0, 1) "
                             f"(default {DEFAULT_ALPHA:g})")


def thresholds(args: argparse.Namespace) -> Thresholds:
    """The gate's Thresholds from the parsed flags."""
    from step7bench.analysis.gate import Thresholds

    return Thresholds(args.tolerance, args.drift_tolerance, args.factor, args.alpha)


def _run(args: argparse.Namespace) -> int:
    from step7bench.analysis.gate import compare, load_baseline
    from step7bench.analysis.results import analyze, load_results
    from step7bench.report.gate_formats import format_outcome

    baseline = load_baseline(args.baseline)
    args.results = args.results or Path("reports") / str((baseline.get("suite") or {}).get("name"))
    check_results_database(args.results)
    results = load_results(args.results)
    analysis = analyze(results, claims=[])
    outcome = compare(baseline, analysis, thresholds(args))
    print(format_outcome(outcome, args.format))
    return EXIT_REGRESSION if outcome.regressed else 0
