"""The device-synced clock: it waits for CUDA before reading, and only for CUDA."""

from __future__ import annotations

from step7bench.measure import clock
from step7bench.measure.clock import Clock


def test_cpu_clock_is_monotonic_and_never_synchronises(monkeypatch):
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda: (_ for _ in ()).throw(AssertionError))
    cpu_clock = Clock("cpu")
    readings = [cpu_clock.now() for _ in range(100)]
    assert readings == sorted(readings)


def test_cuda_clock_synchronises_before_each_read(monkeypatch):
    events = []
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda: events.append("sync"))
    monkeypatch.setattr(clock.time, "perf_counter", lambda: events.append("read") or 1.0)
    cuda_clock = Clock("cuda:0")
    cuda_clock.now()
    cuda_clock.now()
    assert events == ["sync", "read", "sync", "read"]
