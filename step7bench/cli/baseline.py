"""`step7bench baseline save`: write a results folder's speedups as a baseline file for the gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.analysis.gate import save_baseline
from step7bench.analysis.results import analyze, load_results


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baseline", help="write a baseline file for `step7bench gate`")
    actions = parser.add_subparsers(dest="action", required=True, parser_class=type(parser))
    save = actions.add_parser("save", help="save the speedups of a results folder as a baseline")
    save.add_argument("--results", type=Path, required=True, help="results folder")
    save.add_argument("--out", type=Path, required=True, help="baseline file to write (JSON)")
    save.set_defaults(handler=_save)


def _save(args: argparse.Namespace) -> int:
    path = save_baseline(analyze(load_results(args.results), claims=[]), args.out)
    print(f"baseline: {path}")
    return 0
