"""`step7bench calibrate`: set a suite's validation targets from baseline runs."""

from __future__ import annotations

import argparse
import sys

from step7bench.cli.run import add_suite_arguments, apply_threads
from step7bench.errors import UserError
from step7bench.harness.calibrate import calibrate, write_targets
from step7bench.harness.suite import load_suite


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="write a suite's validation targets from baseline runs")
    add_suite_arguments(parser)
    parser.add_argument("--margin", type=float, help="relative margin above the median (default: the suite's)")
    parser.set_defaults(handler=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    apply_threads(args)
    suite = load_suite(args.suite, require_targets=False)
    if suite.targets_path is None:
        raise UserError(f"suite {suite.path} names no targets file: add `targets = \"targets/{suite.name}.toml\"`")
    if args.margin is not None and not 0 <= args.margin < 1:
        raise UserError(f"--margin must be in [0, 1), got {args.margin}")
    records = calibrate(suite, device=args.device, seeds=args.seeds, margin=args.margin,
                        report=lambda line: print(line, file=sys.stderr, flush=True))
    write_targets(suite.targets_path, records, _command(args))
    for record in records:
        print(f"{record.workload}/{record.preset}: target {record.target_val_loss:.4f} "
              f"(median best {record.median_best_val_loss:.4f} over seeds {record.calibration_seeds})")
    print(f"targets written to {suite.targets_path}")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command that reproduces these targets, for the targets file's header."""
    words = ["step7bench calibrate --suite", args.suite]
    if args.seeds is not None:
        words.append(f"--seeds {args.seeds}")
    if args.margin is not None:
        words.append(f"--margin {args.margin:g}")
    return " ".join(words)
