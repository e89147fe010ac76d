"""The results store: one SQLite database per results folder, `<folder>/results.sqlite`.

Tables: `runs` (provenance of each invocation), `trials` (one row per finished trial: outcome
and every ledger total) and `curves` (each validation check with the ledger then), plus
`meta` (the schema version). The database runs in write-ahead-log mode; a trial's row and
its curve are written in one transaction when the trial ends, so a run killed at any moment
leaves whole trials or none. With WAL, `synchronous=NORMAL` loses no committed transaction
when the process dies (kill -9); only a power cut may drop the last few, never corrupting
the file (SQLite, "Write-Ahead Logging", sqlite.org/wal.html).

Failed trials are recorded, and retried by the next run of the same command: a later
success replaces the failed row.

Each trial row carries what the analysis needs to know about it as data: its arm's kind, its
techniques (a JSON list), the technique a random control stands for (`control_of`) and the
baseline seed it is paired with (`pair_seed`), so no later layer consults a registry or decodes
a name or a seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from step7bench.engine import STOP_REASONS, Ledger, TrialResult
from step7bench.errors import UserError
from step7bench.harness.matrix import TrialSpec

SCHEMA_VERSION = 2  # 2: techniques as a JSON list, pair_seed, control_of
DATABASE_NAME = "results.sqlite"
STATUSES = ("reached", "missed", "diverged", "failed")

_SQL_TYPES = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}


def ledger_columns() -> dict[str, str]:
    """Every ledger field and the two derived totals, with their SQL types."""
    columns = {f.name: _SQL_TYPES[str(f.type)] for f in dataclasses.fields(Ledger) if not f.name.startswith("_")}
    return {**columns, "wall_s": "REAL", "flops_total": "INTEGER"}


RUN_COLUMNS = {
    "run_id": "TEXT PRIMARY KEY", "started_at": "TEXT", "git_commit": "TEXT", "git_dirty": "INTEGER",
    "torch_version": "TEXT", "device_fingerprint": "TEXT", "hardware_class": "TEXT", "suite_name": "TEXT",
    "suite_hash": "TEXT", "command_line": "TEXT", "python_version": "TEXT", "shard": "TEXT", "jobs": "INTEGER",
    "calibration": "TEXT", "overrides": "TEXT", "past_deadline": "TEXT", "adaptive": "TEXT",
    "planned": "TEXT",  # JSON list of the trial ids in the run's plan, run now or found done
}
TRIAL_COLUMNS = {
    "trial_id": "TEXT PRIMARY KEY", "run_id": "TEXT NOT NULL", "workload": "TEXT NOT NULL",
    "preset": "TEXT NOT NULL", "arm": "TEXT NOT NULL", "arm_kind": "TEXT NOT NULL", "techniques": "TEXT NOT NULL",
    "control_of": "TEXT", "variant": "TEXT", "seed": "INTEGER NOT NULL", "pair_seed": "INTEGER NOT NULL", "status": f"TEXT NOT NULL CHECK (status IN {STATUSES!r})",
    "steps_to_target": "INTEGER", "target_resolution_steps": "INTEGER", "target_val_loss": "REAL", "best_val_loss": "REAL", "error": "TEXT",
    "device": "TEXT", "hardware_class": "TEXT", "technique_stats": "TEXT", "config": "TEXT",
    "started_at": "TEXT", "finished_at": "TEXT",
    "stop_reason": f"TEXT CHECK (stop_reason IN {STOP_REASONS!r})", "concurrent": "INTEGER",
    "torch_threads": "INTEGER",  # CPU threads torch trained with (per rank in data parallel)
}
CURVE_COLUMNS = {"trial_id": "TEXT NOT NULL", "step": "INTEGER NOT NULL", "val_loss": "REAL",
                 "train_loss": "REAL"}


def _tables() -> dict[str, dict[str, str]]:
    return {"runs": RUN_COLUMNS, "trials": {**TRIAL_COLUMNS, **ledger_columns()},
            "curves": {**CURVE_COLUMNS, **ledger_columns()}}


_TABLE_SUFFIX = {"curves": ", PRIMARY KEY (trial_id, step)"}


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """What the harness knows of a trial beyond its result."""

    trial_id: str
    run_id: str
    arm: str
    arm_kind: str
    hardware_class: str
    config: dict[str, Any]
    started_at: str
    finished_at: str
    pair_seed: int
    control_of: str | None = None
    concurrent: bool = False  # other trials ran beside it (run --jobs N), sharing the machine
    variant: str = "tuned"  # or "as_specified": the settings the seed document states

    @classmethod
    def of(cls, trial: TrialSpec, run_id: str, hardware_class: str, started_at: str, finished_at: str,
           concurrent: bool = False) -> TrialRecord:
        return cls(trial.trial_id, run_id, trial.arm.name, trial.arm.kind, hardware_class, trial.identity(),
                   started_at, finished_at, trial.paired_with, trial.arm.control_of, concurrent, trial.arm.variant)


class ResultsStore:
    """Open (or create, unless `create=False`) the store of a results folder."""

    def __init__(self, folder: Path | str, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / DATABASE_NAME
        if not self.path.is_file():
            if not create:
                raise UserError(f"no results in {self.folder} ({DATABASE_NAME} not found)")
            self.folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise UserError(f"{self.path} is not a results database: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema ---------------------------------------------------------------------------------
    def _migrate(self) -> None:
        """Create the tables, or add the columns a newer ledger has to an older store."""
        with self._transaction():
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise UserError(f"{self.path} has schema version {row[0]}, newer than this step7bench's "
                                f"{SCHEMA_VERSION}: upgrade step7bench")
            if row is not None and int(row[0]) < SCHEMA_VERSION:
                raise UserError(f"{self.path} has schema version {row[0]}, written by an older step7bench whose "
                                "trials this one cannot pair: run the suite into a new results folder")
            for table, columns in _tables().items():
                body = ", ".join(f"{name} {kind}" for name, kind in columns.items())
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body}{_TABLE_SUFFIX.get(table, '')})")
                present = self._columns(table)
                for name, kind in columns.items():
                    if name not in present:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.split()[0]}")
            self._db.execute("CREATE INDEX IF NOT EXISTS trials_by_run ON trials (run_id)")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _columns(self, table: str, schema: str = "main") -> list[str]:
        return [row[1] for row in self._db.execute(f"PRAGMA {schema}.table_info({table})")]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock at BEGIN, so a transaction never fails half-way on
        # a lock another connection holds.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writing ----------------------------------------------------------------------------
    def add_run(self, provenance: dict[str, Any]) -> str:
        """Record one invocation; `provenance` has the RUN_COLUMNS (device_fingerprint a dict)."""
        row = {**provenance, "device_fingerprint": json.dumps(provenance["device_fingerprint"], sort_keys=True),
               "calibration": json.dumps(provenance.get("calibration") or {}, sort_keys=True, default=str),
               "overrides": json.dumps(list(provenance.get("overrides") or [])),
               "adaptive": json.dumps(provenance.get("adaptive") or {}),
               "planned": json.dumps(list(provenance.get("planned") or []))}
        unknown = set(row) - set(RUN_COLUMNS)
        if unknown:
            raise ValueError(f"provenance has unknown keys: {sorted(unknown)}")
        with self._transaction():
            self._insert("runs", row)
        return provenance["run_id"]

    def update_run(self, run_id: str, **values: Any) -> None:
        """Set JSON columns of a run after it started: `past_deadline` (the trials a deadline kept from
        starting: a partial matrix), `adaptive` (an adaptive design's decisions so far)."""
        unknown = set(values) - {"past_deadline", "adaptive"}
        if unknown:
            raise ValueError(f"runs cannot be updated in {sorted(unknown)}")
        with self._transaction():
            for column, value in values.items():
                self._db.execute(f"UPDATE runs SET {column} = ? WHERE run_id = ?", (json.dumps(value), run_id))

    def add_trial(self, record: TrialRecord, result: TrialResult) -> None:
        """The trial's row and its curve, in one transaction (replacing a failed attempt)."""
        trial = {
            "trial_id": record.trial_id, "run_id": record.run_id, "workload": result.workload,
            "preset": result.preset, "arm": record.arm, "arm_kind": record.arm_kind,
            "techniques": json.dumps(list(result.techniques)), "control_of": record.control_of,
            "variant": record.variant,
            "seed": result.seed, "pair_seed": record.pair_seed, "status": result.status,
            "steps_to_target": result.steps_to_target, "target_resolution_steps": result.target_resolution_steps,
            "target_val_loss": result.target_val_loss,
            "best_val_loss": result.best_val_loss, "error": result.error, "device": result.device,
            "hardware_class": record.hardware_class,
            "technique_stats": json.dumps(result.technique_stats, sort_keys=True, default=_json_default),
            "config": json.dumps(record.config, sort_keys=True), "started_at": record.started_at,
            "finished_at": record.finished_at, "stop_reason": result.stop_reason, "concurrent": int(record.concurrent),
            "torch_threads": result.torch_threads, **_ledger_row(result.ledger.snapshot()),
        }
        curve = [{"trial_id": record.trial_id, "step": point.step, "val_loss": point.val_loss,
                  "train_loss": point.train_loss, **_ledger_row(point.ledger)} for point in result.curve]
        with self._transaction():
            self._db.execute("DELETE FROM curves WHERE trial_id = ?", (record.trial_id,))
            self._db.execute("DELETE FROM trials WHERE trial_id = ?", (record.trial_id,))
            self._insert("trials", trial)
            for point in curve:
                self._insert("curves", point)

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        names = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._db.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))

    # -- reading ----------------------------------------------------------------------------
    def done_trial_ids(self) -> set[str]:
        """Trials a rerun skips: every recorded trial except the failed ones."""
        return {row[0] for row in self._db.execute("SELECT trial_id FROM trials WHERE status != 'failed'")}

    def trials_frame(self) -> pd.DataFrame:
        """One row per finished trial (see the module docstring for the columns).

        `steps_to_target` is NaN where the target was not reached, a float column even when
        no trial reached it; `best_val_loss` is inf for a trial with no finite validation loss;
        `techniques` holds tuples of technique names.
        """
        frame = pd.read_sql_query("SELECT * FROM trials ORDER BY rowid", self._db)
        frame["steps_to_target"] = pd.to_numeric(frame["steps_to_target"]).astype(float)
        frame["techniques"] = frame["techniques"].map(lambda text: tuple(json.loads(text)))
        return frame

    def curves_frame(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM curves ORDER BY trial_id, step", self._db)

    def runs_frame(self) -> pd.DataFrame:
        frame = pd.read_sql_query("SELECT * FROM runs ORDER BY started_at, run_id", self._db)
        frame["git_dirty"] = frame["git_dirty"].map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
        return frame

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok' when sound."""
        return "; ".join(row[0] for row in self._db.execute("PRAGMA integrity_check"))

    # -- merging ----------------------------------------------------------------------------
    def merge_from(self, source: ResultsStore) -> tuple[int, int]:
        """Copy in the runs and trials of `source` that this store lacks.

        A trial already here is kept, unless it failed here and did not fail there.
        Returns (trials added, trials already present).
        """
        if source.path.resolve() == self.path.resolve():
            raise UserError(f"cannot merge {source.folder} into itself")
        self._db.execute("ATTACH DATABASE ? AS source", (str(source.path),))
        try:
            with self._transaction():
                return self._merge_attached()
        finally:
            self._db.execute("DETACH DATABASE source")

    def _merge_attached(self) -> tuple[int, int]:
        db = self._db
        db.execute(f"INSERT OR IGNORE INTO runs ({self._shared('runs')}) "
                   f"SELECT {self._shared('runs')} FROM source.runs")
        db.execute("DROP TABLE IF EXISTS temp.taken")
        db.execute("CREATE TEMP TABLE taken AS SELECT s.trial_id FROM source.trials AS s "
                   "LEFT JOIN main.trials AS m ON m.trial_id = s.trial_id "
                   "WHERE m.trial_id IS NULL OR (m.status = 'failed' AND s.status != 'failed')")
        added = db.execute("SELECT COUNT(*) FROM temp.taken").fetchone()[0]
        offered = db.execute("SELECT COUNT(*) FROM source.trials").fetchone()[0]
        for table in ("curves", "trials"):
            db.execute(f"DELETE FROM main.{table} WHERE trial_id IN (SELECT trial_id FROM temp.taken)")
        for table in ("trials", "curves"):
            columns = self._shared(table)
            db.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM source.{table} "
                       "WHERE trial_id IN (SELECT trial_id FROM temp.taken)")
        db.execute("DROP TABLE temp.taken")
        return added, offered - added

    def _shared(self, table: str) -> str:
        """Columns both stores have (a source written before a ledger field existed lacks it)."""
        theirs = set(self._columns(table, "source"))
        return ", ".join(name for name in self._columns(table) if name in theirs)


def _ledger_row(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {name: snapshot.get(name) for name in ledger_columns()}


def _json_default(value: Any) -> Any:
    """Technique stats may hold numpy or torch scalars."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"technique stats value of type {type(value).__name__} is not JSON-serialisable")
