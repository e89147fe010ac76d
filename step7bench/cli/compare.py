"""`step7bench compare A B`: two results folders side by side. A viewer, not a gate: it exits 0
whatever changed, 2 on bad input."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from step7bench.cli.arguments import add_verb
from step7bench.cli.choices import COMPARE_FORMATS
from step7bench.cli.gate import add_threshold_arguments, thresholds
from step7bench.cli.input_errors import check_results_database

if TYPE_CHECKING:
    from step7bench.analysis.comparison import Comparison, ComparisonRow

DESCRIPTION = """
Two results folders side by side: per workload, arm, metric (deterministic and noisy) and
accounting (finetune, all_in), the median speedup in A, in B and the change B/A, marked by the
gate's rule: - slower, + faster, ~ unchanged (on another hardware class: the drift-tolerant rule,
noisy metrics not compared). Arms only one side has are marked `A only` or `B only`. It exits 0
whatever changed (use `step7bench gate` to fail a build).
"""

TEXT_HEADER = (f"{'':6} {'workload':<14} {'arm':<44} {'metric':<18} {'acct':<8} {'A':>8} {'B':>8} {'B/A':>7}  "
               "why")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "compare", summary="two results folders side by side: speedups and their change",
                      description=DESCRIPTION,
                      examples=["step7bench compare reports/main reports/branch",
                                "step7bench compare reports/main reports/branch --format markdown > comment.md"])
    parser.add_argument("a", type=Path, metavar="A", help="results folder compared against (before)")
    parser.add_argument("b", type=Path, metavar="B", help="results folder compared with it (after)")
    parser.add_argument("--format", choices=COMPARE_FORMATS, default="text",
                        help="text (every row, for a terminal) or markdown (a summary line and the changed rows, "
                             "for a pull-request comment); default text")
    add_threshold_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from step7bench.analysis.comparison import compare_folders

    for folder in (args.a, args.b):
        check_results_database(folder)
    comparison = compare_folders(args.a, args.b, thresholds(args))
    write = format_markdown if args.format == "markdown" else format_text
    print(write(comparison, args.a, args.b))
    return 0


def summary_line(comparison: Comparison) -> str:
    from step7bench.analysis.comparison import IMPROVED, ONLY_IN_A, ONLY_IN_B, REGRESSED, UNCHANGED

    counts = comparison.counts()
    return (f"{counts[REGRESSED]} slower (-), {counts[IMPROVED]} faster (+), {counts[UNCHANGED]} unchanged or not "
            f"compared (~), {counts[ONLY_IN_A]} only in A, {counts[ONLY_IN_B]} only in B")


def hardware_line(comparison: Comparison) -> str:
    if comparison.same_hardware:
        return (f"hardware class {comparison.class_a} on both: deterministic metrics compared exactly, "
                "noisy ones tested")
    return (f"hardware classes differ (A {comparison.class_a}, B {comparison.class_b}): deterministic metrics by "
            "the drift-tolerant rule, noisy metrics not compared")


def format_text(comparison: Comparison, folder_a: Path, folder_b: Path) -> str:
    """Every row, then the rule used and the counts."""
    lines = [f"A: {folder_a}", f"B: {folder_b}", TEXT_HEADER, "-" * len(TEXT_HEADER)]
    lines += [_text_row(row) for row in comparison.rows]
    return "\n".join([*lines, "", hardware_line(comparison), summary_line(comparison)])


def _text_row(row: ComparisonRow) -> str:
    return (f"{row.mark:<6} {row.workload:<14} {row.arm:<44} {row.metric:<18} {row.accounting:<8} "
            f"{_value(row.speedup_a):>8} {_value(row.speedup_b):>8} {_value(row.change):>7}  {row.reason}")


def format_markdown(comparison: Comparison, folder_a: Path, folder_b: Path) -> str:
    """A pull-request comment: a summary line, then only the changed rows (unchanged ones counted)."""
    lines = [f"**step7bench compare** `{folder_a}` → `{folder_b}`: {summary_line(comparison)}.", "",
             f"_{hardware_line(comparison)}._", ""]
    changed = comparison.changed_rows
    if not changed:
        return "\n".join([*lines, "No speedup changed."])
    lines += ["| | workload | arm | metric | accounting | A | B | B/A | p | why |",
              "|---|---|---|---|---|---:|---:|---:|---:|---|"]
    lines += [f"| {row.mark} | {row.workload} | `{row.arm}` | {row.metric} | {row.accounting} | "
              f"{_value(row.speedup_a)} | {_value(row.speedup_b)} | {_value(row.change)} | "
              f"{_value(row.p_value)} | {row.reason} |" for row in changed]
    unchanged = len(comparison.rows) - len(changed)
    return "\n".join([*lines, "", f"{unchanged} unchanged row(s) not shown."])


def _value(value: float | None) -> str:
    from step7bench.analysis.formatting import number

    return number(value, 3, absent="-", infinite="inf")
