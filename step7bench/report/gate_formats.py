"""The gate's outcome written for its readers: a terminal (text), a pull-request comment
(Markdown), a program (JSON) and a CI system's test view (JUnit XML, one test case per arm and
metric: a regression is a failure, a comparison not made is skipped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree import ElementTree

from step7bench.analysis.formatting import number
from step7bench.analysis.gate import (IMPROVED, NOT_COMPARED_REASON, REGRESSED, TIME_BOUND_REASON, UNCHANGED,
                                      GateOutcome, GateRow)
from step7bench.analysis.summary import json_ready

GATE_FORMATS = ("text", "markdown", "json", "junit")


def format_outcome(outcome: GateOutcome, fmt: str = "text") -> str:
    """`outcome` in one of GATE_FORMATS."""
    writers: dict[str, Callable[[GateOutcome], str]] = {
        "text": format_text, "markdown": format_markdown, "json": format_json, "junit": format_junit}
    if fmt not in writers:
        raise ValueError(f"format must be one of {', '.join(GATE_FORMATS)}, got {fmt!r}")
    return writers[fmt](outcome)


def hardware_line(outcome: GateOutcome) -> str:
    if outcome.same_hardware:
        return f"hardware class {outcome.results_class}: deterministic metrics compared exactly, noisy ones tested"
    return (f"baseline hardware class {outcome.baseline_class}, results {outcome.results_class}: deterministic "
            "metrics compared with the drift-tolerant rule, noisy metrics not compared")


def count_line(outcome: GateOutcome) -> str:
    counts = outcome.counts()
    return (f"{counts[REGRESSED]} regressed (-), {counts[IMPROVED]} improved (+), {counts[UNCHANGED]} unchanged "
            f"or not compared (~); {outcome.not_in_baseline} not in the baseline (not gated)")


def _value(value: float | None) -> str:
    return number(value, 3, absent="-", infinite="inf")


def _not_compared(row: GateRow) -> bool:
    """A row the gate could not compare by its normal rule (time-bound, or a noisy metric of
    another hardware class); its mark is ~ and its reason says why."""
    return row.current_median is not None and row.reason.startswith((TIME_BOUND_REASON, NOT_COMPARED_REASON))


def _shows_reason(row: GateRow) -> bool:
    """Rows whose mark needs its reason beside it: nothing to compare, or not compared normally."""
    return row.current_median is None or _not_compared(row)


def format_text(outcome: GateOutcome) -> str:
    """One line per arm and metric, then the hardware rule used and a count."""
    header = f"{'':1} {'workload':<14} {'arm':<48} {'metric':<18} {'acct':<8} {'baseline':>9} {'now':>9} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for row in outcome.rows:
        lines.append(f"{row.mark:1} {row.workload:<14} {row.arm:<48} {row.metric:<18} {row.accounting:<8} "
                     f"{_value(row.baseline_median):>9} {_value(row.current_median):>9} {_value(row.ratio):>7}"
                     + (f"  p={row.p_value:.3f}" if row.p_value is not None else "")
                     + (f"  {row.reason}" if _shows_reason(row) else ""))
    lines += [hardware_line(outcome), count_line(outcome)]
    return "\n".join(lines)


def format_markdown(outcome: GateOutcome) -> str:
    """A pull-request comment: the verdict, then the changed rows (unchanged ones counted only)."""
    verdict = "**regression**" if outcome.regressed else "no regression"
    changed = [row for row in outcome.rows if row.mark != UNCHANGED]
    lines = [f"### step7bench gate: {verdict}", "", count_line(outcome) + ".", "", hardware_line(outcome) + ".", ""]
    if changed:
        lines += ["| | workload | arm | metric | accounting | baseline | now | ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {row.mark} | {row.workload} | `{row.arm}` | {row.metric} | {row.accounting} | "
                  f"{_value(row.baseline_median)} | {_value(row.current_median)} | {_value(row.ratio)} |"
                  for row in changed]
    return "\n".join(lines) + "\n"


def format_json(outcome: GateOutcome) -> str:
    return json.dumps(json_ready({
        "regressed": outcome.regressed, "baseline_hardware_class": outcome.baseline_class,
        "results_hardware_class": outcome.results_class, "same_hardware": outcome.same_hardware,
        "counts": outcome.counts(), "not_in_baseline": outcome.not_in_baseline,
        "rows": [vars(row) for row in outcome.rows]}), indent=1, allow_nan=False)


def format_junit(outcome: GateOutcome) -> str:
    counts = outcome.counts()
    skipped = [_not_compared(row) for row in outcome.rows]
    suite = ElementTree.Element("testsuite", name="step7bench gate", tests=str(len(outcome.rows)),
                                failures=str(counts[REGRESSED]), skipped=str(sum(skipped)))
    for row, not_compared in zip(outcome.rows, skipped):
        case = ElementTree.SubElement(suite, "testcase", classname=f"{row.workload}.{row.arm}",
                                      name=f"{row.metric} ({row.accounting})")
        detail = (f"baseline {_value(row.baseline_median)}, now {_value(row.current_median)}, "
                  f"ratio {_value(row.ratio)}; {row.reason}")
        if row.mark == REGRESSED:
            ElementTree.SubElement(case, "failure", message=detail)
        elif not_compared:
            ElementTree.SubElement(case, "skipped", message=row.reason)
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)
