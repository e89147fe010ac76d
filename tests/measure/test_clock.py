"""The device-synced clock: it waits for CUDA before reading, and only for CUDA."""

from __future__ import annotations

from step7bench.measure import clock
from step7bench.measure.clock import Clock


def test_cpu_clock_is_monotonic_and_never_synchronises(monkeypatch):
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda device=None: (_ for _ in ()).throw(AssertionError))
    cpu_clock = Clock("cpu")
    readings = [cpu_clock.now() for _ in range(100)]
    assert readings == sorted(readings)


def test_cuda_clock_synchronises_before_each_read(monkeypatch):
    events = []
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda device=None: events.append(("sync", device)))
    monkeypatch.setattr(clock.time, "perf_counter", lambda: events.append("read") or 1.0)
    cuda_clock = Clock("cuda:1")
    cuda_clock.now()
    cuda_clock.now()
    # the clock's own device, named: with a GPU per rank the current device may be another
    assert events == [("sync", clock.torch.device("cuda:1")), "read"] * 2
