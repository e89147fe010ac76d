"""`step7bench export`: the trials or learning curves of a results folder as CSV, Parquet or JSON."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from step7bench.cli.arguments import add_verb
from step7bench.cli.choices import EXPORT_DESTINATIONS, EXPORT_FORMATS, EXPORT_TABLES
from step7bench.cli.input_errors import check_results_database
from step7bench.errors import UserError

DESCRIPTION = """
Write a results folder's trials (one row per trial: identity, outcome, every ledger total,
provenance) or learning curves (one row per trial and validation check, with the trial's
workload, arm, seed and techniques, and every ledger column then) as CSV, Parquet or JSON.
JSON is standard (no NaN or Infinity tokens): a missing or infinite number is null, and each
record's `infinite` object names the columns that were infinite ("inf" or "-inf").

`--to mlflow` logs each trial as an MLflow run instead (needs `pip install 'step7bench[mlflow]'`):
params (workload, arm, seed, techniques, settings), its costs as metrics and its validation curve
as a step metric, under one parent run per results folder that holds the report's index.html and
summary.json. Exporting again adds only the trials not logged yet.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "export", summary="write the trials or learning curves as csv, parquet or json",
                      description=DESCRIPTION,
                      examples=["step7bench export --results reports/quick",
                                "step7bench export --results reports/quick --what curves --format parquet",
                                "step7bench export --results reports/quick --to mlflow --tracking-uri file:./mlruns"])
    parser.add_argument("--results", type=Path, required=True, metavar="DIR", help="results folder of a run")
    parser.add_argument("--to", choices=EXPORT_DESTINATIONS, default="file",
                        help="file (the default) or mlflow (one MLflow run per trial)")
    parser.add_argument("--what", choices=EXPORT_TABLES,
                        help="to a file: trials (one row per trial, the default) or curves (one row per validation "
                             "check)")
    parser.add_argument("--format", choices=EXPORT_FORMATS, help="to a file: its format (default csv)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="to a file: the file to write (default: RESULTS/WHAT.FORMAT, e.g. "
                             "reports/quick/trials.csv)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="to mlflow: the tracking server or store, e.g. file:./mlruns or http://host:5000 "
                             "(default: MLflow's own, MLFLOW_TRACKING_URI)")
    parser.add_argument("--experiment", metavar="NAME",
                        help="to mlflow: the experiment (default: step7bench/<suite name>)")
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from step7bench.harness.store import ResultsStore

    _check_destination_flags(args)
    check_results_database(args.results)
    with ResultsStore(args.results, create=False) as store:
        return _to_mlflow(args, store) if args.to == "mlflow" else _to_file(args, store)


def _check_destination_flags(args: argparse.Namespace) -> None:
    """A flag of the other destination is a mistake, not something to ignore silently."""
    flags = {"file": ("what", "format", "output"), "mlflow": ("tracking_uri", "experiment")}
    for destination, names in flags.items():
        given = [name for name in names if getattr(args, name) is not None]
        if destination != args.to and given:
            flag = "--" + given[0].replace("_", "-")
            raise UserError(f"{flag} applies to --to {destination}, not --to {args.to}")


def _to_file(args: argparse.Namespace, store) -> int:
    from step7bench.harness.export import export_table

    what, fmt = args.what or "trials", args.format or "csv"
    args.output = output = args.output or args.results / f"{what}.{fmt}"  # named in a path error
    rows = export_table(store, what, output, fmt)
    print(f"{rows} {what} rows written to {output}")
    return 0


ALLOW_FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"


def _to_mlflow(args: argparse.Namespace, store) -> int:
    try:
        import mlflow  # here: a missing MLflow is one line, before anything is logged
    except ModuleNotFoundError as exc:
        if exc.name != "mlflow":
            raise
        raise UserError("--to mlflow needs MLflow: pip install 'step7bench[mlflow]'") from None
    from step7bench.harness.export import export_to_mlflow

    with _file_store_allowed(args.tracking_uri):
        _check_tracking_uri(mlflow, args.tracking_uri)
        done = export_to_mlflow(store, args.tracking_uri, args.experiment)
    print(f"{done.logged} trials logged to MLflow experiment {done.experiment_id} (parent run "
          f"{done.parent_run_id}); {done.already_logged} were logged already")
    return 0


@contextlib.contextmanager
def _file_store_allowed(tracking_uri: str | None) -> Iterator[None]:
    """MLflow 3 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is set, to steer new servers
    to a database; but the mlflow-skinny client has no database backend, so a local store is a
    file store. A `file:` URI the user names on the command line is that choice, made explicitly:
    allow it for this export (an explicit setting of the variable is left as it is)."""
    if not (tracking_uri or "").startswith("file:") or ALLOW_FILE_STORE_ENV in os.environ:
        yield
        return
    os.environ[ALLOW_FILE_STORE_ENV] = "true"
    try:
        yield
    finally:
        del os.environ[ALLOW_FILE_STORE_ENV]


def _check_tracking_uri(mlflow, tracking_uri: str | None) -> None:
    """Reach the tracking store once before logging: an unusable --tracking-uri (a scheme MLflow
    does not know, a store it refuses) is the user's input, one line. Errors after this point
    are not converted: they may be step7bench's."""
    try:
        mlflow.MlflowClient(tracking_uri).search_experiments(max_results=1)
    except mlflow.exceptions.MlflowException as exc:
        raise UserError(f"--tracking-uri {tracking_uri or '(MLflow default)'}: {' '.join(str(exc).split())}") from None
