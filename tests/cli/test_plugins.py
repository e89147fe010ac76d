"""A technique and a workload of one's own, without a fork: the example plugin package through the
command line, found by its entry points as if installed, and by a suite's `plugins` key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ROOT / "examples" / "step7bench-extras"


def _step7bench(*args: str, pythonpath: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
           "STEP7BENCH_CACHE": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "step7bench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600, check=False)


def _installed(folder: Path) -> Path:
    """What `pip install` leaves on the path for the package's entry points: its .dist-info."""
    info = folder / "step7bench_extras-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: step7bench-extras\nVersion: 0.1.0\n")
    entry_points = EXTRAS / "pyproject.toml"
    assert "step7bench.techniques" in entry_points.read_text()  # the same groups the package declares
    (info / "entry_points.txt").write_text(
        "[step7bench.techniques]\nselective_backprop = step7bench_extras.selective_backprop\n\n"
        "[step7bench.workloads]\nbreast-cancer = step7bench_extras.breast_cancer:BreastCancer\n")
    return folder


def test_an_installed_plugin_is_listed_with_where_it_came_from(tmp_path):
    done = _step7bench("list", pythonpath=[EXTRAS, _installed(tmp_path / "site")], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "selective_backprop (step; control selective_backprop_random)" in done.stdout
    assert "breast-cancer (classification)" in done.stdout and "[entry point 'breast-cancer'" in done.stdout


def test_a_plugin_suite_runs_through_the_command_line_report_included(tmp_path):
    results = tmp_path / "results"
    done = _step7bench("run", "--suite", str(EXTRAS / "suites" / "extras-micro.toml"), "--results", str(results),
                       "--threads", "1", pythonpath=[EXTRAS], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((results / "summary.json").read_text())
    arms = {(arm["workload"], arm["arm"]) for arm in summary["arms"]}
    assert {("breast-cancer", "selective_backprop"), ("digits", "selective_backprop_random")} <= arms
    assert any(c["technique"] == "selective_backprop" for c in summary["controls"])
    assert "1 torch thread(s) per trial" in (results / "index.html").read_text()  # --threads 1, in provenance


def test_a_trial_of_a_plugin_technique_on_a_plugin_workload(tmp_path):
    done = _step7bench("trial", "--workload", "breast-cancer", "--preset", "micro", "--technique",
                       "selective_backprop", "--plugin", "step7bench_extras", "--threads", "1", "--json",
                       pythonpath=[EXTRAS], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["techniques"] == ["selective_backprop"] and result["status"] in ("reached", "missed")
    assert 0 < result["technique_stats"]["selective_backprop"]["keep_rate"] <= 1


def test_the_readmes_technique_runs_as_written(tmp_path):
    """The module under the README's "Write your own technique", saved as it stands, through `trial`."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Write your own technique"):readme.index("## Write your own workload")]
    code = section[section.index("```python\n") + len("```python\n"):]
    (tmp_path / "keep_hardest.py").write_text(code[:code.index("```")])
    done = _step7bench("trial", "--plugin", "keep_hardest", "--workload", "digits", "--preset", "micro",
                       "--technique", "keep_hardest", "--threads", "1", "--json", pythonpath=[tmp_path], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["techniques"] == ["keep_hardest"] and result["status"] in ("reached", "missed")
    assert result["technique_stats"]["keep_hardest"]["activity"]["value"] == 0.5  # half of every batch of 32
    assert result["ledger"]["examples_overhead"] > 0  # the scoring pass was charged
