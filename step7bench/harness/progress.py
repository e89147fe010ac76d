"""Progress of a suite run: a live display on a terminal, one plain line per trial elsewhere.

On a terminal (rich): the suite's bar with elapsed time and ETA, and a line for every trial in
flight (one per worker with `--jobs N`), its arm and seed, and its latest validation loss against
the target where it runs in this process. Off a terminal (CI logs, files): one line per finished
trial, nothing live.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from step7bench.engine import EvalPoint, TrialResult
from step7bench.harness.matrix import TrialSpec


def outcome_text(result: TrialResult) -> str:
    if result.status == "reached":
        return f"reached at step {result.steps_to_target}"
    if result.status == "failed":
        last_line = (result.error or "").strip().splitlines()[-1:] or ["unknown error"]
        return f"FAILED: {last_line[0]}"
    return f"{result.status} (best val loss {result.best_val_loss:.4f})"


class PlainProgress:
    """One line per finished trial: `[k/n] workload/preset arm seed s: outcome (cost s)`."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._total = 0
        self._finished = 0

    def start(self, total: int, already_done: int) -> None:
        self._total = total
        skipped = f"; {already_done} already in the results, skipped" if already_done else ""
        print(f"{total} trials to run{skipped}", file=self.stream, flush=True)

    def trial_started(self, spec: TrialSpec) -> None:
        """Nothing live off a terminal."""

    def evaluated(self, spec: TrialSpec, point: EvalPoint) -> None:
        """Nothing live off a terminal."""

    def trial_finished(self, spec: TrialSpec, result: TrialResult) -> None:
        self._finished += 1
        print(f"[{self._finished}/{self._total}] {spec.label()}: {outcome_text(result)} "
              f"({result.ledger.wall_s:.1f} s)", file=self.stream, flush=True)

    def close(self) -> None:
        """Lines are flushed as they are written."""


class LiveProgress:
    """rich's live display: the suite bar and a line per trial in flight."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
        self._suite = self._progress.add_task("suite", total=0, visible=False)
        self._in_flight: dict[str, TaskID] = {}

    def start(self, total: int, already_done: int) -> None:
        if already_done:
            self.console.print(f"{already_done} trials already in the results, skipped")
        self._progress.update(self._suite, total=total, visible=True)
        self._progress.start()

    def trial_started(self, spec: TrialSpec) -> None:
        self._in_flight[spec.trial_id] = self._progress.add_task(f"  {spec.label()}: running", total=None)

    def evaluated(self, spec: TrialSpec, point: EvalPoint) -> None:
        self._progress.update(self._in_flight[spec.trial_id], description=(
            f"  {spec.label()}: step {point.step}, val loss {point.val_loss:.4f} "
            f"-> target {spec.workload.target_val_loss:.4f}"))

    def trial_finished(self, spec: TrialSpec, result: TrialResult) -> None:
        self._progress.remove_task(self._in_flight.pop(spec.trial_id))
        self._progress.advance(self._suite)
        if result.status == "failed":
            self._progress.console.print(f"[red]{spec.label()}: {outcome_text(result)}[/red]")

    def close(self) -> None:
        for task in self._in_flight.values():
            self._progress.remove_task(task)
        self._in_flight.clear()
        self._progress.stop()


def make_progress(stream: TextIO | None = None) -> PlainProgress | LiveProgress:
    """Live on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    console = Console(file=stream)
    return LiveProgress(console) if console.is_terminal else PlainProgress(stream)
