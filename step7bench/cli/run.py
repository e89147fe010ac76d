"""`step7bench run`: run a suite into a results folder, resuming what is already there."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from step7bench.cli.arguments import (add_deadline_argument, add_device_argument, add_jobs_argument,
                                      add_override_argument, add_plugin_argument, add_threads_argument, add_verb,
                                      apply_threads, default_jobs, positive_int)
from step7bench.cli.input_errors import check_results_database
from step7bench.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

EXIT_TRIAL_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT
SUMMARY_WIDTH_CHARS = 200

SUITE_HELP = "a shipped suite's name (smoke, quick, full, gpu; see `step7bench list`) or the path of a suite file"

DESCRIPTION = """
Run a suite's trial matrix into a results folder: per workload the baseline, the A/A arm, each
technique alone and stacked, the random controls. Each trial is committed to the folder's SQLite
store when it ends; running the same command again resumes. Prints the speedups over the baseline
(misses counted), the instrument's checks and the verdicts, and writes
the report (index.html, figures, summary.json) at the end.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "run", summary="run a suite: every arm on every workload and seed",
                      description=DESCRIPTION,
                      examples=["step7bench run --suite quick --threads 1 --jobs 2",
                                "step7bench run --suite smoke --results /tmp/smoke --shard 1/2",
                                "step7bench run --suite my.toml --plugin my_package.halve_lr --set digits.max_steps=600",
                                "step7bench run --suite gpu --device cuda --deadline 6"])
    add_suite_arguments(parser, seeds_help="seeds per arm, overriding the suite's `seeds` (adding seeds runs only "
                                           "the new trials)")
    parser.add_argument("--results", type=Path, metavar="DIR", help="results folder (default: reports/<suite name>/)")
    parser.add_argument("--shard", metavar="I/N", help="run part I of N of the trials, e.g. 2/4 (then `step7bench "
                                                       "merge`); a shard writes no report")
    parser.add_argument("--nproc-per-node", type=positive_int, default=1, metavar="N",
                        help="ranks for trials whose arm includes `distributed`: each runs data-parallel under "
                             "torchrun on this many processes (default 1: every trial in this process)")
    parser.add_argument("--no-report", action="store_true", help="print the speedups and verdicts only, write no report")
    parser.add_argument("--adaptive", action="store_true",
                        help="after the suite's seeds, add seeds in batches to the arms of claims still undecided, up to "
                             "the suite's [adaptive] max_seeds; an error-spending rule keeps wrong verdicts under its "
                             "alpha overall")
    parser.set_defaults(handler=_run)


def add_suite_arguments(parser: argparse.ArgumentParser, *, seeds_help: str) -> None:
    """The arguments `run` and `calibrate` share: the suite, its plugins and overrides, seeds,
    the device, threads, jobs and a deadline (`calibrate`'s seeds mean calibration seeds)."""
    parser.add_argument("--suite", required=True, metavar="NAME|PATH", help=SUITE_HELP)
    add_plugin_argument(parser)
    add_override_argument(parser)
    add_device_argument(parser)
    parser.add_argument("--seeds", type=positive_int, metavar="N", help=seeds_help)
    add_threads_argument(parser)
    add_jobs_argument(parser)
    add_deadline_argument(parser)


