"""Energy meters: one window interface, several backends, an honest fallback.

A meter measures named windows (`begin_window(name)` ... `end_window(name)`), which may
overlap and nest; each window returns its joules, its wall seconds and the method that
measured it (the shape of Zeus's monitor: You, Chung & Chowdhury, NSDI 2023).

Backends, in the order `open_meter` tries them:

- CUDA device: NVML's total-energy counter (millijoules since the driver loaded, Volta and
  newer) -> NVML power sampled on a thread and integrated -> the CPU-time estimate.
- CPU device: RAPL package and DRAM counters from powercap -> the CPU-time estimate.
- Any other device: the CPU-time estimate.

What each one counts differs, and `EnergyMeter.scope` says it in words: NVML counts the
whole GPU board (every process on it); RAPL counts whole CPU packages and their DRAM (every
process on the machine); the estimate counts this process's CPU time only.

A backend that fails mid-run hands over to the next one in its chain. The meter keeps one
continuous energy scale across the hand-over, bridging the seconds between the failed
backend's last good reading and the failure with the new backend's figure for that gap, and
every window open across it carries both methods in its label, e.g.
``"nvml-counter->estimate"``. A figure is never silently zero, and never silently an estimate.
"""

from __future__ import annotations

import importlib
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import torch

from step7bench.measure.clock import Clock

WATTS_PER_CORE = 12.0
"""Power charged per busy core by the estimate, in watts.

The Green Algorithms default for a CPU of unknown model (Lannelongue, Grealey & Inouye,
"Green Algorithms: Quantifying the Carbon Footprint of Computation", Advanced Science 2021):
a core's share of its package's thermal design power (TDP / cores). Charging it per second
of CPU time is their formula with the core-usage factor measured instead of assumed.
"""

POWER_SAMPLE_INTERVAL_S = 0.02
"""Seconds between NVML power samples. Pre-Volta GPUs (the ones without the energy counter)
refresh their power reading at most every few tens of milliseconds; sampling faster only
costs CPU. Windows also take a fresh sample at each edge, so the interval bounds the
resolution inside a window, not the alignment of its edges."""

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class EnergyMeasurement:
    """Joules spent during one window, its wall seconds, and the method that measured it.

    `method` is one of ``"nvml-counter"``, ``"nvml-power-sampling"``, ``"rapl"``,
    ``"estimate"``, or the methods joined by ``"->"`` when a backend failed during the window.
    """

    energy_j: float
    wall_s: float
    method: str


class SourceFailed(Exception):
    """An energy source cannot be opened or read; the message says why."""


@dataclass(frozen=True)
class _Mark:
    wall_s: float
    energy_j: float
    trail_index: int


