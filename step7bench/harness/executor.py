"""Running planned trials: in this process, or in N worker processes pinned to their own cores.

With `jobs` > 1 each worker is a fresh process (spawned: a forked torch is not safe) pinned to
its own share of the usable cores (CPU affinity) with its own torch thread count, that builds
the run's registry from the same plugin modules and each workload's data once, then runs the
trials it is handed. Results come back to this process, which alone writes the results store,
so the store's guarantees (a trial committed whole when it ends, resume, the folder lock) are the
same as with one job: a run killed at any moment loses the trials in flight, nothing recorded.
A worker whose parent dies exits (it checks once a second), so no orphan trains on.

On CUDA, one worker per visible device, each on its own device. Data-parallel trials (several
ranks under torchrun) run one at a time from this process: they use every core themselves.

A deadline (`Deadline`) stops new trials from starting once one could not finish in time: a
trial's expected wall time is the mean of its arm's finished trials on that workload, else of
the workload's, else its budget.
"""

from __future__ import annotations

import concurrent.futures as futures
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch

from step7bench.engine import EvalPoint, TrialResult
from step7bench.harness.matrix import TrialSpec
from step7bench.harness.parallel import ParallelTrialError, run_data_parallel, runs_data_parallel
from step7bench.harness.registry import Registry, load_registry
from step7bench.harness.trials import Workloads, failed_result, run_planned_trial

PARENT_CHECK_INTERVAL_S = 1.0


@dataclass
class Deadline:
    """Wall-clock time (time.monotonic) after which no trial may still be running."""

    at_s: float
    _seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    @classmethod
    def in_minutes(cls, minutes: float) -> Deadline:
        return cls(time.monotonic() + 60.0 * minutes)

    def expected_s(self, trial: TrialSpec) -> float:
        """The mean wall time of the arm's finished trials, else the workload's, else the budget."""
        workload = trial.workload.key
        own = self._seconds.get((workload, trial.arm.name))
        pooled = [s for (w, _), values in self._seconds.items() if w == workload for s in values]
        sample = own or pooled
        return sum(sample) / len(sample) if sample else trial.workload.budget.stop_seconds

    def allows(self, trial: TrialSpec) -> bool:
        return time.monotonic() + self.expected_s(trial) <= self.at_s

    def finished(self, trial: TrialSpec, seconds: float) -> None:
        self._seconds.setdefault((trial.workload.key, trial.arm.name), []).append(seconds)


@dataclass(frozen=True)
class Finished:
    """A trial's result and when it ran (wall time of the whole trial, evaluation included)."""

    trial: TrialSpec
    result: TrialResult
    started_at_s: float
    seconds: float
    concurrent: bool  # whether other trials ran beside it


Watcher = Callable[[TrialSpec, EvalPoint], None]


