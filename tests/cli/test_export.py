"""`step7bench export`: trials and learning curves (long form) in CSV, Parquet and standard JSON."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store  # noqa: E402
from step7bench.cli import main  # noqa: E402
from step7bench.harness.store import ledger_columns  # noqa: E402

SEEDS = range(2)
CHECKS_PER_TRIAL = 8  # synthetic_curves' default


def _refuse(token: str) -> None:
    raise AssertionError(f"non-standard JSON token {token}")


@pytest.fixture
def results(tmp_path) -> Path:
    """Baseline, A/A and one arm on two seeds; the arm missed on seed 1 with no finite loss."""
    trials = synthetic_trials([PlantedArm("fast", 1.5, missed=(1,))], SEEDS)
    trials["trial_id"] = trials["trial_id"].astype(str)
    missed = (trials["arm"] == "fast") & (trials["seed"] == 1)
    trials.loc[missed, "best_val_loss"] = math.inf
    curves = synthetic_curves(trials)
    curves.loc[curves["trial_id"].isin(trials.loc[missed, "trial_id"]), "val_loss"] = math.inf
    return write_store(tmp_path / "results", trials, curves, synthetic_runs())


def _export(results: Path, *flags: str) -> Path:
    assert main(["export", "--results", str(results), *flags]) == 0
    what = flags[flags.index("--what") + 1] if "--what" in flags else "trials"
    fmt = flags[flags.index("--format") + 1] if "--format" in flags else "csv"
    return results / f"{what}.{fmt}"


def test_curves_are_one_row_per_trial_and_check_with_the_trials_identity_and_every_ledger_column(results):
    trials = 3 * len(SEEDS)
    for fmt, read in (("csv", pd.read_csv), ("parquet", pd.read_parquet)):
        curves = read(_export(results, "--what", "curves", "--format", fmt))
        assert len(curves) == trials * CHECKS_PER_TRIAL
        assert {"trial_id", "workload", "arm", "seed", "techniques", "step", "val_loss"} <= set(curves.columns)
        assert set(ledger_columns()) <= set(curves.columns)
        fast = curves[curves["arm"] == "fast"]
        assert sorted(set(fast["seed"])) == list(SEEDS) and fast.groupby("seed").size().eq(CHECKS_PER_TRIAL).all()
        assert fast.groupby("seed")["steps"].apply(lambda steps: steps.is_monotonic_increasing).all()


def test_csv_writes_the_techniques_joined_not_as_a_python_repr(results):
    trials = pd.read_csv(_export(results), keep_default_na=False)
    assert set(trials.loc[trials["arm"] == "fast", "techniques"]) == {"fast"}
    assert set(trials.loc[trials["arm"] == "baseline", "techniques"]) == {""}


@pytest.mark.parametrize("what", ["trials", "curves"])
def test_json_is_standard_json_with_infinities_as_null_and_named(results, what):
    text = _export(results, "--what", what, "--format", "json").read_text()
    records = json.loads(text, parse_constant=_refuse)
    assert records and all(isinstance(record["infinite"], dict) for record in records)
    column = "best_val_loss" if what == "trials" else "val_loss"
    infinite = [record for record in records if record["infinite"]]
    assert infinite and all(record["infinite"][column] == "inf" and record[column] is None for record in infinite)
    assert {record["arm"] for record in infinite} == {"fast"}
    assert all(isinstance(record[column], float) for record in records if not record["infinite"])
    assert all(isinstance(record["techniques"], list) for record in records)


def test_trials_stay_the_default_and_output_names_the_file(results, tmp_path, capsys):
    output = tmp_path / "out" / "t.parquet"
    assert main(["export", "--results", str(results), "--format", "parquet", "--output", str(output)]) == 0
    assert len(pd.read_parquet(output)) == 3 * len(SEEDS)
    assert f"6 trials rows written to {output}" in capsys.readouterr().out
