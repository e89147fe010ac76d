"""Data-parallel trials: one trial run by N ranks under torchrun, its result back in the parent.

The parent pickles the trial (and the plugin modules its registry imported) to a temporary
folder and starts
``python -m torch.distributed.run --standalone --nproc_per_node=N -m step7bench.harness.parallel``;
every rank rebuilds the same registry, joins the process group (gloo on the CPU, NCCL on GPUs)
and runs the trial through `harness.trials`, as the runner does in its own process; the arm's
data-parallel technique prepares the model and optimizer for the process group. The ranks' ledgers are
combined by `combine_rank_ledgers` (device-seconds = wall x world size, energy summed, examples
counted once), at the end and at every validation check, and rank 0 pickles that result for the
parent, which stores it like any other trial.

A rank whose trial fails exits non-zero, so torchrun stops the others (which would otherwise wait
in a collective) and the parent records a failed trial with the ranks' error output.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist

from step7bench.engine import EvalPoint, Ledger, TrialResult
from step7bench.harness.matrix import TrialSpec
from step7bench.harness.registry import load_registry
from step7bench.harness.trials import Workloads, run_planned_trial
from step7bench.techniques.distributed_optimizations import combine_rank_ledgers, gather_rank_ledgers

# The error text kept from a failed launch: the end of the ranks' output, where the traceback is.
ERROR_TAIL_CHARS = 4000


class ParallelTrialError(RuntimeError):
    """The ranks of a data-parallel trial did not hand back a result; the message says why."""


def check_nproc_per_node(nproc_per_node: int) -> None:
    if not isinstance(nproc_per_node, int) or nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be an integer >= 1, got {nproc_per_node!r}")


def runs_data_parallel(trial: TrialSpec, nproc_per_node: int) -> bool:
    """Whether `trial` runs under torchrun: several processes asked for and an arm with a
    data-parallel technique (every other trial runs in the harness's process)."""
    check_nproc_per_node(nproc_per_node)
    return nproc_per_node > 1 and trial.data_parallel


def threads_per_rank(nproc_per_node: int, cores: int | None = None) -> int:
    """CPU threads for each rank: the cores shared out, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // nproc_per_node)


@dataclass(frozen=True)
class _Job:
    trial: TrialSpec
    plugin_modules: tuple[str, ...]
    device: str
    threads: int


def run_data_parallel(trial: TrialSpec, device: torch.device, nproc_per_node: int, plugin_modules: tuple[str, ...] = (),
                      timeout_s: float | None = None) -> TrialResult:
    """Run `trial` on `nproc_per_node` ranks under torchrun and return rank 0's result with the
    ranks' ledgers combined; ParallelTrialError (with the ranks' output) if none came back.
    `plugin_modules` are the plugins the ranks import to rebuild the run's registry."""
    with tempfile.TemporaryDirectory(prefix="step7bench-ranks-") as folder:
        job_path, result_path = Path(folder) / "job.pkl", Path(folder) / "result.pkl"
        job = _Job(trial, plugin_modules, str(device), threads_per_rank(nproc_per_node))
        job_path.write_bytes(pickle.dumps(job))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={nproc_per_node}", "-m", __name__, str(job_path), str(result_path)]
        # torchrun sets OMP_NUM_THREADS=1 itself only when unset, with a warning; set it to the share.
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_rank(nproc_per_node))}
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise ParallelTrialError(f"the {nproc_per_node} ranks ran past {timeout_s} s") from None
        if done.returncode != 0 or not result_path.exists():
            output = (done.stdout + done.stderr).strip()[-ERROR_TAIL_CHARS:]
            raise ParallelTrialError(f"torchrun exited with code {done.returncode}:\n{output}")
        result: TrialResult = pickle.loads(result_path.read_bytes())
        return result


def _rank_main(job_path: Path, result_path: Path) -> int:
    """One rank's trial; returns the process exit code."""
    job: _Job = pickle.loads(job_path.read_bytes())
    torch.set_num_threads(job.threads)
    device = _rank_device(job.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives use the current device: make it this rank's
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        result = run_planned_trial(job.trial, Workloads(load_registry(job.plugin_modules)), device)
        if result.status == "failed":
            print(f"rank {dist.get_rank()}: {result.error}", file=sys.stderr)
            return 1  # torchrun stops the other ranks, which would wait in a collective
        combined = _combine_ranks(result)
        if dist.get_rank() == 0:
            result_path.write_bytes(pickle.dumps(combined))
        return 0
    finally:
        dist.destroy_process_group()


def _rank_device(device: str) -> torch.device:
    """Each rank on a GPU takes the one of its local rank; CPU ranks share the CPU."""
    if device.startswith("cuda"):
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(device)


def _combine_ranks(result: TrialResult) -> TrialResult:
    """`result` with its final ledger and every validation check's ledger added up over the
    ranks (collectives: call on every rank). Validation losses are the same on every rank:
    DDP keeps the models identical and each rank evaluates the whole validation set."""
    curves: list[list[EvalPoint] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(curves, result.curve)
    curve = [replace(point, ledger=combine_rank_ledgers([Ledger.from_snapshot(c[index].ledger) for c in curves if c]).snapshot())
             for index, point in enumerate(result.curve)]
    return replace(result, curve=curve, ledger=gather_rank_ledgers(result.ledger))


if __name__ == "__main__":
    sys.exit(_rank_main(Path(sys.argv[1]), Path(sys.argv[2])))
