"""Peak memory: the process's peak RSS on CPU, torch's allocator peak on CUDA."""

from __future__ import annotations

import os

import pytest
import torch

from step7bench.measure import memory
from step7bench.measure.memory import peak_memory_bytes, reset_peak_memory


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def test_cpu_peak_is_the_process_peak_rss_in_bytes():
    peak = peak_memory_bytes("cpu")
    assert isinstance(peak, int)
    # Kilobytes taken for bytes would be 1024 times too small. The kernel's RSS counters are
    # synchronised lazily, so the peak may trail the resident size by a few pages.
    assert peak >= current_rss_bytes() // 2


def test_cpu_peak_grows_with_a_new_high_and_cannot_be_reset():
    before = peak_memory_bytes("cpu")
    margin = 32 * 2**20
    block = torch.ones(before - current_rss_bytes() + 2 * margin, dtype=torch.uint8)  # touched pages
    after = peak_memory_bytes("cpu")
    del block
    reset_peak_memory("cpu")
    assert after >= before + margin
    assert peak_memory_bytes("cpu") >= after


def test_cuda_reads_and_resets_the_allocator_peak_of_that_device(monkeypatch):
    calls = []
    monkeypatch.setattr(memory.torch.cuda, "max_memory_allocated", lambda d: calls.append(("max", d)) or 123)
    monkeypatch.setattr(memory.torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset", d)))
    assert peak_memory_bytes("cuda:1") == 123
    reset_peak_memory("cuda:1")
    assert calls == [("max", torch.device("cuda:1")), ("reset", torch.device("cuda:1"))]


def test_other_devices_are_refused():
    with pytest.raises(ValueError, match="device"):
        peak_memory_bytes("meta")


class FakeAllocator:
    """torch's caching allocator per device: bytes in use and the peak since the last reset."""

    def __init__(self) -> None:
        self.in_use: dict[int, int] = {}
        self.peak: dict[int, int] = {}

    def allocate(self, index: int, size: int) -> None:
        self.in_use[index] = self.in_use.get(index, 0) + size
        self.peak[index] = max(self.peak.get(index, 0), self.in_use[index])

    def free(self, index: int, size: int) -> None:
        self.in_use[index] -= size

    def max_memory_allocated(self, device: torch.device) -> int:
        return self.peak.get(self._index(device), 0)

    def reset_peak_memory_stats(self, device: torch.device) -> None:
        index = self._index(device)
        self.peak[index] = self.in_use.get(index, 0)

    @staticmethod
    def _index(device: torch.device) -> int:
        return 0 if device.index is None else device.index  # a bare "cuda" is the current device, 0 here


@pytest.fixture
def allocator(monkeypatch) -> FakeAllocator:
    fake = FakeAllocator()
    monkeypatch.setattr(memory.torch.cuda, "max_memory_allocated", fake.max_memory_allocated)
    monkeypatch.setattr(memory.torch.cuda, "reset_peak_memory_stats", fake.reset_peak_memory_stats)
    return fake


def test_cuda_peak_is_the_trials_own_after_a_reset(allocator):
    allocator.allocate(0, 5_000)  # an earlier trial's peak
    allocator.free(0, 4_000)
    reset_peak_memory("cuda:0")
    assert peak_memory_bytes("cuda:0") == 1_000  # what is still held counts from the reset on
    allocator.allocate(0, 2_000)
    allocator.free(0, 2_000)
    assert peak_memory_bytes("cuda:0") == 3_000


def test_cuda_peaks_are_per_device(allocator):
    allocator.allocate(1, 7_000)
    allocator.allocate(0, 2_000)
    assert peak_memory_bytes("cuda:1") == 7_000
    assert peak_memory_bytes("cuda") == 2_000  # the current device
    reset_peak_memory("cuda:1")
    assert peak_memory_bytes("cuda:0") == 2_000
