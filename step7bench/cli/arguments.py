"""argparse types and the arguments several verbs share. Imports nothing heavy: the parser is
built for every invocation, `--help` included."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from step7bench.cli.choices import DEVICE_CHOICES

DEVICE_HELP = "where to train: auto takes CUDA when torch sees a GPU, else the CPU (default auto)"
THREADS_HELP = ("CPU threads for torch's intra-op parallelism (default: torch's choice). Small models on a "
                "shared or small CPU run fastest and steadiest with 1")


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


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (a tolerance)."""
    return _float_where(text, "a non-negative number", lambda value: value >= 0)


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a significance level)."""
    return _float_where(text, "a number between 0 and 1 (exclusive)", lambda value: 0 < value < 1)


def factor(text: str) -> float:
    """argparse type: a ratio >= 1 (1 means any difference counts)."""
    return _float_where(text, "a factor >= 1", lambda value: value >= 1)


def margin(text: str) -> float:
    """argparse type: a relative margin in [0, 1)."""
    return _float_where(text, "a margin in [0, 1)", lambda value: 0 <= value < 1)


def _float_where(text: str, what: str, holds: Callable[[float], bool]) -> float:
    value = _finite_float(text, what)
    if not holds(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {value:g}")
    return value


def _finite_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite: no threshold means that
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (minutes, a factor)."""
    value = _finite_float(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value:g}")
    return value


def add_plugin_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a plugin that registers techniques or workloads: a module name "
                             "(my_package.my_technique) or a .py file; repeat for several (installed packages' "
                             "entry points are found without it)")


def add_override_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="overrides",
                        help="change one value of the suite without copying its file, e.g. grammar-lm.max_steps=400, "
                             "technique.curriculum.full_at=0.3, seeds=5; recorded with the run and in the trial ids")


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", type=positive_int, metavar="N",
                        help="trials run at once, each in a worker process pinned to its own cores with its own "
                             "torch threads (default: the cores over --threads; on CUDA one per visible GPU)")


def add_deadline_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deadline", type=positive_float, metavar="MINUTES",
                        help="start no trial that could not finish within MINUTES of now (its arm's mean time, "
                             "else its budget); what is done is kept and reported, the rest marked missing")


def default_jobs(args: argparse.Namespace) -> int:
    """--jobs, else as many workers as the usable cores hold at --threads each (one per visible GPU
    on CUDA); one when --threads is not given (torch then uses every core itself)."""
    if args.jobs is not None:
        return args.jobs
    import torch

    if args.device != "cpu" and torch.cuda.is_available():
        return torch.cuda.device_count()
    if args.threads is None:
        return 1
    import os

    return max(1, len(os.sched_getaffinity(0)) // args.threads)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help=DEVICE_HELP)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=positive_int, metavar="N", help=THREADS_HELP)


def apply_threads(args: argparse.Namespace) -> None:
    """torch.set_num_threads(--threads), when given."""
    if args.threads is not None:
        import torch  # here, not at the top: building the parser must not import torch

        torch.set_num_threads(args.threads)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written, and one line per verb in `step7bench --help`.

    argparse measures the verbs' names without the indent it prints them at, so a long one
    (`calibrate`) would go on a line of its own, its summary below it; this counts the indent.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if action.help is not argparse.SUPPRESS and isinstance(action, argparse._SubParsersAction):
            names = [len(self._format_action_invocation(choice)) for choice in action._get_subactions()]
            indented = max(names, default=0) + self._current_indent + self._indent_increment
            self._action_max_length = max(self._action_max_length, indented)


def add_verb(subparsers: argparse._SubParsersAction, name: str, *, summary: str, description: str,
             examples: list[str]) -> argparse.ArgumentParser:
    """A verb's parser: `summary` is its line in `step7bench --help`; `description` (kept as
    written, line breaks and all) and the `examples` head and close its own --help."""
    epilog = "example:\n" + "\n".join(f"  {example}" for example in examples)
    return subparsers.add_parser(name, help=summary, description=description.strip("\n"), epilog=epilog,
                                 formatter_class=HelpFormatter)
