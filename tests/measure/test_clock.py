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


def test_a_peek_reads_the_same_clock_without_waiting_for_the_device(monkeypatch):
    events = []
    monkeypatch.setattr(clock.torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    monkeypatch.setattr(clock.time, "perf_counter", lambda: events.append("read") or 2.0)
    assert Clock("cuda:0").peek() == 2.0 and events == ["read"]


def test_a_bare_cuda_device_synchronises_the_current_device(monkeypatch):
    synced = []
    monkeypatch.setattr(clock.torch.cuda, "synchronize", synced.append)
    Clock("cuda").now()
    Clock(clock.torch.device("cuda", 0)).now()
    # torch.cuda.synchronize(device without an index) waits for the current device
    assert synced == [clock.torch.device("cuda"), clock.torch.device("cuda:0")]


def test_cuda_clock_reads_after_the_device_has_finished(monkeypatch):
    # A fake device whose queued work finishes only at synchronize: the reading must come after it.
    timeline = {"now_s": 0.0, "queued_s": 0.0}

    def synchronize(device=None):
        timeline["now_s"] += timeline["queued_s"]
        timeline["queued_s"] = 0.0

    monkeypatch.setattr(clock.torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(clock.time, "perf_counter", lambda: timeline["now_s"])
    cuda_clock = Clock("cuda:0")
    start_s = cuda_clock.now()
    timeline["queued_s"] = 0.25  # kernels launched: the host returns at once
    assert cuda_clock.now() - start_s == 0.25
