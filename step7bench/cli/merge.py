"""`step7bench merge`: join the results folders of shards (or of separate runs) into one."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.cli.arguments import add_verb
from step7bench.cli.choices import DATABASE_NAME
from step7bench.cli.input_errors import check_results_database
from step7bench.errors import UserError

DESCRIPTION = """
Copy into one results folder the runs and trials of others that it lacks: the shards of a run
(`run --shard I/N`), or runs of the same suite made apart. A trial already there is kept, unless
it failed there and not in the source. Every source is checked before anything is written.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "merge", summary="join results folders (e.g. the shards of a run) into one",
                      description=DESCRIPTION,
                      examples=["step7bench merge --into reports/quick shards/1 shards/2 shards/3"])
    parser.add_argument("sources", nargs="+", type=Path, metavar="DIR", help="results folders to merge")
    parser.add_argument("--into", type=Path, required=True, metavar="DIR",
                        help="results folder to merge into (created if absent)")
    parser.set_defaults(handler=_merge)


def _merge(args: argparse.Namespace) -> int:
    from step7bench.harness.lock import FolderLock
    from step7bench.harness.store import ResultsStore

    for folder in args.sources:  # the store refuses it too, but only after the lock has, as "in use by another run"
        if folder.resolve() == args.into.resolve():
            raise UserError(f"cannot merge {folder} into itself")
    _check_sources(args.sources)
    if args.into.exists() and not args.into.is_dir():
        raise UserError(f"--into {args.into}: exists and is not a folder")
    check_results_database(args.into)
    with FolderLock(args.into), ResultsStore(args.into) as target:
        for folder in args.sources:
            with FolderLock(folder), ResultsStore(folder, create=False) as source:
                added, present = target.merge_from(source)
            print(f"{folder}: {added} trials added, {present} already present")
    return 0


def _check_sources(sources: list[Path]) -> None:
    """Every source is a folder with a readable store, checked before the target is opened (or
    created): a bad source found half-way would leave the target with part of the merge."""
    for folder in sources:
        if not folder.is_dir():
            raise UserError(f"{folder}: not a results folder ({'not found' if not folder.exists() else 'a file'})")
        if not (folder / DATABASE_NAME).is_file():
            raise UserError(f"{folder}: no results here ({DATABASE_NAME} not found)")
        check_results_database(folder)