class EnergyMeter(ABC):
    """Named windows over a cumulative energy reading.

    Windows may overlap and nest; each read costs one clock read (which synchronises a CUDA
    device, so the window edges fall where the queued work has finished) and one read of
    the meter's source. Subclasses call `_use(method)` whenever they start reading with a
    method, the first one included, and implement `_read_j`, `scope` and `_release`.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._windows: dict[str, _Mark] = {}
        self._trail: list[str] = []
        self._closed = False

    @property
    def method(self) -> str:
        """The method measuring now."""
        return self._trail[-1]

    @property
    @abstractmethod
    def scope(self) -> str:
        """What the current method counts, in words (whole package, this process, ...)."""

    @abstractmethod
    def _read_j(self, wall_s: float) -> float:
        """Joules on one continuous, non-decreasing scale; `wall_s` is the time of the read."""

    @abstractmethod
    def _release(self) -> None:
        """Free what the source holds (threads, library handles)."""

    def _use(self, method: str) -> None:
        self._trail.append(method)

    def begin_window(self, name: str) -> None:
        self._ensure_open()
        if name in self._windows:
            raise ValueError(f"name: energy window {name!r} is already open")
        wall_s = self._clock()
        self._windows[name] = _Mark(wall_s, self._read_j(wall_s), len(self._trail) - 1)

    def end_window(self, name: str) -> EnergyMeasurement:
        self._ensure_open()
        mark = self._windows.pop(name, None)
        if mark is None:
            raise ValueError(f"name: no energy window {name!r} is open")
        wall_s = self._clock()
        energy_j = self._read_j(wall_s)
        method = "->".join(self._trail[mark.trail_index:])
        return EnergyMeasurement(energy_j - mark.energy_j, wall_s - mark.wall_s, method)

    def close(self) -> None:
        """Stop sampling and release the source; idempotent. Open windows are dropped."""
        if not self._closed:
            self._closed = True
            self._windows.clear()
            self._release()

    def __enter__(self) -> EnergyMeter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _ensure_open(self) -> None:
        if self._closed:
            raise RuntimeError("the energy meter is closed")


class _Source(Protocol):
    """Cumulative joules since the source opened. `read_j` raises SourceFailed."""

    method: str
    scope: str

    def read_j(self) -> float: ...

    def close(self) -> None: ...


class _FallbackSource(_Source, Protocol):
    def bridge_j(self, gap_wall_s: float, gap_cpu_s: float) -> float:
        """Joules to charge for the unmeasured gap between the failed source's last good
        reading and this source's opening (`gap_cpu_s`: this process's CPU seconds in it)."""
        ...


@dataclass(frozen=True)
class _Reading:
    wall_s: float
    cpu_s: float
    energy_j: float


class FallbackMeter(EnergyMeter):
    """Reads `source`; when it fails, opens the next of `fallbacks` that opens.

    `skipped` lists why better sources did not open; `scope` repeats it.

    Every reading also records this process's CPU seconds (one cheap clock read), so the
    estimate can cover a gap exactly; the power sampler covers it with its first sample.
    """

    def __init__(
        self,
        source: _Source,
        fallbacks: Sequence[Callable[[], _FallbackSource]],
        *,
        clock: Callable[[], float],
        cpu_time_s: Callable[[], float],
        skipped: Sequence[str] = (),
    ) -> None:
        super().__init__(clock)
        self._source = source
        self._fallbacks = list(fallbacks)
        self._cpu_time_s = cpu_time_s
        self._offset_j = 0.0
        self._scope = source.scope + (f"; not used: {'; '.join(skipped)}" if skipped else "")
        self._use(source.method)
        self._last = _Reading(clock(), cpu_time_s(), source.read_j())

    @property
    def scope(self) -> str:
        return self._scope

    def _read_j(self, wall_s: float) -> float:
        cpu_s = self._cpu_time_s()
        try:
            energy_j = self._offset_j + self._source.read_j()
        except SourceFailed as failure:
            energy_j = self._fail_over(str(failure), wall_s, cpu_s)
        self._last = _Reading(wall_s, cpu_s, energy_j)
        return energy_j

    def _fail_over(self, reason: str, wall_s: float, cpu_s: float) -> float:
        failed = self._source
        failed.close()
        reasons = [f"{failed.method}: {reason}"]
        while self._fallbacks:
            try:
                source = self._fallbacks.pop(0)()
            except SourceFailed as failure:
                reasons.append(f"opening the next source: {failure}")
                continue
            gap_j = source.bridge_j(wall_s - self._last.wall_s, cpu_s - self._last.cpu_s)
            energy_j = self._last.energy_j + gap_j
            self._offset_j = energy_j - source.read_j()
            self._source = source
            self._scope = f"{source.scope}; switched from {failed.method} ({'; '.join(reasons)})"
            self._use(source.method)
            warnings.warn(f"energy: {self._scope}", RuntimeWarning, stacklevel=4)
            return energy_j
        raise RuntimeError(f"every energy source failed: {'; '.join(reasons)}")

    def _release(self) -> None:
        self._source.close()


# -- the estimate ------------------------------------------------------------------------


class CpuTimeEstimate:
    """This process's CPU time (user + system, all its threads) times a power per core.

    Counts this process only: neither other processes, nor DRAM, nor idle power, nor a GPU.
    """

    method = "estimate"

    def __init__(self, watts_per_core: float, cpu_time_s: Callable[[], float], note: str = "") -> None:
        self._watts_per_core = watts_per_core
        self._cpu_time_s = cpu_time_s
        self._origin_s = cpu_time_s()
        self.scope = f"this process's CPU time x {watts_per_core:g} W per core{note}"

    def read_j(self) -> float:
        return self._watts_per_core * (self._cpu_time_s() - self._origin_s)

    def bridge_j(self, gap_wall_s: float, gap_cpu_s: float) -> float:
        return self._watts_per_core * gap_cpu_s

    def close(self) -> None:
        """Holds nothing."""


# -- RAPL --------------------------------------------------------------------------------


def _read_uj(path: Path) -> int:
    return int(path.read_text())


@dataclass
class _RaplDomain:
    label: str
    energy_path: Path
    range_uj: int
    last_uj: int
    total_uj: int = 0

    def advance(self) -> None:
        now_uj = _read_uj(self.energy_path)
        delta_uj = now_uj - self.last_uj
        if delta_uj < 0:  # the counter passed max_energy_range_uj and restarted from zero
            delta_uj += self.range_uj
        self.total_uj += delta_uj
        self.last_uj = now_uj


class RaplCounter:
    """Intel/AMD RAPL energy counters from Linux powercap, summed over domains.

    Counts every package domain (``intel-rapl:N`` named ``package-N``: cores, caches,
    uncore) and every DRAM domain (``intel-rapl:N:M`` named ``dram``, which the package
    figure excludes). Skips ``core``/``uncore`` (inside the package figure already) and
    ``psys`` (the whole platform, which contains the others). This is the energy of the whole
    machine's CPUs and memory, every process included, not this process's share.

    Each counter wraps to zero past its ``max_energy_range_uj``. A wrap is seen only if the
    counter is read at least once per wrap period (that range divided by the domain's
    power), so a long window must contain other reads: the engine's evaluation windows,
    opened every few dozen steps, provide them.
    """

    method = "rapl"

    def __init__(self, root: Path) -> None:
        try:
            self._domains = self._open_domains(root)
        except (OSError, ValueError) as error:
            raise SourceFailed(f"RAPL under {root} is unreadable ({error})") from error
        if not self._domains:
            raise SourceFailed(f"no RAPL package or DRAM domain under {root}")
        labels = ", ".join(domain.label for domain in self._domains)
        self.scope = f"whole CPU packages and DRAM, every process on the machine (RAPL: {labels})"

    @staticmethod
    def _open_domains(root: Path) -> list[_RaplDomain]:
        """Package and DRAM domains; powercap lists sub-domains at the top level too."""
        domains = []
        for path in sorted(root.glob("intel-rapl:*")):
            name = (path / "name").read_text().strip()
            if name.startswith("package") or name == "dram":
                energy_path = path / "energy_uj"
                range_uj = _read_uj(path / "max_energy_range_uj")
                domains.append(_RaplDomain(f"{path.name} {name}", energy_path, range_uj, _read_uj(energy_path)))
        return domains

    def read_j(self) -> float:
        try:
            for domain in self._domains:
                domain.advance()
        except (OSError, ValueError) as error:
            raise SourceFailed(f"RAPL read failed ({error})") from error
        return sum(domain.total_uj for domain in self._domains) / 1e6

    def close(self) -> None:
        """Holds no open file between reads."""


# -- NVML --------------------------------------------------------------------------------


def _import_pynvml() -> ModuleType:
    """pynvml (the nvidia-ml-py package), imported on first use: CPU runs never load it."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as error:
        raise SourceFailed("pynvml (nvidia-ml-py) is not installed") from error


