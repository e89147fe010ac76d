"""summary.json, baseline files and the gate, through the Python API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pandas as pd
import pytest

from step7bench.analysis.formatting import number
from step7bench.analysis.gate import (IMPROVED, REGRESSED, UNCHANGED, baseline_dict, compare, compare_estimates,
                                      load_baseline)
from step7bench.report.gate_formats import GATE_FORMATS, format_outcome, format_text
from step7bench.analysis.results import Analysis, Results, analyze, load_results
from step7bench.analysis.summary import SCHEMA_VERSION, summary_dict
from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store
from step7bench.cli import main
from step7bench.errors import UserError


def _results(seeds=range(8), speedup=1.5) -> Results:
    trials = synthetic_trials([PlantedArm("fast", speedup), PlantedArm("transfer", 3.0, pretrain_steps=300)], seeds)
    trials["trial_id"] = trials["trial_id"].astype(str)
    return Results(trials, synthetic_curves(trials), synthetic_runs())


@pytest.fixture(scope="module")
def analysis():
    return analyze(_results(), claims=[])


@pytest.fixture
def results_dir(tmp_path):
    results = _results()
    return write_store(tmp_path / "results", results.trials, results.curves, results.runs)


def _raised(baseline: dict, factor: float) -> dict:
    """The baseline with every speedup (median and per seed) multiplied by `factor`."""
    raised = json.loads(json.dumps(baseline))
    for entry in raised["entries"]:
        entry["median"] = float(entry["median"]) * factor
        entry["per_seed"] = [float(value) * factor for value in entry["per_seed"]]
    return raised


def test_summary_is_versioned_and_json_safe(analysis):
    summary = summary_dict(analysis)
    text = json.dumps(summary, allow_nan=False)
    assert summary["schema_version"] == SCHEMA_VERSION and "NaN" not in text
    assert summary["hardware"]["hardware_class"] == "cpu-synthetic" and summary["suite"]["name"] == "synthetic"
    fast = next(arm for arm in summary["arms"] if arm["arm"] == "fast")
    steps = fast["speedups"]["finetune"]["steps"]
    assert {"speedup", "ci_low", "ci_high", "n_seeds", "censored", "interval_method"} <= set(steps)
    assert steps["n_seeds"] == 8
    assert summary["measurement_trusted"] is True


def test_the_gate_passes_against_a_baseline_of_the_same_results(analysis):
    outcome = compare(baseline_dict(analysis), analysis)
    assert not outcome.regressed and {row.mark for row in outcome.rows} == {UNCHANGED}


def test_the_gate_fails_when_the_baseline_speedups_are_raised_by_a_fifth(analysis):
    outcome = compare(_raised(baseline_dict(analysis), 1.2), analysis)
    assert outcome.regressed
    marks = {(row.metric, row.deterministic): row.mark for row in outcome.rows if row.arm == "fast"}
    assert marks[("steps", True)] == REGRESSED
    # Eight seeds a side: a 20% drop in wall-clock speedup is both past the factor and significant.
    assert marks[("wall_s", False)] == REGRESSED


def test_a_noisy_change_without_significance_is_marked_tilde():
    few_seeds = analyze(_results(seeds=range(2)), claims=[])
    outcome = compare(_raised(baseline_dict(few_seeds), 1.2), few_seeds)
    noisy = [row for row in outcome.rows if not row.deterministic]
    assert noisy and {row.mark for row in noisy} == {UNCHANGED}  # p >= 1/6 with two seeds a side


def test_an_improvement_is_a_plus_and_passes(analysis):
    outcome = compare(_raised(baseline_dict(analysis), 1 / 1.2), analysis)
    assert not outcome.regressed and IMPROVED in {row.mark for row in outcome.rows}


def test_across_hardware_classes_noisy_metrics_are_not_compared_and_deterministic_ones_drift(analysis):
    other = {**_raised(baseline_dict(analysis), 1.2), "hardware_class": "cpu-other-2c"}
    outcome = compare(other, analysis)
    assert not outcome.same_hardware
    noisy = [row for row in outcome.rows if not row.deterministic]
    assert noisy and {row.mark for row in noisy} == {UNCHANGED}
    assert all(row.reason.startswith("not compared") for row in noisy)
    # A fifth off every seed is within the drift tolerance (0.15)? No: 1/1.2 = 0.83 is past it.
    steps = [row for row in outcome.rows if row.arm == "fast" and row.metric == "steps"]
    assert {row.mark for row in steps} == {REGRESSED}
    within = compare({**_raised(baseline_dict(analysis), 1.1), "hardware_class": "cpu-other-2c"}, analysis)
    assert not within.regressed  # 10% is drift across machines, a regression on one


def _estimates(entries, seeds=(0, 1)):
    """Stand-ins for SpeedupEstimate from (workload, arm, metric, accounting, per_seed) rows."""
    import numpy as np
    return [SimpleNamespace(workload=w, arm=a, metric=m, accounting=acc, seeds=tuple(seeds), per_seed=tuple(values),
                            median=float(np.median(values)), n_time_bound=0) for w, a, m, acc, values in entries]


def _baseline_from(entries, hardware_class, seeds=(0, 1)):
    return {"hardware_class": hardware_class, "suite": {"name": "smoke"},
            "entries": [{"workload": e.workload, "arm": e.arm, "metric": e.metric, "accounting": e.accounting,
                         "median": e.median, "per_seed": list(e.per_seed), "seeds": list(e.seeds),
                         "time_bound_trials": 0} for e in _estimates(entries, seeds)]}


CROSS_MACHINE = json.loads((Path(__file__).parent / "data" / "cross_machine_smoke.json").read_text())["machines"]


@pytest.mark.parametrize(("baseline_class", "results_class"), [("cpu-intel-xeon-processor-2c", "cpu-amd-epyc-2c"),
                                                               ("cpu-amd-epyc-2c", "cpu-intel-xeon-processor-2c")])
def test_measured_cross_machine_drift_passes_the_gate_both_ways(baseline_class, results_class):
    baseline = _baseline_from(CROSS_MACHINE[baseline_class], baseline_class)
    current = _estimates(CROSS_MACHINE[results_class])
    # The drift is real: some entries moved far past any exact tolerance.
    exact = compare_estimates(baseline, current, baseline_class)
    assert exact.regressed or any(row.mark == IMPROVED for row in exact.rows)
    outcome = compare_estimates(baseline, current, results_class)
    assert not outcome.regressed and not any(row.mark == IMPROVED for row in outcome.rows)


@pytest.mark.parametrize("arm", ["difficulty_prediction", "distributed", "transfer"])
def test_a_real_regression_fails_the_gate_across_machines(arm):
    """A technique that slows by a third on every seed, or one that now misses, is caught across classes."""
    intel, amd = "cpu-intel-xeon-processor-2c", "cpu-amd-epyc-2c"
    baseline = _baseline_from(CROSS_MACHINE[intel], intel)
    slower = [[w, a, m, acc, [v / 1.35 for v in values] if a == arm else values]
              for w, a, m, acc, values in CROSS_MACHINE[amd]]
    missing = [[w, a, m, acc, [0.0 for _ in values] if a == arm else values]
               for w, a, m, acc, values in CROSS_MACHINE[amd]]
    for current in (slower, missing):
        outcome = compare_estimates(baseline, _estimates(current), amd)
        regressed = {(row.workload, row.arm) for row in outcome.rows if row.mark == REGRESSED}
        assert regressed and {a for _, a in regressed} == {arm}


def test_one_seed_taking_another_path_is_drift_but_most_seeds_slower_is_not():
    entry = [["w", "x", "steps", "finetune", [1.0, 1.0, 1.0]]]
    baseline = _baseline_from(entry, "a", seeds=(0, 1, 2))
    one_seed = _estimates([["w", "x", "steps", "finetune", [0.0, 1.0, 1.0]]], seeds=(0, 1, 2))
    two_seeds = _estimates([["w", "x", "steps", "finetune", [0.0, 0.5, 1.0]]], seeds=(0, 1, 2))
    assert not compare_estimates(baseline, one_seed, "b").regressed
    assert compare_estimates(baseline, two_seeds, "b").regressed
    assert compare_estimates(baseline, one_seed, "a").regressed  # on the same hardware one seed counts


@pytest.mark.parametrize("fmt", GATE_FORMATS)
def test_every_gate_format_says_regression_or_not(analysis, fmt):
    for baseline, regressed in ((baseline_dict(analysis), False), (_raised(baseline_dict(analysis), 1.2), True)):
        text = format_outcome(compare(baseline, analysis), fmt)
        if fmt == "json":
            parsed = json.loads(text)
            assert parsed["regressed"] is regressed and len(parsed["rows"]) == len(baseline["entries"])
        elif fmt == "junit":
            suite = ElementTree.fromstring(text)
            assert (int(suite.get("failures")) > 0) is regressed
            assert len(suite.findall("testcase")) == len(baseline["entries"])
        elif fmt == "markdown":
            assert ("**regression**" in text) is regressed and ("| - |" in text) is regressed
        else:
            assert ("0 regressed" not in text) is regressed


def _time_bound(seed=3) -> Analysis:
    """The standard results, but arm `fast` ran out of wall-clock budget on one seed."""
    results = _results()
    trials = results.trials.copy()
    trials.loc[(trials["arm"] == "fast") & (trials["seed"] == seed), ["status", "stop_reason"]] = ["missed",
                                                                                                  "max_seconds"]
    return analyze(Results(trials, results.curves, results.runs), claims=[])


def test_a_time_bound_arms_deterministic_metrics_are_not_compared_exactly(analysis):
    time_bound = _time_bound()
    for baseline, current in ((_raised(baseline_dict(time_bound), 1.2), time_bound),  # time-bound now
                              (_raised(baseline_dict(time_bound), 1.2), analysis),  # in the baseline
                              (_raised(baseline_dict(analysis), 1.2), time_bound)):
        outcome = compare(baseline, current)
        fast = [row for row in outcome.rows if row.arm == "fast" and row.deterministic]
        assert fast and {row.mark for row in fast} == {UNCHANGED}
        assert all(row.reason.startswith("time-bound: ") and "stopped on max_seconds" in row.reason for row in fast)
        transfer = [row for row in outcome.rows if row.arm == "transfer" and row.metric == "steps"]
        assert {row.mark for row in transfer} == {REGRESSED}  # its trials all stopped on steps or target
    assert "time-bound" in format_text(compare(baseline_dict(time_bound), time_bound))


def test_an_arm_missing_from_the_results_is_a_regression(analysis):
    baseline = baseline_dict(analysis)
    baseline["entries"].append({**baseline["entries"][0], "arm": "vanished"})
    assert compare(baseline, analysis).rows[-1].mark == REGRESSED


def test_cli_baseline_save_then_gate_exit_codes(results_dir, tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", "save", "--results", str(results_dir), "--out", str(baseline)]) == 0
    assert load_baseline(baseline)["hardware_class"] == "cpu-synthetic"
    assert main(["gate", "--baseline", str(baseline), "--results", str(results_dir)]) == 0
    raised = tmp_path / "raised.json"
    raised.write_text(json.dumps(_raised(json.loads(baseline.read_text()), 1.2)))
    assert main(["gate", "--baseline", str(raised), "--results", str(results_dir)]) == 1
    assert "regressed (-)" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, "{not json", '{"kind": "something else"}'])
def test_cli_gate_bad_input_exits_2_with_one_line(results_dir, tmp_path, capsys, content):
    baseline = tmp_path / "baseline.json"
    if content is not None:
        baseline.write_text(content)
    assert main(["gate", "--baseline", str(baseline), "--results", str(results_dir)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_loading_a_folder_without_results_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no results"):
        load_results(tmp_path)


def test_trials_of_an_older_suite_version_are_left_out():
    from step7bench.analysis.results import latest_suite_version

    old, new = _results(seeds=range(2)), _results(seeds=range(3))
    old_runs = old.runs.assign(run_id="old", suite_hash="before", started_at="1999-01-01T00:00:00+00:00")
    trials = pd.concat([old.trials.assign(run_id="old", trial_id="old-" + old.trials["trial_id"]), new.trials])
    kept = latest_suite_version(trials, pd.concat([old.curves, new.curves]), pd.concat([old_runs, new.runs]))
    assert len(kept.trials) == len(new.trials) and kept.superseded_trials == len(old.trials)
    assert set(kept.runs["run_id"]) == set(new.runs["run_id"])


def test_the_summary_gives_the_latest_runs_device_fingerprint(analysis):
    assert analysis.results.fingerprint["hardware_class"] == "cpu-synthetic"
    assert summary_dict(analysis)["hardware"]["fingerprint"] == analysis.results.fingerprint


@pytest.mark.parametrize(("value", "page", "table"), [(1.23456, "1.23", "1.235"), (None, "—", "-"),
                                                       (float("nan"), "—", "-"), (float("inf"), "∞", "inf")])
def test_one_number_formatter_serves_the_page_and_the_gate_table(value, page, table):
    assert number(value) == page and number(value, 3, absent="-", infinite="inf") == table
