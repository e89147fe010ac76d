"""Fakes for energy and fingerprint tests: an NVML module, a clock, CPU time, a powercap tree."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from step7bench.measure import energy


class FakeNvmlError(Exception):
    pass


class FakeNvml(types.ModuleType):
    """The slice of pynvml the package uses, with settable readings and failures.

    `energy_mj` and `power_mw` are what the GPU reports; set `counter_error` or
    `power_error` to an exception to make the matching call raise it.
    """

    NVMLError = FakeNvmlError

    def __init__(self) -> None:
        super().__init__("pynvml")
        self.energy_mj = 1_000_000  # the counter counts since driver load, not from zero
        self.power_mw = 50_000
        self.counter_error: Exception | None = None
        self.power_error: Exception | None = None
        self.init_error: Exception | None = None
        self.references = 0
        self.power_reads = 0
        self.looked_up: list[str] = []

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.references += 1

    def nvmlShutdown(self) -> None:
        self.references -= 1

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.looked_up.append(uuid)
        return f"handle:{uuid}"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: str) -> int:
        if self.counter_error is not None:
            raise self.counter_error
        return self.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: str) -> int:
        if self.power_error is not None:
            raise self.power_error
        self.power_reads += 1
        return self.power_mw

    def nvmlDeviceGetName(self, handle: str) -> str:
        return "NVIDIA Fake H100 80GB HBM3"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=80 * 2**30, free=0, used=0)


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """A fake pynvml on the import path, and CUDA UUIDs that need no CUDA."""
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(energy, "cuda_uuid", lambda index: f"GPU-fake-{index}")
    return nvml


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """pynvml not installed (a None entry in sys.modules makes its import fail)."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(energy, "cuda_uuid", lambda index: f"GPU-fake-{index}")


class FakeSeconds:
    """A clock (wall or CPU seconds) that moves only when told."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeSeconds:
    return FakeSeconds()


@pytest.fixture
def cpu() -> FakeSeconds:
    return FakeSeconds()


class FakePowercap:
    """A powercap tree laid out as Linux does: every domain a top-level folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ranges_uj: dict[str, int] = {}

    def add(self, directory: str, name: str, energy_uj: int, range_uj: int = 2**32) -> None:
        folder = self.root / directory
        folder.mkdir(parents=True)
        (folder / "name").write_text(f"{name}\n")
        (folder / "max_energy_range_uj").write_text(f"{range_uj}\n")
        (folder / "energy_uj").write_text(f"{energy_uj}\n")
        self._ranges_uj[directory] = range_uj

    def energy_file(self, directory: str) -> Path:
        return self.root / directory / "energy_uj"

    def spend(self, directory: str, delta_uj: int) -> None:
        """Advance a domain's counter, restarting from zero past its range as the kernel does."""
        path = self.energy_file(directory)
        path.write_text(f"{(int(path.read_text()) + delta_uj) % self._ranges_uj[directory]}\n")


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "powercap")
