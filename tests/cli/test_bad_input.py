"""Every verb, fed wrong input: missing, unreadable, wrong-type and corrupt files and folders, bad
flags and values, files where folders belong and folders where files belong.

For each: exit code 2, stderr exactly one line starting with `error:`, no traceback anywhere, and
nothing already recorded lost (a results folder given keeps its rows; a corrupt results.sqlite
keeps its bytes). Nothing here trains: every case fails before a trial starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analysis"))

from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store  # noqa: E402
from step7bench.cli import main  # noqa: E402

TINY_SUITE = Path(__file__).resolve().parents[1] / "harness" / "suites" / "tiny.toml"
GARBAGE = b"this is not an SQLite database\x00\xff" * 64
IS_ROOT = os.geteuid() == 0  # root reads a chmod-000 file, so "unreadable" cannot be made


@dataclass(frozen=True)
class Case:
    """argv with {placeholders} for the fixture paths below; `needs_unreadable` cases are skipped as
    root."""

    argv: str
    needs_unreadable: bool = False


CASES = {
    # run
    "run: suite file missing": Case("run --suite {missing}.toml"),
    "run: suite is a folder": Case("run --suite {folder}"),
    "run: suite with a TOML syntax error": Case("run --suite {bad_toml}"),
    "run: suite unreadable": Case("run --suite {unreadable}", needs_unreadable=True),
    "run: unknown suite name": Case("run --suite quikc"),
    "run: no suite": Case("run"),
    "run: results is a file": Case("run --suite {suite} --results {file}"),
    "run: results.sqlite is garbage": Case("run --suite {suite} --results {garbage}"),
    "run: results.sqlite unreadable": Case("run --suite {suite} --results {unreadable_results}",
                                           needs_unreadable=True),
    "run: results.sqlite damaged": Case("run --suite {suite} --results {damaged}"),
    "run: trials table damaged": Case("run --suite {suite} --results {damaged_table}"),
    "run: shard 3/2": Case("run --suite {suite} --results {results} --shard 3/2"),
    "run: negative seeds": Case("run --suite {suite} --results {results} --seeds -1"),
    "run: seeds above the adaptive maximum": Case("run --suite quick --results {results} --adaptive --seeds 10"),
    "run: device tpu": Case("run --suite {suite} --results {results} --device tpu"),
    "run: zero ranks": Case("run --suite {suite} --results {results} --nproc-per-node 0"),
    "run: zero threads": Case("run --suite {suite} --results {results} --threads 0"),
    "run: unknown flag": Case("run --suite {suite} --results {results} --fast"),
    # calibrate
    "calibrate: suite missing": Case("calibrate --suite {missing}.toml"),
    "calibrate: suite with a TOML syntax error": Case("calibrate --suite {bad_toml}"),
    "calibrate: suite names no targets file": Case("calibrate --suite {no_targets_suite}"),
    "calibrate: margin 1.5": Case("calibrate --suite {suite} --margin 1.5"),
    "calibrate: zero seeds": Case("calibrate --suite {suite} --seeds 0"),
    "calibrate: device tpu": Case("calibrate --suite {suite} --device tpu"),
    # report
    "report: results missing": Case("report --results {missing}"),
    "report: results is a file": Case("report --results {file}"),
    "report: results.sqlite is garbage": Case("report --results {garbage}"),
    "report: results.sqlite damaged": Case("report --results {damaged}"),
    "report: trials table damaged": Case("report --results {damaged_table}"),
    "report: claims missing": Case("report --results {results} --claims {missing}.toml"),
    "report: claims with a wrong key": Case("report --results {results} --claims {claims_wrong_key}"),
    "report: claims with a TOML syntax error": Case("report --results {results} --claims {bad_toml}"),
    "report: claims is a folder": Case("report --results {results} --claims {folder}"),
    "report: confidence of 1": Case("report --results {results} --confidence 1"),
    # gate
    "gate: baseline missing": Case("gate --baseline {missing}.json --results {results}"),
    "gate: baseline is a list": Case("gate --baseline {baseline_list} --results {results}"),
    "gate: baseline is not JSON": Case("gate --baseline {file} --results {results}"),
    "gate: baseline is a folder": Case("gate --baseline {folder} --results {results}"),
    "gate: baseline unreadable": Case("gate --baseline {unreadable} --results {results}", needs_unreadable=True),
    "gate: results missing": Case("gate --baseline {baseline} --results {missing}"),
    "gate: results is a file": Case("gate --baseline {baseline} --results {file}"),
    "gate: results.sqlite is garbage": Case("gate --baseline {baseline} --results {garbage}"),
    "gate: results.sqlite damaged": Case("gate --baseline {baseline} --results {damaged}"),
    "gate: trials table damaged": Case("gate --baseline {baseline} --results {damaged_table}"),
    "gate: format yaml": Case("gate --baseline {baseline} --results {results} --format yaml"),
    "gate: negative tolerance": Case("gate --baseline {baseline} --results {results} --tolerance -1"),
    "gate: alpha 2": Case("gate --baseline {baseline} --results {results} --alpha 2"),
    "gate: factor below 1": Case("gate --baseline {baseline} --results {results} --factor 0.5"),
    # baseline
    "baseline: no action": Case("baseline"),
    "baseline save: results missing": Case("baseline save --results {missing} --out {tmp}/b.json"),
    "baseline save: results.sqlite is garbage": Case("baseline save --results {garbage} --out {tmp}/b.json"),
    "baseline save: results.sqlite damaged": Case("baseline save --results {damaged} --out {tmp}/b.json"),
    "baseline save: trials table damaged": Case("baseline save --results {damaged_table} --out {tmp}/b.json"),
    "baseline save: out is a folder": Case("baseline save --results {results} --out {folder}"),
    "baseline save: out under a file": Case("baseline save --results {results} --out {file}/b.json"),
    # compare
    "compare: A missing": Case("compare {missing} {results}"),
    "compare: B's results.sqlite is garbage": Case("compare {results} {garbage}"),
    "compare: A's results.sqlite damaged": Case("compare {damaged} {results}"),
    "compare: B's trials table damaged": Case("compare {results} {damaged_table}"),
    "compare: A is a file": Case("compare {file} {results}"),
    "compare: format yaml": Case("compare {results} {results} --format yaml"),
    "compare: one folder only": Case("compare {results}"),
    # export
    "export: results missing": Case("export --results {missing}"),
    "export: results is a file": Case("export --results {file}"),
    "export: results.sqlite is garbage": Case("export --results {garbage}"),
    "export: results.sqlite damaged": Case("export --results {damaged} --what curves"),
    "export: trials table damaged": Case("export --results {damaged_table}"),
    "export: format yaml": Case("export --results {results} --format yaml"),
    "export: what nothing": Case("export --results {results} --what nothing"),
    "export: output is a folder": Case("export --results {results} --output {folder}"),
    "export: output under a file": Case("export --results {results} --output {file}/trials.csv"),
    # merge
    "merge: source missing": Case("merge {missing} --into {tmp}/merged"),
    "merge: source is a file": Case("merge {file} --into {results}"),
    "merge: source's results.sqlite is garbage": Case("merge {garbage} --into {results}"),
    "merge: target's results.sqlite is garbage": Case("merge {results} --into {garbage}"),
    "merge: source's results.sqlite damaged": Case("merge {damaged} --into {results}"),
    "merge: target's results.sqlite damaged": Case("merge {results} --into {damaged}"),
    "merge: source's trials table damaged": Case("merge {damaged_table} --into {results}"),
    "merge: target is a file": Case("merge {results} --into {file}"),
    "merge: into itself": Case("merge {results} --into {results}"),
    "merge: no source": Case("merge --into {results}"),
    # list
    "list: unexpected argument": Case("list everything"),
    # trial
    "trial: unknown workload": Case("trial --workload imagenet"),
    "trial: unknown preset": Case("trial --workload digits --preset huge"),
    "trial: negative seed": Case("trial --workload digits --seed -1"),
    "trial: device tpu": Case("trial --workload digits --device tpu"),
    "trial: zero threads": Case("trial --workload digits --threads 0"),
    "trial: unknown technique": Case("trial --workload digits --technique curriculm"),
    "trial: technique for another task": Case("trial --workload digits --technique augmentation"),
    "trial: two techniques on one stage": Case("trial --workload digits --technique curriculum "
                                              "--technique curriculum_random"),
    "trial: technique twice": Case("trial --workload digits --technique curriculum --technique curriculum"),
    # the command itself
    "unknown verb": Case("fly"),
    "unknown top-level flag": Case("--fast"),
}


@pytest.fixture(scope="module")
def results_template(tmp_path_factory) -> Path:
    """A valid results folder (synthetic trials), copied afresh for each case."""
    trials = synthetic_trials([PlantedArm("fast", 1.5)], range(3))
    trials["trial_id"] = trials["trial_id"].astype(str)
    return write_store(tmp_path_factory.mktemp("template") / "results", trials, synthetic_curves(trials),
                       synthetic_runs())


@pytest.fixture
def paths(tmp_path, results_template) -> dict[str, Path]:
    """The files and folders the cases name, made afresh in `tmp_path`."""
    from step7bench.analysis.gate import BASELINE_KIND, BASELINE_SCHEMA_VERSION

    baseline = {"kind": BASELINE_KIND, "schema_version": BASELINE_SCHEMA_VERSION, "suite": {"name": "synthetic"},
                "hardware_class": "cpu-synthetic", "entries": []}
    claims = ('[[claim]]\nname = "x"\ntechniques = ["curriculum"]\nclaimed = 1.4\nkind = "technique"\n'
              'speedup = 2\n')  # `speedup` is no claim key
    unreadable_results = shutil.copytree(results_template, tmp_path / "unreadable-results")
    (unreadable_results / "results.sqlite").chmod(0)
    return {
        "tmp": tmp_path, "missing": tmp_path / "missing", "suite": TINY_SUITE,
        "results": shutil.copytree(results_template, tmp_path / "results"),
        "garbage": _written(tmp_path / "garbage" / "results.sqlite", GARBAGE).parent,
        "damaged": _with_pages_damaged(results_template, tmp_path / "damaged"),
        "damaged_table": _with_trials_table_damaged(results_template, tmp_path / "damaged-table"),
        "folder": _written(tmp_path / "folder" / "inside.txt", b"").parent,
        "file": _written(tmp_path / "file.txt", b"just text\n"),
        "bad_toml": _written(tmp_path / "bad.toml", b'name = "broken\nseeds = [\n'),
        "no_targets_suite": _written(tmp_path / "no-targets.toml",
                                     TINY_SUITE.read_bytes().replace(b'targets = "tiny-targets.toml"\n', b"")),
        "claims_wrong_key": _written(tmp_path / "claims.toml", claims.encode()),
        "baseline_list": _written(tmp_path / "list.json", b"[]\n"),
        "baseline": _written(tmp_path / "baseline.json", json.dumps(baseline).encode()),
        "unreadable": _written(tmp_path / "unreadable.toml", TINY_SUITE.read_bytes(), mode=0),
        "unreadable_results": unreadable_results,
    }


def _written(path: Path, data: bytes, mode: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        path.chmod(mode)
    return path


def _garbage_bytes(count: int) -> bytes:
    return (GARBAGE * (count // len(GARBAGE) + 1))[:count]


def _with_pages_damaged(template: Path, folder: Path) -> Path:
    """A copy of `template` whose every page but the first (the header and the schema) is garbage."""
    database = shutil.copytree(template, folder) / "results.sqlite"
    page_bytes = _page_bytes(database)
    data = database.read_bytes()
    database.write_bytes(data[:page_bytes] + _garbage_bytes(len(data) - page_bytes))
    return folder


def _with_trials_table_damaged(template: Path, folder: Path) -> Path:
    """A copy of `template` whose `trials` table's root page is garbage: the store opens (its
    schema and `meta` table are intact) and reading the trials fails as "malformed"."""
    database = shutil.copytree(template, folder) / "results.sqlite"
    page_bytes = _page_bytes(database)
    with contextlib.closing(sqlite3.connect(database)) as db:
        root_page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'trials'").fetchone()[0]
    data = bytearray(database.read_bytes())
    start = (root_page - 1) * page_bytes
    data[start:start + page_bytes] = _garbage_bytes(page_bytes)
    database.write_bytes(bytes(data))
    return folder


def _page_bytes(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute("PRAGMA page_size").fetchone()[0]


def _snapshot(paths: dict[str, Path]) -> dict[str, object]:
    """What must survive any bad input: the corrupt files' bytes, the valid store's rows."""
    with contextlib.closing(sqlite3.connect(paths["results"] / "results.sqlite")) as db:
        rows = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for table in ("runs", "trials",
                                                                                               "curves")}
        ids = sorted(row[0] for row in db.execute("SELECT trial_id FROM trials"))
    corrupt = {name: (paths[name] / "results.sqlite").read_bytes() for name in ("garbage", "damaged", "damaged_table")}
    return {**corrupt, "rows": rows, "trial_ids": ids}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_input_is_one_line_exit_2_and_loses_nothing(case, paths, capsys):
    if case.needs_unreadable and IS_ROOT:
        pytest.skip("root reads a chmod-000 file")
    before = _snapshot(paths)
    argv = [word.format(**paths) for word in case.argv.split()]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stderr: {err}"
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in out + err
    assert _snapshot(paths) == before
