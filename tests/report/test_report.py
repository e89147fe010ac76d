"""The report: files written, the page self-contained and in the promised order, the CLI verb."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from matplotlib.image import imread

from step7bench.analysis.claims import Judge, trial_activity
from step7bench.analysis.speedups import CostTable
from step7bench.analysis.summary import SCHEMA_VERSION
from page_text import in_order, visible_text
from synthetic import PlantedArm, synthetic_seed_suite, synthetic_trials
from step7bench.cli import main
from step7bench.harness.claims import Claim
from step7bench.report import FIGURES_FOLDER
from step7bench.report.figures import _cost_breakdown
from step7bench.report.html import _claim_row, _trial_threads

FIGURES = ("forest", "cumulative", "curves", "controls", "cost_breakdown", "energy")


def test_the_report_writes_the_page_the_figures_and_the_summary(report, results_dir):
    assert report == results_dir / "index.html"
    for name in FIGURES:
        image = imread(results_dir / FIGURES_FOLDER / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0  # drawn, not blank
    summary = json.loads((results_dir / "summary.json").read_text())
    assert summary["schema_version"] == SCHEMA_VERSION
    assert {claim["verdict"] for claim in summary["claims"]} <= {"SUPPORTED", "REFUTED", "INCONCLUSIVE",
                                                                  "NOT MEASURED"}
    assert summary["stack"][0]["claimed_product"] == 17.5


def test_the_page_is_self_contained(report):
    html = report.read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    # Links go nowhere but within the page (its table of contents), to anchors it has.
    links = re.findall(r'href="([^"]*)"', html)
    assert links and all(link.startswith("#") for link in links)
    assert {link[1:] for link in links} <= set(re.findall(r'id="([^"]+)"', html))
    assert "<script" not in html


def test_the_verdict_table_comes_first_then_the_instrument_then_the_cumulative_table(report):
    html = report.read_text()
    # Verdicts first; then whether the instrument can be trusted; the cumulative table; technique by
    # technique (each against its random control; transfer's accountings); every arm; costs.
    assert in_order(html, ("Verdicts on the claims", "Can this instrument see a real speed-up?", "A/A check",
                           "cumulative table, row by row", "random control", "Transfer learning",
                           "Speedups with intervals", "Validation loss against cost", "Where the cost went",
                           "Provenance", "How each number is measured"))
    assert 'class="verdict refuted"' in html  # the seed's 17.5x on made-up effects of at most 4x
    assert "estimate" in html  # synthetic energy is labelled an estimate, and the page says so
    assert "proportional to CPU time" in visible_text(html)


def test_cli_report_rewrites_the_report_and_refuses_a_folder_without_results(results_dir, tmp_path, capsys):
    assert main(["report", "--results", str(results_dir), "--confidence", "0.9"]) == 0
    assert "index.html" in capsys.readouterr().out
    assert main(["report", "--results", str(tmp_path)]) == 2
    assert "no results" in capsys.readouterr().err


def test_the_cost_breakdown_says_missed_trials_count_at_their_whole_budget():
    trials, _, _ = synthetic_seed_suite(seeds=range(2), workloads=("grammar-lm",))
    figure = _cost_breakdown(trials, ["grammar-lm"])  # a bare Figure: nothing for pyplot to close
    assert figure.axes[0].get_xlabel() == "wall seconds (median trial; missed trials at their whole budget)"


def test_a_runs_provenance_says_how_many_torch_threads_its_trials_trained_with():
    trials = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c"], "torch_threads": [1, 1, 1, 2, None]})
    assert [_trial_threads(trials, run) for run in "abc"] == ["1", "1-2", ""]  # c: a failed trial never ran
    assert _trial_threads(trials.drop(columns="torch_threads"), "a") == ""  # a store from before the column


def test_the_verdict_row_marks_an_as_specified_arm_whose_mechanism_never_fired():
    trials = synthetic_trials([PlantedArm("a", 1.5), PlantedArm("a@as_specified", 1.0, "as_specified",
                                                                 techniques=("a",))], seeds=range(3))
    stated = trials["arm"] == "a@as_specified"
    quiet = json.dumps({"a": {"activity": {"fired": False, "summary": "never fired", "value": 0.0}}})
    trials = trials.assign(variant=np.where(stated, "as_specified", "tuned"),
                           technique_stats=np.where(stated, quiet, "{}"))
    (result,) = Judge(CostTable(trials), activity=trial_activity(trials)).claims([Claim("a", ["a"], 1.2, "steps", "technique")])
    row = _claim_row(result)
    assert row["inactive"] == [] and row["as_specified"]["inactive"] is True