def _run(args: argparse.Namespace) -> int:
    from step7bench.harness.progress import make_progress
    from step7bench.harness.runner import run_suite
    from step7bench.harness.suite import load_suite
    from step7bench.harness.executor import Deadline

    shard_spec = _shard(args.shard)
    apply_threads(args)
    suite = load_suite(args.suite, plugins=args.plugin, overrides=args.overrides)
    if args.seeds is not None:
        suite = suite.with_seeds(args.seeds)
    args.results = results_dir = args.results or Path("reports") / suite.name  # named in a path error
    _check_folder(results_dir)
    check_results_database(results_dir)
    if args.adaptive and (suite.adaptive is None or shard_spec is not None):
        raise UserError("--adaptive needs the suite's [adaptive] table (max_seeds) and no --shard")
    console = summary_console()
    options = dict(device=args.device, shard_spec=shard_spec, nproc_per_node=args.nproc_per_node,
                   command_line=["step7bench", *sys.argv[1:]], jobs=default_jobs(args), threads=args.threads,
                   deadline=Deadline.in_minutes(args.deadline) if args.deadline else None)
    try:
        outcome = (_run_adaptive(suite, results_dir, options) if args.adaptive
                   else run_suite(suite, results_dir, make_progress(), **options))
    except KeyboardInterrupt:
        print(f"interrupted: finished trials are saved in {results_dir}; run the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    planned = _planned_trials(results_dir, outcome.planned_ids)
    if shard_spec is not None:  # a part of the matrix: its speedups are read after `merge`
        console.print(f"shard {args.shard}: {len(planned)} trial(s) in {results_dir}; merge the shards, then report")
    report_ok = shard_spec is not None or planned.empty or _summarize(results_dir, console, not args.no_report)
    failed = int((planned["status"] == "failed").sum())
    if outcome.past_deadline:
        print(f"deadline: {len(outcome.past_deadline)} trial(s) not started; the report covers what finished "
              "(rerun the same command to complete the matrix)", file=sys.stderr)
    if failed:
        print(f"{failed} trial(s) failed; their errors are in the results (rerun to retry them)", file=sys.stderr)
    return EXIT_TRIAL_FAILED if failed or not report_ok else 0


def _run_adaptive(suite, results_dir: Path, options: dict):
    """Look after look: run what the look needs, judge the open claims, add seeds where they are
    still undecided (analysis/adaptive.py); the design and its decisions go with every run."""
    from step7bench.analysis.adaptive import Design, next_look
    from step7bench.analysis.results import DEFAULT_CLAIMS, load_results
    from step7bench.harness.claims import load_claims
    from step7bench.harness.progress import make_progress
    from step7bench.harness.runner import run_suite
    from step7bench.harness.store import ResultsStore

    plan, claims = suite.adaptive, load_claims(DEFAULT_CLAIMS)
    design = Design(suite.seeds, plan.batch, plan.max_seeds, plan.alpha, plan.spending)
    seeds_by_arm: dict = {}
    planned: list[str] = []
    for number in range(1, len(design.sizes) + 1):
        outcome = run_suite(suite, results_dir, make_progress(), seeds_by_arm=seeds_by_arm,
                            adaptive=design.record(), **options)
        planned += outcome.planned_ids
        design, needs = next_look(load_results(results_dir), claims, design, number)
        with ResultsStore(results_dir, create=False) as store:
            store.update_run(outcome.run_id, adaptive=design.record())
        print(f"adaptive look {number}: {len(design.decided_at)} verdicts decided; "
              f"{len({arm for arm in needs if arm[1] != 'baseline'})} arm(s) need more seeds", file=sys.stderr)
        if not needs or outcome.past_deadline:
            break
        seeds_by_arm = {**seeds_by_arm, **needs}
    return dataclasses.replace(outcome, planned_ids=list(dict.fromkeys(planned)))


def _check_folder(results_dir: Path) -> None:
    """Refuse a results path that is a file before the run starts (and before torch's device
    fingerprint is taken): one line, nothing created."""
    if results_dir.exists() and not results_dir.is_dir():
        raise UserError(f"--results {results_dir}: exists and is not a folder")


def _planned_trials(results_dir: Path, planned_ids: list[str]):
    from step7bench.harness.store import ResultsStore

    with ResultsStore(results_dir, create=False) as store:
        trials = store.trials_frame()
    return trials[trials["trial_id"].isin(planned_ids)]


def _summarize(results_dir: Path, console: Console, write_report: bool) -> bool:
    """Print the speedups and verdicts, and write the report from the same analysis; a failure
    there is one line, the results being safe already."""
    from step7bench.analysis.results import analyze_folder
    from step7bench.report import write_analysis_report
    from step7bench.report.terminal import print_run_summary

    try:
        analysis = analyze_folder(results_dir)
        print_run_summary(analysis, console)
        if write_report:
            console.print(f"report: {write_analysis_report(analysis, results_dir)}")
    except Exception as exc:  # the trials are stored; a broken analysis must not hide that
        print(f"error: the report failed ({type(exc).__name__}: {exc}); the results are saved in {results_dir}",
              file=sys.stderr)
        return False
    return True


def summary_console() -> Console:
    """stdout; off a terminal, wide enough that arm names are not cut."""
    from rich.console import Console

    console = Console(file=sys.stdout)
    return console if console.is_terminal else Console(file=sys.stdout, width=SUMMARY_WIDTH_CHARS)


def _shard(text: str | None) -> tuple[int, int] | None:
    from step7bench.harness.matrix import parse_shard

    if text is None:
        return None
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise UserError(f"--shard: {exc}") from None
