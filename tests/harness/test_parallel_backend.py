"""The CUDA path of a data-parallel rank (step7bench/harness/parallel.py) without a GPU: which
process-group backend a rank joins and which device it trains on, with torch.distributed patched.

It tests harness code; it lives beside the other CUDA-path fakes of tests/measure because
tests/harness was being changed by others when it was written (move it to tests/harness freely).
"""

from __future__ import annotations

import pickle
import types

import pytest
import torch

from step7bench.harness import parallel


class FakeGroup:
    """torch.distributed as one rank sees it: records what the rank asked of it."""

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.calls: list[tuple] = []

    def init_process_group(self, backend: str, **kwargs) -> None:
        self.calls.append(("init", backend))

    def destroy_process_group(self) -> None:
        self.calls.append(("destroy",))

    def get_rank(self) -> int:
        return self.rank


@pytest.fixture
def rank(monkeypatch, tmp_path):
    """Runs `_rank_main` as local rank 1 of a job on `device`; the trial itself is a stand-in."""
    group = FakeGroup(rank=0)
    ran_on: list[torch.device] = []
    monkeypatch.setattr(parallel.dist, "init_process_group", group.init_process_group)
    monkeypatch.setattr(parallel.dist, "destroy_process_group", group.destroy_process_group)
    monkeypatch.setattr(parallel.dist, "get_rank", group.get_rank)
    monkeypatch.setattr(parallel, "load_registry", lambda modules: None)
    monkeypatch.setattr(parallel, "Workloads", lambda registry: None)
    monkeypatch.setattr(parallel, "_combine_ranks", lambda result: result)
    reached = types.SimpleNamespace(status="reached")
    monkeypatch.setattr(parallel, "run_planned_trial",
                        lambda trial, workloads, device: ran_on.append(device) or reached)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: group.calls.append(("set_device", device)))
    monkeypatch.setenv("LOCAL_RANK", "1")
    threads = torch.get_num_threads()

    def run(device: str) -> tuple[int, FakeGroup, list[torch.device]]:
        job_path, result_path = tmp_path / "job.pkl", tmp_path / "result.pkl"
        job_path.write_bytes(pickle.dumps(parallel._Job("trial", (), device, threads)))
        code = parallel._rank_main(job_path, result_path)
        assert pickle.loads(result_path.read_bytes()).status == "reached"
        return code, group, ran_on

    yield run
    torch.set_num_threads(threads)


def test_a_gpu_rank_joins_nccl_and_trains_on_its_local_rank_gpu(rank):
    code, group, ran_on = rank("cuda")
    assert code == 0
    assert ("init", "nccl") in group.calls and group.calls[-1] == ("destroy",)
    assert ran_on == [torch.device("cuda", 1)]


def test_a_cpu_rank_joins_gloo_and_trains_on_the_cpu(rank):
    code, group, ran_on = rank("cpu")
    assert code == 0
    assert ("init", "gloo") in group.calls
    assert ran_on == [torch.device("cpu")]
    assert not [call for call in group.calls if call[0] == "set_device"]


def test_a_gpu_rank_makes_its_gpu_current_before_joining_nccl(rank):
    # NCCL's all_gather_object puts every rank's objects on the current device: without this,
    # every rank would use cuda:0.
    _, group, _ = rank("cuda")
    assert group.calls.index(("set_device", torch.device("cuda", 1))) < group.calls.index(("init", "nccl"))
