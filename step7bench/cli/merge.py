"""`step7bench merge`: join the results folders of shards (or of separate runs) into one."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.harness.lock import FolderLock
from step7bench.harness.store import ResultsStore


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("merge", help="join results folders (e.g. the shards of a run) into one")
    parser.add_argument("sources", nargs="+", type=Path, metavar="DIR", help="results folders to merge")
    parser.add_argument("--into", type=Path, required=True, help="results folder to merge into (created if absent)")
    parser.set_defaults(handler=_merge)


def _merge(args: argparse.Namespace) -> int:
    with FolderLock(args.into), ResultsStore(args.into) as target:
        for folder in args.sources:
            with FolderLock(folder), ResultsStore(folder, create=False) as source:
                added, present = target.merge_from(source)
            print(f"{folder}: {added} trials added, {present} already present")
    return 0