def cuda_uuid(device_index: int) -> str:
    """The CUDA device's UUID in NVML's spelling (``GPU-...``).

    NVML numbers every GPU of the machine; CUDA numbers only the visible ones, reordered by
    ``CUDA_VISIBLE_DEVICES`` (and fastest first by default), so an index can name another
    GPU. The UUID names the same board in both. torch prints it without NVML's prefix.
    """
    uuid = str(torch.cuda.get_device_properties(device_index).uuid)
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


class NvmlDevice:
    """One reference to the NVML library and the handle of the GPU behind a torch CUDA index.

    NVML counts `nvmlInit` calls and shuts down only when each has its `nvmlShutdown`, so every
    holder opens and closes its own reference.
    """

    def __init__(self, device_index: int) -> None:
        self.lib = _import_pynvml()
        uuid = cuda_uuid(device_index)
        self._initialised = False
        try:
            self.lib.nvmlInit()
            self._initialised = True
            self.handle = self.lib.nvmlDeviceGetHandleByUUID(uuid)
        except self.lib.NVMLError as error:
            self.close()
            raise SourceFailed(f"NVML cannot reach cuda:{device_index} ({error})") from error

    def call(self, function: str, *args: Any) -> Any:
        """`lib.<function>(*args)`, with NVML's errors raised as SourceFailed."""
        try:
            return getattr(self.lib, function)(*args)
        except self.lib.NVMLError as error:
            raise SourceFailed(f"{function} failed ({error})") from error

    def query(self, function: str) -> Any:
        """`lib.<function>(handle)`: a reading of this GPU."""
        return self.call(function, self.handle)

    def probe(self, function: str) -> Any:
        """`query` for a source checking at opening that its reading works: a failure also
        closes this reference, since the source will not be built."""
        try:
            return self.query(function)
        except SourceFailed:
            self.close()
            raise

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            try:
                self.lib.nvmlShutdown()
            except self.lib.NVMLError:
                pass  # the library is gone already; nothing is left to release


