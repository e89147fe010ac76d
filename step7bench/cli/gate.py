"""`step7bench gate`: compare each arm's speedups with a committed baseline; exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.analysis.gate import (DEFAULT_ALPHA, DEFAULT_FACTOR, DEFAULT_TOLERANCE, compare, format_table,
                                      load_baseline)
from step7bench.analysis.results import analyze, load_results

EXIT_REGRESSION = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gate", help="compare speedups with a baseline file; exit 1 on a regression")
    parser.add_argument("--baseline", type=Path, required=True, help="a file written by `step7bench baseline save`")
    parser.add_argument("--results", type=Path,
                        help="results folder (default: reports/<the baseline's suite>/)")
    parser.add_argument("--allow-other-hardware", action="store_true",
                        help="compare with a baseline measured on another hardware class")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"relative change of a deterministic metric that still counts as equal "
                             f"(default {DEFAULT_TOLERANCE:g})")
    parser.add_argument("--factor", type=float, default=DEFAULT_FACTOR,
                        help=f"ratio a noisy metric must pass to count as changed (default {DEFAULT_FACTOR:g})")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"significance level of the Mann-Whitney test on noisy metrics (default {DEFAULT_ALPHA:g})")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    baseline = load_baseline(args.baseline)
    results_dir = args.results or Path("reports") / str((baseline.get("suite") or {}).get("name"))
    analysis = analyze(load_results(results_dir), claims=[])
    outcome = compare(baseline, analysis, allow_other_hardware=args.allow_other_hardware, tolerance=args.tolerance,
                      factor=args.factor, alpha=args.alpha)
    print(format_table(outcome))
    return EXIT_REGRESSION if outcome.regressed else 0
