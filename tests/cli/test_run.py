"""End to end through the command line: run, resume, failures, lock, shards + merge, export,
calibrate and list, on digits micro with stand-in techniques (tests/harness/harness_fakes.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))

import harness_fakes  # noqa: E402
from harness_fakes import mini_suite_text  # noqa: E402
from step7bench.cli import main  # noqa: E402
from step7bench.harness.lock import FolderLock  # noqa: E402
from step7bench.harness.store import ResultsStore  # noqa: E402


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    return harness_fakes.install(monkeypatch)


@pytest.fixture(autouse=True)
def no_report(monkeypatch):
    """The report has its own tests; here `run` calls a stand-in and records the call."""
    calls = []
    def write_analysis_report(analysis, folder):
        calls.append(folder)
        return folder / "index.html"

    monkeypatch.setattr("step7bench.report.write_analysis_report", write_analysis_report)
    return calls


def _suite(tmp_path: Path, **kwargs) -> Path:
    path = tmp_path / "mini.toml"
    path.write_text(mini_suite_text(**kwargs))
    return path


def _trials(folder: Path) -> pd.DataFrame:
    with ResultsStore(folder, create=False) as store:
        return store.trials_frame()


def test_run_records_every_trial_then_resumes_without_rerunning(tmp_path, capsys, no_report):
    suite, results = _suite(tmp_path), tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results), "--device", "cpu"]) == 0
    assert no_report == [results]
    first = _trials(results)
    assert sorted(first["arm"]) == ["aa", "active_learning", "baseline", "curriculum"]
    assert set(first["arm_kind"]) == {"baseline", "aa", "alone"}
    out, err = capsys.readouterr()
    assert "speedup over the baseline" in out and "[4/4]" in err
    assert f"report: {results / 'index.html'}" in out.replace("\n", "")
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    assert "0 trials to run; 4 already in the results" in capsys.readouterr().err
    again = _trials(results)
    assert list(again["trial_id"]) == list(first["trial_id"])
    with ResultsStore(results) as store:
        assert len(store.runs_frame()) == 2 and store.integrity_check() == "ok"


def test_more_seeds_runs_only_the_new_trials(tmp_path, capsys):
    suite, results = _suite(tmp_path, arms='["baseline", "aa"]'), tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    assert main(["run", "--suite", str(suite), "--results", str(results), "--seeds", "2"]) == 0
    assert "2 trials to run; 2 already in the results" in capsys.readouterr().err
    assert sorted(_trials(results)["seed"]) == [0, 1, 10_000, 10_001]


def test_a_failing_trial_is_recorded_the_suite_goes_on_and_the_exit_is_1(tmp_path, capsys):
    suite = _suite(tmp_path, extra="\n[technique.curriculum]\nexplode = true\n")
    results = tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 1
    trials = _trials(results).set_index("arm")
    assert trials.loc["curriculum", "status"] == "failed"
    assert "curriculum was told to explode" in trials.loc["curriculum", "error"]
    assert (trials.drop(index="curriculum")["status"] != "failed").all()
    assert "1 trial(s) failed" in capsys.readouterr().err


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, capsys):
    suite, results = _suite(tmp_path), tmp_path / "results"
    with FolderLock(results):
        assert main(["run", "--suite", str(suite), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is in use by another run" in err


def test_a_failing_report_is_one_line_and_exit_1_with_the_trials_kept(tmp_path, capsys, monkeypatch):
    def broken(analysis, folder):
        raise KeyError("controls")

    monkeypatch.setattr("step7bench.report.write_analysis_report", broken)
    results = tmp_path / "results"
    assert main(["run", "--suite", str(_suite(tmp_path, arms='["baseline"]')), "--results", str(results)]) == 1
    assert "error: the report failed (KeyError: 'controls')" in capsys.readouterr().err
    assert len(_trials(results)) == 1


def test_shards_merged_equal_the_whole_run(tmp_path, capsys, no_report):
    suite = _suite(tmp_path, seeds=2, arms='["baseline", "aa"]')
    for index in (1, 2, 3):
        assert main(["run", "--suite", str(suite), "--results", str(tmp_path / f"s{index}"),
                     "--shard", f"{index}/3"]) == 0
    shards = [str(tmp_path / f"s{index}") for index in (1, 2, 3)]
    assert main(["merge", *shards, "--into", str(tmp_path / "all")]) == 0
    assert main(["merge", *shards, "--into", str(tmp_path / "all")]) == 0
    assert "0 trials added" in capsys.readouterr().out
    merged = _trials(tmp_path / "all")
    assert len(merged) == 4 and merged["trial_id"].is_unique
    assert no_report == []  # shards write no report
    assert main(["run", "--suite", str(suite), "--results", str(tmp_path / "all")]) == 0
    assert "0 trials to run" in capsys.readouterr().err


@pytest.mark.parametrize("shard", ["0/2", "1/x"])
def test_a_bad_shard_is_a_usage_error(tmp_path, capsys, shard):
    assert main(["run", "--suite", str(_suite(tmp_path)), "--results", str(tmp_path / "r"), "--shard", shard]) == 2
    assert "--shard" in capsys.readouterr().err


def test_export_writes_one_row_per_trial_in_each_format(tmp_path):
    suite, results = _suite(tmp_path, arms='["baseline", "aa"]'), tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    needed = {"workload", "arm", "techniques", "seed", "status", "steps_to_target", "steps", "flops_total",
              "device_s", "energy_j"}
    csv = pd.read_csv(_export(results, "csv"))
    parquet = pd.read_parquet(_export(results, "parquet"))
    records = json.loads(_export(results, "json").read_text())
    assert len(csv) == len(parquet) == len(records) == 2
    assert needed <= set(csv.columns) and needed <= set(parquet.columns) and needed <= set(records[0])


def _export(results: Path, fmt: str) -> Path:
    assert main(["export", "--results", str(results), "--format", fmt]) == 0
    return results / f"trials.{fmt}"


def test_export_of_a_folder_without_results_is_a_usage_error(tmp_path, capsys):
    assert main(["export", "--results", str(tmp_path / "none")]) == 2
    assert "no results" in capsys.readouterr().err


def test_calibrate_writes_targets_the_suite_then_uses(tmp_path, capsys):
    text = mini_suite_text(arms='["baseline"]').replace("target_val_loss = 2.2\n", "")
    text = text.replace("seeds = 1", 'seeds = 1\ntargets = "targets.toml"')
    suite = tmp_path / "mini.toml"
    suite.write_text(text)
    assert main(["calibrate", "--suite", str(suite), "--seeds", "2", "--margin", "0.1"]) == 0
    written = (tmp_path / "targets.toml").read_text()
    assert "calibration_seeds = [20000, 20001]" in written and "margin = 0.1" in written
    from step7bench.harness.suite import load_suite

    entry = load_suite(str(suite)).workloads[0]
    assert entry.target_source == "targets file"
    # A hand-written tuning entry (only what the suite reader requires) survives recalibrating the targets.
    (tmp_path / "targets.toml").write_text(written + '\n[[tuning]]\nworkload = "digits"\npreset = "micro"\n'
                                           'technique = "curriculum"\nwinner = { pacing = "linear" }\n')
    assert main(["calibrate", "--suite", str(suite), "--seeds", "2", "--no-tune", "--tuning-seeds", "2"]) == 0
    again = (tmp_path / "targets.toml").read_text()
    assert "--seeds 2 --tuning-seeds 2 --no-tune`" in again  # the header's command reproduces the file
    assert load_suite(str(suite)).workloads[0].tuning[0]["winner"] == {"pacing": "linear"}


def test_list_names_workloads_techniques_and_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "curriculum_random" in out and "smoke:" in out


def _runs(folder: Path) -> pd.DataFrame:
    with ResultsStore(folder, create=False) as store:
        return store.runs_frame()


def test_set_changes_one_value_records_it_and_names_new_trials(tmp_path):
    suite, plain, changed = _suite(tmp_path), tmp_path / "plain", tmp_path / "changed"
    assert main(["run", "--suite", str(suite), "--results", str(plain), "--no-report"]) == 0
    assert main(["run", "--suite", str(suite), "--results", str(changed), "--no-report",
                 "--set", "digits.max_steps=30", "--set", "seeds=2"]) == 0
    before, after = _trials(plain), _trials(changed)
    assert {json.loads(c)["max_steps"] for c in after["config"]} == {30} and set(after["seed"]) >= {0, 1}
    assert not set(before["trial_id"]) & set(after["trial_id"])
    assert json.loads(_runs(changed)["overrides"].iloc[0]) == ["digits.max_steps=30", "seeds=2"]


@pytest.mark.parametrize("override", ["nonsense", "=3", "digits.max_steps=0", "digits=3"])
def test_a_bad_override_is_one_line_and_exit_2(tmp_path, capsys, override):
    assert main(["run", "--suite", str(_suite(tmp_path)), "--set", override, "--no-report"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_deadline_that_has_passed_runs_nothing_and_marks_the_run_partial(tmp_path, capsys):
    results = tmp_path / "late"
    assert main(["run", "--suite", str(_suite(tmp_path)), "--results", str(results), "--no-report",
                 "--deadline", "0.00001"]) == 0
    assert "not started" in capsys.readouterr().err
    assert _trials(results).empty
    assert json.loads(_runs(results)["past_deadline"].iloc[0])


def test_adaptive_runs_look_after_look_and_records_its_decisions(tmp_path, capsys):
    suite = _suite(tmp_path, techniques='["curriculum"]', arms='["baseline", "alone"]',
                   extra="\n[adaptive]\nmax_seeds = 3\nbatch = 1\nspending = \"pocock\"\n")
    results = tmp_path / "adaptive"
    assert main(["run", "--suite", str(suite), "--results", str(results), "--no-report", "--adaptive"]) == 0
    assert "adaptive look 1" in capsys.readouterr().err
    decided = json.loads(_runs(results)["adaptive"].iloc[-1])["decided_at"]
    assert decided and set(decided.values()) <= {1, 2, 3}


def test_adaptive_needs_the_suites_plan(tmp_path, capsys):
    assert main(["run", "--suite", str(_suite(tmp_path)), "--adaptive", "--no-report"]) == 2
    assert "[adaptive]" in capsys.readouterr().err


def test_an_edit_that_changes_no_trial_keeps_every_trial_and_a_new_target_supersedes_them(tmp_path, capsys):
    from step7bench.analysis.results import load_results

    suite, results = _suite(tmp_path), tmp_path / "results"
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    suite.write_text(suite.read_text() + "\n# a comment changes the suite's hash, not its trials\n")
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    assert "0 trials to run; 4 already in the results" in capsys.readouterr().err
    kept = load_results(results)
    assert len(kept.trials) == 4 and kept.superseded_trials == 0 and len(kept.runs) == 2
    suite.write_text(suite.read_text().replace("target_val_loss = 2.2", "target_val_loss = 2.25"))
    assert main(["run", "--suite", str(suite), "--results", str(results)]) == 0
    newer = load_results(results)
    assert len(newer.trials) == 4 and newer.superseded_trials == 4
    assert set(newer.trials["target_val_loss"]) == {2.25}
