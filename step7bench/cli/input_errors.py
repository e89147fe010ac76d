"""What a user's bad path causes, as one line instead of a traceback.

An OSError is the user's doing only when it is about a path the user named (or a file inside a
folder they named, or a folder above a file they named): `--results` naming a file, an
unreadable suite, `--output` naming a folder. The same error about any other path (a template
missing from the package, a cache folder) is a fault of step7bench and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from step7bench.cli.choices import DATABASE_NAME
from step7bench.errors import UserError

PATH_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
"""The OSErrors a wrong path causes. Others (a full disk, an I/O error) are not the user's input."""

_WHAT = {
    FileNotFoundError: "not found",
    FileExistsError: "exists and is not a folder",  # mkdir(exist_ok=True) over a file
    NotADirectoryError: "a file stands where a folder is needed",
    IsADirectoryError: "is a folder, a file is needed",
    PermissionError: "permission denied",
}


@contextlib.contextmanager
def user_path_errors(args: argparse.Namespace) -> Iterator[None]:
    """Turn a PATH_ERRORS exception about a path in `args` into a UserError naming it. `args` is
    read when the error happens, so a handler that fills in a default path (`args.results =
    ...`) has it covered too."""
    try:
        yield
    except PATH_ERRORS as exc:
        path = _user_path_named(exc, user_paths(args))
        if path is None:
            raise
        raise UserError(f"{path}: {_WHAT[type(exc)]}") from None


def user_paths(args: argparse.Namespace) -> list[Path]:
    """Every path-valued argument, plus a suite given as a path."""
    paths: list[Path] = []
    for name, value in vars(args).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        paths += [item for item in values if isinstance(item, Path)]
        if name == "suite" and isinstance(value, str):
            paths.append(Path(value))
    return paths


def _user_path_named(exc: OSError, paths: list[Path]) -> str | None:
    """The path `exc` names that is, holds or lies inside one of `paths`, preferring an exact
    match (`os.replace(temporary, output)` fails naming both; the output is the user's)."""
    named = [name for name in (exc.filename, exc.filename2) if name is not None]
    given = {Path(os.path.abspath(path)) for path in paths}
    related = [name for name in named
               if any(_related(Path(os.path.abspath(name)), path) for path in given)]
    exact = [name for name in related if Path(os.path.abspath(name)) in given]
    return str((exact or related)[0]) if related else None


def _related(named: Path, given: Path) -> bool:
    return named == given or given in named.parents or named in given.parents


def check_results_database(folder: Path) -> None:
    """A UserError naming `folder`'s results.sqlite if it exists and SQLite cannot read it whole
    ("file is not a database", "database disk image is malformed", unreadable).

    Verbs call it before they open a store: opening one for use already writes to it (the
    schema's version), and a store found damaged half-way through a command would leave part
    of the command done. It opens the file read-only, and every sqlite3 error counts as the
    file's: the only SQL run is SQLite's own check."""
    path = folder / DATABASE_NAME
    if not path.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:
        raise UserError(f"{path}: not a readable results database ({exc})") from None
    if problems != ["ok"]:
        raise UserError(f"{path}: the results database is damaged ({'; '.join(problems[:3])})")
