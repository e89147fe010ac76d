"""`step7bench export`: the trials of a results folder as CSV, Parquet or JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.harness.export import EXPORT_FORMATS, export_trials
from step7bench.harness.store import ResultsStore


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="write one row per trial as csv, parquet or json")
    parser.add_argument("--results", type=Path, required=True, help="results folder of a run")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
    parser.add_argument("--output", type=Path, help="file to write (default: RESULTS/trials.FORMAT)")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    output = args.output or args.results / f"trials.{args.format}"
    with ResultsStore(args.results, create=False) as store:
        rows = export_trials(store, output, args.format)
    print(f"{rows} trials written to {output}")
    return 0
