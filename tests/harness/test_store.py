"""The results store: the contract's columns, atomic trials, resume set, merge, schema."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pandas as pd
import pytest

from step7bench.engine import EvalPoint, Ledger, TrialResult
from step7bench.errors import UserError
from step7bench.harness.store import SCHEMA_VERSION, ResultsStore, TrialRecord

CONTRACT_TRIAL_COLUMNS = ["trial_id", "run_id", "workload", "preset", "arm", "arm_kind", "techniques", "control_of",
                          "seed", "pair_seed", "stop_reason",
                          "status", "steps_to_target", "target_val_loss", "best_val_loss", "error", "device",
                          "hardware_class", "technique_stats", *Ledger.field_names(), "wall_s", "flops_total"]
CONTRACT_RUN_COLUMNS = ["run_id", "started_at", "git_commit", "git_dirty", "torch_version", "device_fingerprint",
                        "hardware_class", "suite_name", "suite_hash", "command_line", "python_version"]


def _ledger(steps: int) -> Ledger:
    ledger = Ledger(steps=steps, examples_forward=32 * steps, flops_forward=1000 * steps, wall_train_s=0.5 * steps,
                    device_s=0.5 * steps)
    ledger.charge_energy(2.0, "estimate")
    return ledger


_STOP_REASON = {"reached": "target", "missed": "max_steps", "diverged": "diverged", "failed": None}


def _result(status="reached", seed=0, techniques=("curriculum",), steps=3) -> TrialResult:
    curve = [EvalPoint(step, 2.0 / step, 2.5 / step, _ledger(step).snapshot()) for step in range(1, steps + 1)]
    return TrialResult(status=status, workload="digits", preset="micro", techniques=list(techniques), seed=seed,
                       device="cpu", target_val_loss=0.7, steps_to_target=steps if status == "reached" else None,
                       best_val_loss=2.0 / steps, curve=curve, ledger=_ledger(steps),
                       technique_stats={"curriculum": {"fraction": 0.5}},
                       error="Traceback ...\nValueError: boom" if status == "failed" else None,
                       stop_reason=_STOP_REASON[status])


def _record(trial_id="t1", run_id="r1", arm="curriculum", kind="alone", pair_seed=0,
            control_of=None) -> TrialRecord:
    return TrialRecord(trial_id, run_id, arm, kind, "cpu-test-2c", {"seed": 0}, "2025-01-01T00:00:00",
                       "2025-01-01T00:00:01", pair_seed, control_of)


def _provenance(run_id="r1") -> dict:
    return {"run_id": run_id, "started_at": "2025-01-01T00:00:00", "git_commit": "abc", "git_dirty": False,
            "torch_version": "2.13", "device_fingerprint": {"device": "cpu"}, "hardware_class": "cpu-test-2c",
            "suite_name": "mini", "suite_hash": "h", "command_line": "step7bench run", "python_version": "3.11",
            "shard": None}


@pytest.fixture
def store(tmp_path):
    with ResultsStore(tmp_path / "results") as opened:
        opened.add_run(_provenance())
        yield opened


def test_frames_have_the_contract_columns(store):
    store.add_trial(_record(), _result())
    trials = store.trials_frame()
    assert set(CONTRACT_TRIAL_COLUMNS) <= set(trials.columns)
    row = trials.iloc[0]
    assert (row.techniques, row.status, row.steps_to_target, row.steps, row.energy_method) == (
        ("curriculum",), "reached", 3, 3, "estimate")
    assert row.flops_total == 3000 and json.loads(row.technique_stats) == {"curriculum": {"fraction": 0.5}}
    curves = store.curves_frame()
    assert list(curves["step"]) == [1, 2, 3] and {"val_loss", "train_loss", "device_s", "wall_s"} <= set(curves)
    runs = store.runs_frame()
    assert set(CONTRACT_RUN_COLUMNS) <= set(runs.columns)
    assert runs.iloc[0].git_dirty is False and json.loads(runs.iloc[0].device_fingerprint) == {"device": "cpu"}


def test_the_baseline_has_empty_techniques_and_a_miss_has_infinite_best_loss_kept(store):
    result = _result(status="missed", techniques=())
    result.best_val_loss = float("inf")
    store.add_trial(_record(arm="baseline", kind="baseline"), result)
    row = store.trials_frame().iloc[0]
    assert row.techniques == () and row.best_val_loss == float("inf") and pd.isna(row.steps_to_target)


def test_arm_identity_and_pairing_are_stored_as_data(store):
    store.add_trial(_record("aa", arm="aa", kind="aa", pair_seed=3), _result(seed=10_003, techniques=()))
    store.add_trial(_record("c", arm="curriculum_random", kind="control", control_of="curriculum"),
                    _result(techniques=("curriculum_random",)))
    rows = store.trials_frame().set_index("trial_id")
    assert (rows.loc["aa", "seed"], rows.loc["aa", "pair_seed"]) == (10_003, 3)
    assert rows.loc["c", "control_of"] == "curriculum" and pd.isna(rows.loc["aa", "control_of"])


def test_failed_trials_are_retried_and_replaced(store):
    store.add_trial(_record(), _result(status="failed"))
    assert store.done_trial_ids() == set()
    store.add_trial(_record(), _result(status="reached", steps=2))
    assert store.done_trial_ids() == {"t1"}
    assert len(store.trials_frame()) == 1 and len(store.curves_frame()) == 2


def test_a_trial_is_all_or_nothing(store, monkeypatch):
    broken = _result()
    broken.curve.append(broken.curve[-1])  # a repeated step breaks the curves' primary key mid-transaction
    with pytest.raises(sqlite3.IntegrityError):
        store.add_trial(_record(), broken)
    assert store.trials_frame().empty and store.curves_frame().empty


def test_merge_adds_missing_trials_once(tmp_path, store):
    store.add_trial(_record("t1"), _result())
    with ResultsStore(tmp_path / "other") as other:
        other.add_run(_provenance("r2"))
        other.add_trial(_record("t1", "r2"), _result())
        other.add_trial(_record("t2", "r2"), _result(seed=1))
        assert store.merge_from(other) == (1, 1)
        assert store.merge_from(other) == (0, 2)
    assert sorted(store.trials_frame()["trial_id"]) == ["t1", "t2"]
    assert sorted(store.runs_frame()["run_id"]) == ["r1", "r2"]
    assert len(store.curves_frame()) == 6
    assert store.integrity_check() == "ok"


def test_merge_replaces_a_failure_with_a_success(tmp_path, store):
    store.add_trial(_record("t1"), _result(status="failed"))
    with ResultsStore(tmp_path / "other") as other:
        other.add_run(_provenance("r2"))
        other.add_trial(_record("t1", "r2"), _result())
        assert store.merge_from(other) == (1, 0)
    assert list(store.trials_frame()["status"]) == ["reached"]


def test_merging_a_store_into_itself_is_refused(store):
    with pytest.raises(UserError, match="into itself"):
        store.merge_from(store)


def test_reopening_adds_columns_a_newer_ledger_has(tmp_path):
    folder = tmp_path / "old"
    with ResultsStore(folder):
        pass
    db = sqlite3.connect(folder / "results.sqlite")
    db.execute("ALTER TABLE trials DROP COLUMN flops_audit")
    db.close()
    with ResultsStore(folder) as reopened:
        assert "flops_audit" in reopened.trials_frame().columns


def test_a_newer_schema_is_refused(tmp_path):
    folder = tmp_path / "new"
    with ResultsStore(folder):
        pass
    db = sqlite3.connect(folder / "results.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(UserError, match="newer"):
        ResultsStore(folder)


def test_a_missing_store_is_a_user_error_when_not_creating(tmp_path):
    with pytest.raises(UserError, match="no results"):
        ResultsStore(tmp_path / "absent", create=False)


def test_a_file_that_is_not_a_database_is_a_user_error(tmp_path):
    (tmp_path / "results.sqlite").write_text("not sqlite at all " * 100)
    with pytest.raises(UserError, match="not a results database"):
        ResultsStore(tmp_path)


def test_the_store_uses_a_write_ahead_log(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_engines_stop_reason_is_stored_with_the_trial(store):
    store.add_trial(_record(), dataclasses.replace(_result(status="missed"), stop_reason="max_seconds"))
    assert store.trials_frame()["stop_reason"].tolist() == ["max_seconds"]


def test_an_older_schema_is_refused_with_what_to_do(tmp_path):
    folder = tmp_path / "old-schema"
    with ResultsStore(folder):
        pass
    db = sqlite3.connect(folder / "results.sqlite")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    db.commit()
    db.close()
    with pytest.raises(UserError, match="older step7bench.*new results folder"):
        ResultsStore(folder)
