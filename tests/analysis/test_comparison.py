"""`step7bench compare A B` and step7bench.analysis.comparison: two synthetic results folders in
which one arm got slower in B, compared by the gate's rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from step7bench.analysis.comparison import ONLY_IN_A, ONLY_IN_B, compare_analyses
from step7bench.analysis.gate import REGRESSED, UNCHANGED
from step7bench.analysis.results import Results, analyze
from step7bench.cli import main
from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store

SEEDS = range(8)  # eight a side: a one-third drop is significant for the noisy metrics too


def _results(arms: list[PlantedArm], hardware_class: str | None = None) -> Results:
    # The same random_seed and arm order give every arm the same draws in A and B: only a planted
    # speedup that differs changes a trial.
    trials = synthetic_trials(arms, SEEDS)
    trials["trial_id"] = trials["trial_id"].astype(str)
    runs = synthetic_runs()
    if hardware_class:
        trials["hardware_class"] = runs["hardware_class"] = hardware_class
    return Results(trials, synthetic_curves(trials), runs)


BEFORE = [PlantedArm("slowed", 1.5), PlantedArm("steady", 1.2)]
AFTER = [PlantedArm("slowed", 1.0), PlantedArm("steady", 1.2)]


@pytest.fixture(scope="module")
def comparison():
    return compare_analyses(analyze(_results(BEFORE), claims=[]), analyze(_results(AFTER), claims=[]))


def test_the_slowed_arm_is_marked_slower_on_every_metric_and_nothing_else_changes(comparison):
    slowed = [row for row in comparison.rows if row.arm == "slowed"]
    assert slowed and {row.mark for row in slowed} == {REGRESSED}
    assert {row.deterministic for row in slowed} == {True, False}  # steps, FLOPs and wall, energy alike
    assert all(row.change == pytest.approx(row.speedup_b / row.speedup_a) for row in slowed)
    assert all(0.6 < row.change < 0.75 for row in slowed)  # planted 1.0 / 1.5
    others = [row for row in comparison.rows if row.arm != "slowed"]
    assert {row.mark for row in others} == {UNCHANGED}
    assert comparison.changed_rows == slowed and comparison.same_hardware


def test_accountings_are_the_gates_finetune_and_all_in(comparison):
    assert {row.accounting for row in comparison.rows} == {"finetune", "all_in"}


def test_an_arm_only_one_side_has_is_shown_as_such_not_as_a_regression():
    a = analyze(_results([PlantedArm("gone", 1.3)]), claims=[])
    b = analyze(_results([PlantedArm("new", 1.3)]), claims=[])
    marks = {row.arm: row.mark for row in compare_analyses(a, b).rows}
    assert marks["gone"] == ONLY_IN_A and marks["new"] == ONLY_IN_B and marks["aa"] == UNCHANGED


def test_across_hardware_classes_noisy_metrics_are_not_compared():
    a = analyze(_results(BEFORE), claims=[])
    b = analyze(_results(AFTER, hardware_class="cpu-other"), claims=[])
    comparison = compare_analyses(a, b)
    assert not comparison.same_hardware
    noisy = [row for row in comparison.rows if row.arm == "slowed" and not row.deterministic]
    assert noisy and {row.mark for row in noisy} == {UNCHANGED} and "not compared" in noisy[0].reason
    deterministic = [row for row in comparison.rows if row.arm == "slowed" and row.deterministic]
    assert {row.mark for row in deterministic} == {REGRESSED}  # a third slower passes the drift rule


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("compare")
    stores = []
    for name, arms in (("a", BEFORE), ("b", AFTER)):
        results = _results(arms)
        stores.append(write_store(root / name, results.trials, results.curves, results.runs))
    return stores[0], stores[1]


def test_compare_end_to_end_in_text_lists_every_row_and_exits_0(folders, capsys):
    a, b = folders
    assert main(["compare", str(a), str(b)]) == 0  # a viewer: a slower arm is not a failure
    out = capsys.readouterr().out
    slowed = [line for line in out.splitlines() if " slowed " in line]
    steady = [line for line in out.splitlines() if " steady " in line]
    assert slowed and all(line.startswith("-") for line in slowed)
    assert steady and all(line.startswith("~") for line in steady)
    assert "slower (-)" in out and "hardware class cpu-synthetic on both" in out


def test_compare_in_markdown_shows_a_summary_then_only_the_changed_rows(folders, capsys):
    a, b = folders
    assert main(["compare", str(a), str(b), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("**step7bench compare**") and "slower (-)" in lines[0]
    rows = [line for line in lines if line.startswith("| ") and "workload" not in line]
    assert rows and all("`slowed`" in line and line.startswith("| - |") for line in rows)
    assert "unchanged row(s) not shown" in out and "`steady`" not in out


def test_comparing_a_folder_with_itself_changes_nothing(folders, capsys):
    a, _ = folders
    assert main(["compare", str(a), str(a), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "0 slower (-), 0 faster (+)" in out and "No speedup changed." in out
