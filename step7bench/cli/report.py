"""`step7bench report`: (re)write index.html, the figures and summary.json of a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.analysis.metrics import DEFAULT_DOWNSTREAM_TASKS
from step7bench.analysis.results import DEFAULT_CLAIMS
from step7bench.analysis.speedups import BootstrapSettings
from step7bench.analysis.stats import DEFAULT_RESAMPLES
from step7bench.cli import non_negative_int, positive_int
from step7bench.report import write_report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write index.html, figures and summary.json of a results folder")
    parser.add_argument("--results", type=Path, required=True, help="results folder (the report is written there)")
    parser.add_argument("--claims", type=Path, default=DEFAULT_CLAIMS, help="claims file (default: the seed's)")
    parser.add_argument("--downstream-tasks", type=positive_int, default=DEFAULT_DOWNSTREAM_TASKS,
                        help="tasks sharing one pretrained model in the amortized accounting "
                             f"(default {DEFAULT_DOWNSTREAM_TASKS})")
    parser.add_argument("--resamples", type=positive_int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples per interval (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--bootstrap-seed", type=non_negative_int, default=0,
                        help="seed of the bootstrap resampling (default 0)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = BootstrapSettings(resamples=args.resamples, seed=args.bootstrap_seed)
    index = write_report(args.results, args.claims, settings, args.downstream_tasks)
    print(f"report: {index}")
    return 0