class NvmlEnergyCounter:
    """NVML's total-energy counter of the GPU board: millijoules since the driver loaded.

    The counter is 64 bits wide, so it does not wrap in practice; it restarts when the driver
    reloads or the GPU is reset. A reading below the one before is such a restart, and the
    energy spent between the last reading and the restart is unknown: the counter then fails
    (SourceFailed), so the meter hands over to power sampling and bridges the gap with it, as it
    does for any failure, rather than report a negative or a silently short figure.
    """

    method = "nvml-counter"

    def __init__(self, device_index: int) -> None:
        self._nvml = NvmlDevice(device_index)
        self._origin_mj = self._last_mj = int(self._nvml.probe("nvmlDeviceGetTotalEnergyConsumption"))
        self.scope = f"GPU cuda:{device_index} board, every process on it (NVML energy counter)"

    def _read_mj(self) -> int:
        now_mj = int(self._nvml.query("nvmlDeviceGetTotalEnergyConsumption"))
        if now_mj < self._last_mj:
            raise SourceFailed(f"the energy counter went back from {self._last_mj} to {now_mj} mJ "
                               "(the driver reloaded or the GPU was reset)")
        self._last_mj = now_mj
        return now_mj

    def read_j(self) -> float:
        return (self._read_mj() - self._origin_mj) / 1e3

    def close(self) -> None:
        self._nvml.close()