class Executor:
    """Runs trials and yields each as it finishes; `skipped` counts those a deadline held back."""

    def __init__(self, registry: Registry, device: torch.device, *, jobs: int = 1, threads: int | None = None,
                 nproc_per_node: int = 1, deadline: Deadline | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {jobs}")
        self.registry, self.device, self.jobs, self.threads = registry, device, jobs, threads
        self.nproc_per_node, self.deadline = nproc_per_node, deadline
        self.skipped: list[TrialSpec] = []

    def run(self, trials: Sequence[TrialSpec], started: Callable[[TrialSpec], None] = lambda trial: None,
            watch: Watcher | None = None) -> Iterator[Finished]:
        """Every trial the deadline allows; data-parallel ones first, one at a time, then the rest
        in this process (`jobs` 1) or in the workers."""
        ranked = [t for t in trials if runs_data_parallel(t, self.nproc_per_node)]
        local = [t for t in trials if not runs_data_parallel(t, self.nproc_per_node)]
        for trial in ranked:
            if self._allowed(trial):
                started(trial)
                yield self._timed(trial, lambda t=trial: self._data_parallel(t), concurrent=False)
        if self.jobs == 1:
            yield from self._in_process(local, started, watch)
        else:
            yield from self._pool(local, started)

    def _in_process(self, trials: Sequence[TrialSpec], started: Callable[[TrialSpec], None],
                    watch: Watcher | None) -> Iterator[Finished]:
        workloads = Workloads(self.registry)
        threads_before = torch.get_num_threads()
        torch.set_num_threads(self.threads or threads_before)
        try:
            for trial in trials:
                if self._allowed(trial):
                    started(trial)
                    on_eval = (lambda point, t=trial: watch(t, point)) if watch else None
                    yield self._timed(trial, lambda t=trial: run_planned_trial(t, workloads, self.device, on_eval),
                                      concurrent=False)
        finally:
            torch.set_num_threads(threads_before)

    def _allowed(self, trial: TrialSpec) -> bool:
        if self.deadline is None or self.deadline.allows(trial):
            return True
        self.skipped.append(trial)
        return False

    def _timed(self, trial: TrialSpec, run: Callable[[], TrialResult], concurrent: bool) -> Finished:
        start = time.monotonic()
        result = run()
        return self._done(trial, result, start, concurrent)

    def _done(self, trial: TrialSpec, result: TrialResult, start: float, concurrent: bool) -> Finished:
        seconds = time.monotonic() - start
        if self.deadline is not None:
            self.deadline.finished(trial, seconds)
        return Finished(trial, result, start, seconds, concurrent)

    def _data_parallel(self, trial: TrialSpec) -> TrialResult:
        try:
            return run_data_parallel(trial, self.device, self.nproc_per_node, self.registry.plugin_modules)
        except ParallelTrialError as exc:
            return failed_result(trial, self.device, exc)

    def _pool(self, trials: Sequence[TrialSpec], started: Callable[[TrialSpec], None]) -> Iterator[Finished]:
        """Keep every worker busy: at most `jobs` trials in flight, refilled as each finishes. A
        worker that dies (out of memory, killed) fails the trials in flight and breaks its pool;
        the rest of the queue goes on in a fresh one."""
        queue = list(trials)
        while queue:
            yield from self._until_broken(queue, started)

    def _until_broken(self, queue: list[TrialSpec], started: Callable[[TrialSpec], None]) -> Iterator[Finished]:
        """Run trials from `queue` (taken off it as they start) in one pool until the queue is
        empty or the pool breaks."""
        context = multiprocessing.get_context("spawn")
        slots = context.Queue()
        for slot in range(self.jobs):
            slots.put(slot)
        with futures.ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=context, initializer=_init_worker,
                initargs=(slots, self.jobs, self.threads, str(self.device), self.registry.plugin_modules,
                          os.getpid())) as pool:
            running: dict[futures.Future, _InFlight] = {}
            broken = False
            while (queue and not broken) or running:
                while queue and not broken and len(running) < self.jobs:
                    if not self._allowed(queue[0]):
                        queue.pop(0)
                        continue
                    try:
                        future = pool.submit(_run_in_worker, queue[0])
                    except futures.BrokenExecutor:
                        broken = True
                        break
                    trial = queue.pop(0)
                    started(trial)
                    running[future] = _InFlight(trial, time.monotonic())
                    if len(running) > 1:
                        for flight in running.values():
                            flight.beside_others = True
                if not running:
                    break
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    flight = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # the worker died: this trial fails, and the pool is broken
                        broken = broken or isinstance(exc, futures.BrokenExecutor)
                        result = failed_result(flight.trial, self.device, exc)
                    yield self._done(flight.trial, result, flight.start_s, flight.beside_others)


@dataclass
class _InFlight:
    trial: TrialSpec
    start_s: float
    beside_others: bool = False  # another trial ran at some moment of this one's run


# -- worker processes ------------------------------------------------------------------------------

_WORKER: dict[str, object] = {}


def core_groups(cores: Sequence[int], jobs: int) -> list[list[int]]:
    """The usable cores split into `jobs` groups of consecutive cores, sizes differing by at most
    one; with fewer cores than jobs, workers share cores round-robin."""
    cores = sorted(cores)
    if len(cores) < jobs:
        return [[cores[index % len(cores)]] for index in range(jobs)]
    size, extra = divmod(len(cores), jobs)
    groups, start = [], 0
    for index in range(jobs):
        end = start + size + (index < extra)
        groups.append(cores[start:end])
        start = end
    return groups


def _init_worker(slots: multiprocessing.Queue, jobs: int, threads: int | None, device: str,
                 plugin_modules: tuple[str, ...], parent_pid: int) -> None:
    slot = slots.get()
    torch_device = torch.device(device)
    if torch_device.type == "cuda":
        torch_device = torch.device("cuda", slot % max(torch.cuda.device_count(), 1))
    cores = core_groups(sorted(os.sched_getaffinity(0)), jobs)[slot]
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(threads or len(cores))
    _WORKER.update(device=torch_device, workloads=Workloads(load_registry(plugin_modules)))
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_INTERVAL_S)
    os._exit(1)


def _run_in_worker(trial: TrialSpec) -> TrialResult:
    return run_planned_trial(trial, _WORKER["workloads"], _WORKER["device"])
