"""The command line: `step7bench <verb> ...`, one module per verb.

Building the parser imports nothing heavy (no torch, scipy, pandas): each verb module's
`register` only declares arguments, and its handler imports what it needs when it runs, so
`step7bench --help` answers at once. Defaults shown in help texts come from
`step7bench.cli.choices`.

A mistake a user can make (bad flag, unknown name, missing or wrong file) ends in one line on
stderr, `error: ...`, and exit code 2, never a traceback. `step7bench` alone prints the usage
and the verbs to stderr and exits 2: no verb was run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from step7bench.cli.arguments import HelpFormatter, non_negative_int, positive_int
from step7bench.cli.input_errors import user_path_errors
from step7bench.errors import suggestion
from step7bench.errors import UserError

EXIT_USAGE = 2

# Each module has `register(subparsers)`, which adds its parser and sets `handler`; in this
# order the verbs are listed by `step7bench --help`.
VERBS = ("run", "trial", "calibrate", "report", "gate", "baseline", "compare", "export", "merge", "listing")

DESCRIPTION = """\
Checks claims of training-cost reduction: trains a baseline and techniques to the same validation
target and compares what each cost (steps, FLOPs, wall-clock, device-hours, energy).
"""

EXAMPLES = """\
examples:
  step7bench run --suite quick --threads 1     run the quick suite into reports/quick/
  step7bench trial --workload digits --preset micro --device cpu
  step7bench gate --baseline baselines/smoke-cpu.json --results reports/smoke
  step7bench VERB --help                       a verb's options and an example
"""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, and a mistyped choice gets a
    "did you mean"."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message}")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse checks every `choices` (the verbs, --preset, --device, --format) here; this
        # private hook is the one place that sees both the typed value and the choices.
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            hint = suggestion(value, action.choices) if isinstance(value, str) and action.choices else ""
            if not hint:
                raise
            raise argparse.ArgumentError(action, f"invalid choice: {value!r}; {hint} "
                                                 f"(choose from {_listed(action.choices)})") from None


def _listed(choices: Iterable[Any]) -> str:
    return ", ".join(str(choice) for choice in choices)


def package_version() -> str:
    """The installed distribution's version (importlib.metadata); the source tree's when the
    package runs uninstalled, e.g. from a checkout on PYTHONPATH."""
    from importlib import metadata

    try:
        return metadata.version("step7bench")
    except metadata.PackageNotFoundError:
        from step7bench import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="step7bench", description=DESCRIPTION, epilog=EXAMPLES, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"step7bench {package_version()}",
                        help="print the installed version and exit")
    subparsers = parser.add_subparsers(dest="verb", title="verbs", metavar="VERB", parser_class=Parser)
    for verb in VERBS:
        importlib.import_module(f"step7bench.cli.{verb}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.verb is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        with user_path_errors(args):
            return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


__all__ = ["EXIT_USAGE", "Parser", "build_parser", "main", "non_negative_int", "positive_int", "suggestion"]
