"""`step7bench run`: run a suite into a results folder, resuming what is already there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from rich.console import Console

from step7bench.cli import positive_int
from step7bench.errors import UserError
from step7bench.harness.matrix import parse_shard
from step7bench.harness.progress import make_progress
from step7bench.harness.runner import run_suite
from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import load_suite
from step7bench.harness.summary import print_summary
from step7bench.report import write_report

EXIT_TRIAL_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run a suite: every arm on every workload and seed")
    add_suite_arguments(parser)
    parser.add_argument("--results", type=Path, help="results folder (default: reports/<suite name>/)")
    parser.add_argument("--shard", help="run part I of N of the trials, e.g. 2/4 (then `step7bench merge`); "
                                        "a shard writes no report")
    parser.add_argument("--nproc-per-node", type=positive_int, default=1,
                        help="ranks for trials whose arm includes `distributed`: each runs data-parallel under "
                             "torchrun on this many processes (default 1: every trial in this process)")
    parser.add_argument("--no-report", action="store_true", help="print the summary table only, write no report")
    parser.set_defaults(handler=_run)


def add_suite_arguments(parser: argparse.ArgumentParser) -> None:
    """--suite, --device and --seeds, shared with `calibrate`."""
    parser.add_argument("--suite", required=True, help="a shipped suite's name (smoke, quick, full, gpu) or a path")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--seeds", type=positive_int, help="seeds per arm, overriding the suite's")
    parser.add_argument("--threads", type=positive_int,
                        help="CPU threads for torch (default: torch's choice). Small models on a shared or "
                             "small CPU run fastest with 1; the device fingerprint records the number")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)


def _run(args: argparse.Namespace) -> int:
    apply_threads(args)
    suite = load_suite(args.suite)
    if args.seeds is not None:
        suite = suite.with_seeds(args.seeds)
    shard_spec = _shard(args.shard)
    results_dir = args.results or Path("reports") / suite.name
    console = summary_console()
    try:
        outcome = run_suite(suite, results_dir, make_progress(), device=args.device, shard_spec=shard_spec,
                            nproc_per_node=args.nproc_per_node, command_line=["step7bench", *sys.argv[1:]])
    except KeyboardInterrupt:
        print(f"interrupted: finished trials are saved in {results_dir}; run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    with ResultsStore(results_dir, create=False) as store:
        trials = store.trials_frame()
    planned = trials[trials["trial_id"].isin(outcome.planned_ids)]
    print_summary(planned, console)
    report_ok = args.no_report or shard_spec is not None or _report(results_dir, console)
    failed = int((planned["status"] == "failed").sum())
    if failed:
        print(f"{failed} trial(s) failed; their errors are in the results (rerun to retry them)", file=sys.stderr)
    return EXIT_TRIAL_FAILED if failed or not report_ok else 0


def _report(results_dir: Path, console: Console) -> bool:
    """Write the report; a failure there is one line, the results being safe already."""
    try:
        report = write_report(results_dir)
    except Exception as exc:  # the trials are stored; a broken report must not hide that
        print(f"error: the report failed ({type(exc).__name__}: {exc}); the results are saved in {results_dir}",
              file=sys.stderr)
        return False
    console.print(f"report: {report}")
    return True


def summary_console() -> Console:
    """stdout; off a terminal, wide enough that arm names are not cut."""
    console = Console(file=sys.stdout)
    return console if console.is_terminal else Console(file=sys.stdout, width=SUMMARY_WIDTH_CHARS)


SUMMARY_WIDTH_CHARS = 200


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise UserError(f"--shard: {exc}") from None
