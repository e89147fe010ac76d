"""`step7bench export --to mlflow` against a local file store (skipped without MLflow, an optional
extra: `pip install 'step7bench[mlflow]'`)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store  # noqa: E402
from step7bench.cli import main  # noqa: E402

mlflow = pytest.importorskip("mlflow")

SEEDS = range(2)
CHECKS_PER_TRIAL = 8  # synthetic_curves' default


@pytest.fixture
def results(tmp_path) -> Path:
    trials = synthetic_trials([PlantedArm("fast", 1.5, missed=(1,))], SEEDS)
    trials["trial_id"] = trials["trial_id"].astype(str)
    trials.loc[(trials["arm"] == "fast") & (trials["seed"] == 1), "best_val_loss"] = math.inf
    folder = write_store(tmp_path / "results", trials, synthetic_curves(trials), synthetic_runs())
    (folder / "index.html").write_text("<html>report</html>")
    (folder / "summary.json").write_text("{}")
    return folder


def _trial_runs(client, experiment_id):
    runs = client.search_runs([experiment_id], "tags.`step7bench.kind` = 'trial'", max_results=1000)
    return {run.data.tags["step7bench.trial_id"]: run for run in runs}


def test_each_trial_is_a_run_with_params_costs_curve_and_the_report_on_the_parent(results, tmp_path, capsys):
    uri = (tmp_path / "mlruns").as_uri()
    assert main(["export", "--results", str(results), "--to", "mlflow", "--tracking-uri", uri,
                 "--experiment", "bench"]) == 0
    assert "6 trials logged" in capsys.readouterr().out
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("bench")
    runs = _trial_runs(client, experiment.experiment_id)
    assert len(runs) == 3 * len(SEEDS)
    fast = next(run for run in runs.values() if run.data.params["arm"] == "fast" and run.data.params["seed"] == "0")
    assert {"workload", "arm", "arm_kind", "seed", "techniques", "preset"} <= set(fast.data.params)
    assert fast.data.params["techniques"] == "fast"
    assert {"steps", "flops_total", "wall_s", "energy_j", "steps_to_target"} <= set(fast.data.metrics)
    curve = client.get_metric_history(fast.info.run_id, "val_loss")
    assert len(curve) == CHECKS_PER_TRIAL and [point.step for point in curve] == sorted(point.step for point in curve)
    missed = next(run for run in runs.values() if run.data.params["arm"] == "fast" and run.data.params["seed"] == "1")
    assert "best_val_loss" not in missed.data.metrics and missed.data.tags["step7bench.infinite"] == "best_val_loss"
    parent = client.get_run(fast.data.tags["mlflow.parentRunId"])
    assert {artifact.path for artifact in client.list_artifacts(parent.info.run_id)} == {"index.html", "summary.json"}


def test_exporting_again_logs_only_new_trials(results, tmp_path, capsys):
    uri = (tmp_path / "mlruns").as_uri()
    for _ in range(2):
        assert main(["export", "--results", str(results), "--to", "mlflow", "--tracking-uri", uri]) == 0
    assert "0 trials logged" in capsys.readouterr().out.splitlines()[-1]
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("step7bench/synthetic")
    assert len(_trial_runs(client, experiment.experiment_id)) == 3 * len(SEEDS)


def test_a_file_flag_with_mlflow_is_one_line_and_exit_2(results, tmp_path, capsys):
    assert main(["export", "--results", str(results), "--to", "mlflow", "--format", "csv"]) == 2
    assert capsys.readouterr().err.strip() == "error: --format applies to --to file, not --to mlflow"
