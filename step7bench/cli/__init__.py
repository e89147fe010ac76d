"""The command line: `step7bench <verb> ...`, one module per verb.

A mistake a user can make (bad flag, unknown name, missing file) ends in one line on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from step7bench.errors import UserError

EXIT_USAGE = 2

# Each module has `register(subparsers)`, which adds its parser and sets `handler`.
VERBS = ("trial", "run", "calibrate", "merge", "export", "listing", "gate", "baseline", "report")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "a non-negative integer")


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="step7bench", description="Checks claims of training-cost reduction.")
    subparsers = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    for verb in VERBS:
        importlib.import_module(f"step7bench.cli.{verb}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
