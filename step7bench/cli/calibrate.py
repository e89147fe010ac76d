"""`step7bench calibrate`: set a suite's targets, measure its weakened reference, tune its techniques."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys

from step7bench.cli.arguments import add_verb, apply_threads, default_jobs, margin, positive_int
from step7bench.cli.run import add_suite_arguments
from step7bench.errors import UserError

DESCRIPTION = """
On calibration seeds set apart from the seeds the arms are judged on, for each of a suite's
workloads: run the baseline with every check made and set the target (the median of the lowest
validation loss each seed holds for the workload's confirmation span, raised by a margin, with the
share of seeds that reach it); run the weakened reference (the baseline at a scaled learning rate)
to that target, the positive control's expected speedup; and tune every technique over its grid
(the winner: the lowest median cost to target, all-in). Writes it all, with how it was set, to the
suite's targets file (`targets = "targets/NAME.toml"`).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "calibrate", summary="set a suite's targets and tune its techniques on calibration seeds",
                      description=DESCRIPTION,
                      examples=["step7bench calibrate --suite quick --threads 1 --jobs 2",
                                "step7bench calibrate --suite smoke --no-tune --seeds 3 --margin 0.05"])
    add_suite_arguments(parser, seeds_help="calibration seeds per workload (default: the suite's calibration.seeds); "
                                           "they are set apart from the seeds the arms are judged on")
    parser.add_argument("--margin", type=margin, metavar="M",
                        help="relative margin in [0, 1) above the median sustained best loss, for every workload "
                             "(default: each workload's calibration_margin, else the suite's calibration.margin)")
    parser.add_argument("--no-tune", action="store_true",
                        help="set the targets and the weakened reference only; keep the techniques' tuning as it is")
    parser.add_argument("--tuning-seeds", type=positive_int, metavar="N",
                        help="calibration seeds each grid point runs on (default: the suite's calibration.seeds)")
    parser.set_defaults(handler=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    from step7bench.harness.calibrate import calibrate, read_tunings, write_targets
    from step7bench.harness.executor import Deadline
    from step7bench.harness.suite import load_suite

    apply_threads(args)
    suite = load_suite(args.suite, plugins=args.plugin, overrides=args.overrides, require_targets=False)
    if suite.targets_path is None:
        raise UserError(f"suite {suite.path} names no targets file: add `targets = \"targets/{suite.name}.toml\"`")
    if suite.targets_path.is_dir():  # found now, not after the calibration runs
        raise UserError(f"{suite.targets_path}: the suite's targets file is a folder")
    # Read before the runs: a file that cannot be read must not cost a calibration.
    kept = read_tunings(suite.targets_path) if args.no_tune and suite.targets_path.is_file() else None
    calibrated = calibrate(suite, device=args.device, seeds=args.seeds, margin=args.margin, tune=not args.no_tune,
                           tuning_seeds=args.tuning_seeds, jobs=default_jobs(args), threads=args.threads,
                           deadline=Deadline.in_minutes(args.deadline) if args.deadline else None,
                           report=lambda line: print(line, file=sys.stderr, flush=True))
    if kept is not None:
        calibrated = dataclasses.replace(calibrated, tunings=kept)
    write_targets(suite.targets_path, calibrated, _command(args))
    for record in calibrated.targets:
        weak = record.weak_reference.get("speedup")
        print(f"{record.workload}/{record.preset}: target {record.target_val_loss:.4f} (median sustained best "
              f"{record.median_best_val_loss:.4f}, reached by {record.reach_rate:.0%} of seeds "
              f"{record.calibration_seeds[0]}..{record.calibration_seeds[-1]}); weakened reference "
              + (f"{weak:.2f}x slower" if weak else "not measured"))
    for tuning in calibrated.tunings:
        print(f"{tuning.workload}/{tuning.preset} {tuning.technique}: tuned to {tuning.winner}")
    for warning in calibrated.warnings:
        print(warning, file=sys.stderr)
    print(f"targets written to {suite.targets_path}")
    return 0


def _command(args: argparse.Namespace) -> str:
    """The command that reproduces these targets, for the targets file's header."""
    words = ["step7bench", "calibrate", "--suite", args.suite]
    for plugin in args.plugin:
        words += ["--plugin", plugin]
    for value in args.overrides:
        words += ["--set", value]
    if args.seeds is not None:
        words += ["--seeds", str(args.seeds)]
    if args.tuning_seeds is not None:
        words += ["--tuning-seeds", str(args.tuning_seeds)]
    if args.margin is not None:
        words += ["--margin", f"{args.margin:g}"]
    if args.no_tune:
        words.append("--no-tune")
    return shlex.join(words)
