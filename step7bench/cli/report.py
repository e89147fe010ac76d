"""`step7bench report`: (re)write index.html, the figures and summary.json of a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.cli.arguments import add_verb, positive_int, probability
from step7bench.cli.choices import DEFAULT_CONFIDENCE, DEFAULT_DOWNSTREAM_TASKS
from step7bench.cli.input_errors import check_results_database

DESCRIPTION = """
(Re)write the report of a results folder from its stored trials: index.html (self-contained),
the PNG figures and summary.json, next to the results. `run` does this at the end; rerun it to
judge other claims or at another confidence. Nothing is trained.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "report", summary="write index.html, figures and summary.json of a results folder",
                      description=DESCRIPTION,
                      examples=["step7bench report --results reports/quick",
                                "step7bench report --results reports/quick --claims my-claims.toml --confidence 0.9"])
    parser.add_argument("--results", type=Path, required=True, metavar="DIR",
                        help="results folder (the report is written there)")
    parser.add_argument("--claims", type=Path, metavar="FILE",
                        help="claims file to judge (default: the seed's, suites/claims/step7.toml)")
    parser.add_argument("--downstream-tasks", type=positive_int, default=DEFAULT_DOWNSTREAM_TASKS, metavar="K",
                        help="tasks sharing one pretrained model in the amortized accounting "
                             f"(default {DEFAULT_DOWNSTREAM_TASKS})")
    parser.add_argument("--confidence", type=probability, default=DEFAULT_CONFIDENCE, metavar="C",
                        help=f"two-sided confidence of every interval (default {DEFAULT_CONFIDENCE:g}; an adaptive "
                             "run's verdicts keep the confidence of the look that decided them)")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from step7bench.analysis.results import DEFAULT_CLAIMS
    from step7bench.report import write_report

    check_results_database(args.results)
    index = write_report(args.results, args.claims or DEFAULT_CLAIMS, args.confidence, args.downstream_tasks)
    print(f"report: {index}")
    return 0