class NvmlPowerSampler:
    """NVML board power sampled on a daemon thread and integrated by the trapezoid rule.

    Each read also takes a sample, so a window's edges are exact and only its inside is
    sampled at `interval_s`. On Ampere and newer GPUs except GA100, NVML's reading is itself
    a one-second average (NVML API reference, nvmlDeviceGetPowerUsage), which smears power
    over a second; those GPUs have the energy counter, so they land here only if it failed.
    The thread starts when the sampler opens and stops on `close`.
    """

    method = "nvml-power-sampling"

    def __init__(
        self, device_index: int, interval_s: float, now: Callable[[], float] = time.perf_counter
    ) -> None:
        self._nvml = NvmlDevice(device_index)
        self._now = now
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._failure: str | None = None
        self._energy_j = 0.0
        self._last_s = now()
        self.first_w = self._last_w = self._nvml.probe("nvmlDeviceGetPowerUsage") / 1e3
        self.scope = (
            f"GPU cuda:{device_index} board, every process on it "
            f"(NVML power sampled every {interval_s * 1e3:g} ms)"
        )
        self._thread = threading.Thread(
            target=self._run, args=(interval_s,), name="step7bench-power-sampler", daemon=True
        )
        self._thread.start()

    def _power_w(self) -> float:
        return self._nvml.query("nvmlDeviceGetPowerUsage") / 1e3

    def _sample(self) -> float:
        """Integrate up to a fresh sample; the joules so far."""
        # Time and power are read under the lock so samples enter the integral in time order.
        with self._lock:
            now_s, power_w = self._now(), self._power_w()
            self._energy_j += 0.5 * (self._last_w + power_w) * (now_s - self._last_s)
            self._last_s, self._last_w = now_s, power_w
            return self._energy_j

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self._sample()
            except SourceFailed as failure:
                self._failure = str(failure)
                return

    def read_j(self) -> float:
        if self._failure is not None:
            raise SourceFailed(f"the power sampler stopped ({self._failure})")
        return self._sample()

    def bridge_j(self, gap_wall_s: float, gap_cpu_s: float) -> float:
        """The gap at the power of the first sample: the nearest measurement of it there is."""
        return self.first_w * gap_wall_s

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._nvml.close()


# -- choosing a meter --------------------------------------------------------------------


def _first_that_opens(
    first: Callable[[], _Source], then: Sequence[Callable[[], _FallbackSource]]
) -> tuple[_Source, list[Callable[[], _FallbackSource]], list[str]]:
    """The first source of the chain that opens, the fallbacks after it, and why the ones
    before it did not open (each reason once: NVML's sources fail alike when NVML is absent)."""
    reasons: dict[str, None] = {}
    for position, opener in enumerate([first, *then]):
        try:
            return opener(), list(then[position:]), list(reasons)
        except SourceFailed as failure:
            reasons[str(failure)] = None
    raise RuntimeError(f"no energy source opened: {'; '.join(reasons)}")


def open_meter(
    device: torch.device | str,
    *,
    powercap_root: Path | str = DEFAULT_POWERCAP_ROOT,
    watts_per_core: float = WATTS_PER_CORE,
    power_sample_interval_s: float = POWER_SAMPLE_INTERVAL_S,
    clock: Callable[[], float] | None = None,
    cpu_time_s: Callable[[], float] = time.process_time,
) -> EnergyMeter:
    """The best energy meter for `device`, with the rest of its chain as fallbacks.

    CUDA: NVML counter -> NVML power sampling -> estimate; CPU: RAPL -> estimate; other
    devices: estimate. A CUDA device measured by the estimate warns, since the GPU's own
    energy is then not counted at all. `clock` defaults to the device-synced `Clock`;
    `cpu_time_s` (this process's user + system seconds) feeds the estimate.
    """
    if watts_per_core <= 0:
        raise ValueError(f"watts_per_core must be > 0, got {watts_per_core}")
    if power_sample_interval_s <= 0:
        raise ValueError(f"power_sample_interval_s must be > 0, got {power_sample_interval_s}")
    device = torch.device(device)
    estimate = partial(CpuTimeEstimate, watts_per_core, cpu_time_s)
    first: Callable[[], _Source]
    then: list[Callable[[], _FallbackSource]]
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        first = partial(NvmlEnergyCounter, index)
        then = [
            partial(NvmlPowerSampler, index, power_sample_interval_s),
            partial(estimate, note=f"; the GPU's own energy is not counted ({device})"),
        ]
    elif device.type == "cpu":
        first, then = partial(RaplCounter, Path(powercap_root)), [estimate]
    else:
        first = partial(estimate, note=f"; no meter reads a {device.type} device: its energy is not counted")
        then = []

    source, fallbacks, skipped = _first_that_opens(first, then)
    if device.type == "cuda" and source.method == "estimate":
        warnings.warn(f"energy: {source.scope}: {'; '.join(skipped)}", RuntimeWarning, stacklevel=2)
    return FallbackMeter(
        source, fallbacks, skipped=skipped, clock=clock or Clock(device).now, cpu_time_s=cpu_time_s
    )
