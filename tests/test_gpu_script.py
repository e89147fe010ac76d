"""scripts/gpu-validate.sh: its --dry-run runs every step of the GPU validation on the CPU, and its
helpers (scripts/gpu_validate.py) write the metadata of an uninstalled checkout and the verdict table."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu-validate.sh"
REPO_TARGETS = REPO / "suites" / "targets" / "gpu.toml"
DRY_RUN_TIMEOUT_S = 240  # a hang guard: the dry run takes well under a minute on 2 cores
VERDICTS = ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT MEASURED")


def _helpers():
    spec = importlib.util.spec_from_file_location("gpu_validate", REPO / "scripts" / "gpu_validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    # This interpreter, and never pip: the test must not install anything into its environment.
    env = {**os.environ, "PYTHON": sys.executable, "GPU_VALIDATE_NO_PIP": "1"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=timeout_s, check=False)


def _snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-validate")
    targets_before = _snapshot(REPO_TARGETS)
    done = _script(str(out), "--dry-run", timeout_s=DRY_RUN_TIMEOUT_S)
    return out, done, targets_before


def test_the_dry_run_succeeds_and_leaves_every_output_in_out_dir(dry_run):
    out, done, _ = dry_run
    failures = [line for line in done.stdout.splitlines() if line.startswith(("error:", "!!", "  FAILED"))]
    assert done.returncode == 0, "\n".join(failures) or done.stdout[-4000:]
    for name in ("log.txt", "environment.json", "matmul.json", "suite/gpu.toml", "targets-gpu.toml", "trials.csv",
                 "curves.csv", "dry-run-cpu.json", "results/index.html", "results/summary.json"):
        assert (out / name).is_file(), name
    assert list((out / "results" / "figures").glob("*.png"))
    assert "dry run" in (out / "log.txt").read_text()


def test_the_dry_run_runs_the_gpu_suite_shrunk_to_micro_presets(dry_run):
    out, _, _ = dry_run
    targets = tomllib.loads((out / "targets-gpu.toml").read_text())
    assert sorted(f"{t['workload']}/{t['preset']}" for t in targets["target"]) == ["digits/micro", "grammar-lm/micro"]
    assert (out / "targets-gpu.toml").read_bytes() == (out / "suite" / "targets" / "gpu.toml").read_bytes()
    assert (out / "suite" / "gpu.toml").read_bytes() == (REPO / "suites" / "gpu.toml").read_bytes()
    environment = json.loads((out / "environment.json").read_text())
    assert environment["device"] == "cpu"


def test_the_dry_run_leaves_the_repositorys_targets_alone(dry_run):
    _, _, targets_before = dry_run
    assert _snapshot(REPO_TARGETS) == targets_before


def test_the_verdict_table_is_printed_last(dry_run):
    out, done, _ = dry_run
    lines = done.stdout.rstrip("\n").splitlines()
    header = max(i for i, line in enumerate(lines) if line.startswith("claim ") and "verdict" in line)
    rows = lines[header + 1:]
    claims = json.loads((out / "results" / "summary.json").read_text())["claims"]
    assert len(rows) == len(claims) > 0
    assert all(row.rstrip().endswith(VERDICTS) for row in rows)


def test_a_missing_out_dir_is_a_usage_error():
    done = _script(timeout_s=30)
    assert done.returncode == 2
    assert "usage:" in done.stderr


def test_the_shim_makes_an_uninstalled_checkout_report_its_version(tmp_path):
    info = _helpers().write_shim(tmp_path / "site")
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    # PYTHONPATH comes before site-packages, so the shim is the distribution found even where
    # step7bench is installed too.
    probe = "import importlib.metadata as m; d = m.distribution('step7bench'); print(d.version, d._path)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert done.stdout.split() == [version, str(info)]


def test_verdict_rows_show_infinite_and_missing_figures():
    helpers = _helpers()
    summary = {"claims": [
        {"name": "a 2x", "workload": "digits", "claimed": 2.0, "speedup": 1.5, "ci_low": 0.5, "ci_high": None,
         "infinite": {"ci_high": "inf"}, "verdict": "INCONCLUSIVE", "metric": "device_hours", "accounting": "all_in"},
        {"name": "b 5x", "workload": "grammar-lm", "claimed": 5.0, "median": None, "ci_low": None, "ci_high": None,
         "verdict": "NOT MEASURED"},
    ]}
    assert helpers.verdict_rows(summary) == [
        ("a 2x", "digits", "2.00x", "1.50x", "0.50x-inf", "INCONCLUSIVE"),
        ("b 5x", "grammar-lm", "5.00x", "n/a", "n/a-n/a", "NOT MEASURED"),
    ]
    table = helpers.format_table(helpers.VERDICT_COLUMNS, helpers.verdict_rows(summary)).splitlines()
    assert table[0].split() == ["claim", "workload", "claimed", "speedup", "95%", "interval", "verdict"]
    assert "device_hours, all_in" in helpers.verdict_title(summary)
