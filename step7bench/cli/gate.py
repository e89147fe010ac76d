"""`step7bench gate`: compare each arm's speedups with a committed baseline; exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.analysis.gate import (DEFAULT_ALPHA, DEFAULT_DRIFT_TOLERANCE, DEFAULT_FACTOR, DEFAULT_TOLERANCE,
                                      Thresholds, compare, load_baseline)
from step7bench.analysis.results import analyze, load_results
from step7bench.report.gate_formats import GATE_FORMATS, format_outcome

EXIT_REGRESSION = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gate", help="compare speedups with a baseline file; exit 1 on a regression")
    parser.add_argument("--baseline", type=Path, required=True, help="a file written by `step7bench baseline save`")
    parser.add_argument("--results", type=Path,
                        help="results folder (default: reports/<the baseline's suite>/)")
    parser.add_argument("--format", choices=GATE_FORMATS, default="text",
                        help="text (a terminal), markdown (a pull-request comment), json, junit (a CI test view)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"relative change of a deterministic metric that still counts as equal on the "
                             f"baseline's hardware class (default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--drift-tolerance", type=float, default=DEFAULT_DRIFT_TOLERANCE,
                        help=f"the same across hardware classes, on the median and a majority of seeds "
                             f"(default {DEFAULT_DRIFT_TOLERANCE:g})")
    parser.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                        help=f"ratio a noisy metric must pass to count as changed (default {DEFAULT_FACTOR:g})")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"significance level of the Mann-Whitney test on noisy metrics (default {DEFAULT_ALPHA:g})")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    baseline = load_baseline(args.baseline)
    results_dir = args.results or Path("reports") / str((baseline.get("suite") or {}).get("name"))
    analysis = analyze(load_results(results_dir), claims=[])
    outcome = compare(baseline, analysis, Thresholds(args.tolerance, args.drift_tolerance, args.factor, args.alpha))
    print(format_outcome(outcome, args.format))
    return EXIT_REGRESSION if outcome.regressed else 0
