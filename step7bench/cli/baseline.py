"""`step7bench baseline save`: write a results folder's speedups as a baseline file for the gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from step7bench.cli.arguments import add_verb
from step7bench.cli.input_errors import check_results_database
from step7bench.errors import UserError

DESCRIPTION = """
Baseline files for `step7bench gate`. `baseline save` writes the speedups of every arm in a
results folder (median and per seed, per metric and accounting) with the suite, hardware class
and runs they came from; commit it, and the gate compares later results with it.
"""

SAVE_DESCRIPTION = """
Save the speedups of a results folder as a baseline file (JSON) for `step7bench gate`.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "baseline", summary="write a baseline file for `step7bench gate`",
                      description=DESCRIPTION,
                      examples=["step7bench baseline save --results reports/smoke --out baselines/smoke-cpu.json"])
    actions = parser.add_subparsers(dest="action", required=True, title="actions", metavar="ACTION",
                                    parser_class=type(parser))
    save = add_verb(actions, "save", summary="save the speedups of a results folder as a baseline",
                    description=SAVE_DESCRIPTION,
                    examples=["step7bench baseline save --results reports/smoke --out baselines/smoke-cpu.json"])
    save.add_argument("--results", type=Path, required=True, metavar="DIR", help="results folder of a run")
    save.add_argument("--out", type=Path, required=True, metavar="FILE", help="baseline file to write (JSON)")
    save.set_defaults(handler=_save)


def _save(args: argparse.Namespace) -> int:
    from step7bench.analysis.gate import save_baseline
    from step7bench.analysis.results import analyze, load_results

    if args.out.is_dir():  # found before the analysis, not after it
        raise UserError(f"--out {args.out}: is a folder, a file is needed")
    check_results_database(args.results)
    results = load_results(args.results)
    path = save_baseline(analyze(results, claims=[]), args.out)
    print(f"baseline: {path}")
    return 0
