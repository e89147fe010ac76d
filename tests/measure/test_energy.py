"""Energy meters without a GPU or RAPL: a fake pynvml, a fake powercap tree, fake clocks."""

from __future__ import annotations

import threading
import time
import types

import pytest

from step7bench.measure import clock as clock_module
from step7bench.measure import energy
from step7bench.measure.energy import EnergyMeasurement, NvmlPowerSampler, open_meter

WATTS_PER_CORE = 10.0  # round numbers make the expected joules readable
SLOW_SAMPLING_S = 3600.0  # the sampler thread never wakes within a test: readings are exact


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "step7bench-power-sampler"]


def wait_until(condition, timeout_s: float = 1.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


def cuda_meter(clock, cpu, interval_s: float = SLOW_SAMPLING_S):
    return open_meter(
        "cuda:1", clock=clock, cpu_time_s=cpu, watts_per_core=WATTS_PER_CORE,
        power_sample_interval_s=interval_s,
    )


def cpu_meter(clock, cpu, powercap):
    return open_meter(
        "cpu", powercap_root=powercap.root, clock=clock, cpu_time_s=cpu, watts_per_core=WATTS_PER_CORE
    )


# -- windows ------------------------------------------------------------------------------


def test_windows_nest_and_overlap(clock, cpu, powercap):
    with cpu_meter(clock, cpu, powercap) as meter:
        meter.begin_window("trial")
        cpu.advance(1.0)
        clock.advance(2.0)
        meter.begin_window("train")
        cpu.advance(3.0)
        clock.advance(4.0)
        meter.begin_window("eval")  # overlaps "train", which ends first
        cpu.advance(0.5)
        clock.advance(0.5)
        train = meter.end_window("train")
        eval_ = meter.end_window("eval")
        trial = meter.end_window("trial")
    assert train == EnergyMeasurement(energy_j=35.0, wall_s=4.5, method="estimate")
    assert eval_ == EnergyMeasurement(energy_j=5.0, wall_s=0.5, method="estimate")
    assert trial == EnergyMeasurement(energy_j=45.0, wall_s=6.5, method="estimate")


def test_window_misuse_is_refused(clock, cpu, powercap):
    meter = cpu_meter(clock, cpu, powercap)
    meter.begin_window("train")
    with pytest.raises(ValueError, match="already open"):
        meter.begin_window("train")
    with pytest.raises(ValueError, match="no energy window 'eval'"):
        meter.end_window("eval")
    meter.close()
    meter.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        meter.begin_window("eval")


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="watts_per_core"):
        open_meter("cpu", watts_per_core=0.0)
    with pytest.raises(ValueError, match="power_sample_interval_s"):
        open_meter("cpu", power_sample_interval_s=-1.0)


# -- the estimate -------------------------------------------------------------------------


def test_estimate_charges_cpu_seconds_at_the_stated_power(clock, cpu, powercap):
    meter = cpu_meter(clock, cpu, powercap)  # the fake tree is empty: no RAPL
    meter.begin_window("train")
    cpu.advance(2.5)
    clock.advance(1.5)  # two threads busy: more CPU seconds than wall seconds
    measurement = meter.end_window("train")
    assert measurement == EnergyMeasurement(energy_j=25.0, wall_s=1.5, method="estimate")
    assert "this process's CPU time x 10 W per core" in meter.scope
    assert "no RAPL" in meter.scope


def test_default_power_per_core_is_the_documented_constant(clock, cpu, powercap):
    meter = open_meter("cpu", powercap_root=powercap.root, clock=clock, cpu_time_s=cpu)
    meter.begin_window("w")
    cpu.advance(1.0)
    assert meter.end_window("w").energy_j == pytest.approx(energy.WATTS_PER_CORE)


def test_estimate_reads_real_process_time_by_default(powercap):
    meter = open_meter("cpu", powercap_root=powercap.root)
    meter.begin_window("w")
    sum(i * i for i in range(200_000))  # some CPU work in this process
    measurement = meter.end_window("w")
    assert measurement.method == "estimate"
    assert measurement.energy_j > 0.0
    assert measurement.wall_s > 0.0


def test_device_without_a_meter_gets_an_estimate_that_says_so(clock, cpu):
    meter = open_meter("meta", clock=clock, cpu_time_s=cpu)
    assert meter.method == "estimate"
    assert "no meter reads a meta device" in meter.scope


# -- RAPL ---------------------------------------------------------------------------------


def two_socket_tree(powercap) -> None:
    """Two packages, a DRAM sub-domain, plus domains that must not be summed."""
    powercap.add("intel-rapl:0", "package-0", energy_uj=5_000_000)
    powercap.add("intel-rapl:0:0", "core", energy_uj=1_000)  # inside package-0 already
    powercap.add("intel-rapl:0:1", "dram", energy_uj=7_000)
    powercap.add("intel-rapl:1", "package-1", energy_uj=2**20 - 100, range_uj=2**20)
    powercap.add("intel-rapl:2", "psys", energy_uj=0)  # the platform: contains the rest
    powercap.add("intel-rapl-mmio:0", "package-0", energy_uj=0)  # package-0 again, via MMIO


def test_rapl_sums_packages_and_dram_across_a_wrap(clock, cpu, powercap):
    two_socket_tree(powercap)
    meter = cpu_meter(clock, cpu, powercap)
    assert meter.method == "rapl"
    meter.begin_window("train")
    powercap.spend("intel-rapl:0", 3_000_000)
    powercap.spend("intel-rapl:0:1", 250_000)
    powercap.spend("intel-rapl:1", 600)  # passes 2**20 and restarts from zero
    for excluded in ("intel-rapl:0:0", "intel-rapl:2", "intel-rapl-mmio:0"):
        powercap.spend(excluded, 9_000_000)
    clock.advance(2.0)
    measurement = meter.end_window("train")
    assert measurement == EnergyMeasurement(energy_j=3.2506, wall_s=2.0, method="rapl")
    assert "every process on the machine" in meter.scope
    assert "intel-rapl:0:1 dram" in meter.scope


def test_rapl_wrap_between_windows_is_counted_once(clock, cpu, powercap):
    powercap.add("intel-rapl:0", "package-0", energy_uj=900, range_uj=1_000)
    meter = cpu_meter(clock, cpu, powercap)
    measured_j = 0.0
    for _ in range(3):
        meter.begin_window("w")
        powercap.spend("intel-rapl:0", 400)
        measured_j += meter.end_window("w").energy_j
    assert measured_j == pytest.approx(1_200e-6)


def test_unreadable_rapl_file_falls_through_to_the_estimate(clock, cpu, powercap, monkeypatch):
    two_socket_tree(powercap)
    locked = powercap.energy_file("intel-rapl:1")
    read_uj = energy._read_uj

    def root_only(path):  # what a non-root process meets on most kernels
        if path == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return read_uj(path)

    monkeypatch.setattr(energy, "_read_uj", root_only)
    meter = cpu_meter(clock, cpu, powercap)
    assert meter.method == "estimate"
    assert "Permission denied" in meter.scope


def test_missing_powercap_tree_falls_through_to_the_estimate(clock, cpu, tmp_path):
    meter = open_meter("cpu", powercap_root=tmp_path / "absent", clock=clock, cpu_time_s=cpu)
    assert meter.method == "estimate"


def test_rapl_failing_mid_window_switches_to_the_estimate(clock, cpu, powercap):
    powercap.add("intel-rapl:0", "package-0", energy_uj=0)
    meter = cpu_meter(clock, cpu, powercap)
    meter.begin_window("train")
    powercap.energy_file("intel-rapl:0").write_text("garbage\n")
    cpu.advance(2.0)
    clock.advance(3.0)
    with pytest.warns(RuntimeWarning, match="switched from rapl"):
        measurement = meter.end_window("train")
    # The gap since the last good RAPL reading (the window's start) is charged by the estimate.
    assert measurement == EnergyMeasurement(energy_j=20.0, wall_s=3.0, method="rapl->estimate")
    assert meter.method == "estimate"


# -- NVML ---------------------------------------------------------------------------------


def test_nvml_counter_measures_millijoules_of_the_torch_device(fake_nvml, clock, cpu):
    meter = cuda_meter(clock, cpu)
    assert meter.method == "nvml-counter"
    assert fake_nvml.looked_up == ["GPU-fake-1"]  # by UUID: CUDA and NVML index GPUs apart
    meter.begin_window("train")
    fake_nvml.energy_mj += 12_345
    clock.advance(0.5)
    measurement = meter.end_window("train")
    assert measurement == EnergyMeasurement(energy_j=12.345, wall_s=0.5, method="nvml-counter")
    meter.close()
    assert fake_nvml.references == 0
    assert not sampler_threads()  # the counter needs no sampler


def test_unsupported_counter_falls_back_to_power_sampling(fake_nvml, clock, cpu):
    fake_nvml.counter_error = fake_nvml.NVMLError("Not Supported")
    fake_nvml.power_mw = 200_000
    before_begin_s = time.perf_counter()
    meter = cuda_meter(clock, cpu)
    assert meter.method == "nvml-power-sampling"
    assert "Not Supported" in meter.scope
    assert len(sampler_threads()) == 1
    meter.begin_window("train")
    after_begin_s = time.perf_counter()
    time.sleep(0.01)
    before_end_s = time.perf_counter()
    measurement = meter.end_window("train")
    after_end_s = time.perf_counter()
    assert measurement.method == "nvml-power-sampling"
    # Constant power: the trapezoid integral is exactly power x the time between the reads.
    assert 200.0 * (before_end_s - after_begin_s) <= measurement.energy_j
    assert measurement.energy_j <= 200.0 * (after_end_s - before_begin_s)
    meter.close()
    assert not sampler_threads()
    assert fake_nvml.references == 0


def test_power_sampler_integrates_by_the_trapezoid_rule(fake_nvml):
    now = iter([10.0, 12.0, 13.0]).__next__
    fake_nvml.power_mw = 100_000
    sampler = NvmlPowerSampler(0, SLOW_SAMPLING_S, now=now)
    fake_nvml.power_mw = 300_000
    assert sampler.read_j() == pytest.approx(400.0)  # (100 + 300) / 2 W x 2 s
    fake_nvml.power_mw = 100_000
    assert sampler.read_j() == pytest.approx(600.0)  # + (300 + 100) / 2 W x 1 s
    sampler.close()


def test_power_sampler_thread_samples_between_reads_and_stops_on_close(fake_nvml):
    sampler = NvmlPowerSampler(0, interval_s=0.001)
    wait_until(lambda: fake_nvml.power_reads >= 5)  # the first read is the opening's
    sampler.close()
    reads_at_close = fake_nvml.power_reads
    time.sleep(0.01)
    assert fake_nvml.power_reads == reads_at_close
    assert not sampler_threads()


def test_counter_error_mid_window_switches_to_power_sampling_and_says_so(fake_nvml, clock, cpu):
    meter = cuda_meter(clock, cpu)
    meter.begin_window("train")
    fake_nvml.energy_mj += 999  # spent, but never read: the counter fails first
    fake_nvml.counter_error = fake_nvml.NVMLError("GPU is lost")
    fake_nvml.power_mw = 50_000
    clock.advance(10.0)
    with pytest.warns(RuntimeWarning, match="switched from nvml-counter .*GPU is lost"):
        measurement = meter.end_window("train")
    # The 10 s since the counter's last good reading, at the first sampled power (50 W).
    assert measurement == EnergyMeasurement(500.0, 10.0, "nvml-counter->nvml-power-sampling")
    assert meter.method == "nvml-power-sampling"
    meter.begin_window("eval")  # later windows are measured by the new method alone
    assert meter.end_window("eval").method == "nvml-power-sampling"
    meter.close()
    assert fake_nvml.references == 0


def test_nvml_failing_outright_mid_window_switches_to_the_estimate(fake_nvml, clock, cpu):
    meter = cuda_meter(clock, cpu)
    meter.begin_window("train")
    fake_nvml.counter_error = fake_nvml.NVMLError("Unknown Error")
    fake_nvml.power_error = fake_nvml.NVMLError("Unknown Error")
    cpu.advance(4.0)
    clock.advance(5.0)
    with pytest.warns(RuntimeWarning, match="GPU's own energy is not counted"):
        measurement = meter.end_window("train")
    assert measurement == EnergyMeasurement(40.0, 5.0, "nvml-counter->estimate")
    assert "nvmlDeviceGetPowerUsage failed" in meter.scope
    meter.close()
    assert fake_nvml.references == 0


def test_sampler_thread_failure_switches_to_the_estimate_on_the_next_read(fake_nvml, clock, cpu):
    fake_nvml.counter_error = fake_nvml.NVMLError("Not Supported")
    meter = cuda_meter(clock, cpu, interval_s=0.001)
    meter.begin_window("train")
    fake_nvml.power_error = fake_nvml.NVMLError("GPU is lost")
    wait_until(lambda: not sampler_threads())  # the thread stops at its first failed sample
    cpu.advance(1.5)
    clock.advance(2.0)
    with pytest.warns(RuntimeWarning, match="the power sampler stopped"):
        measurement = meter.end_window("train")
    assert measurement == EnergyMeasurement(15.0, 2.0, "nvml-power-sampling->estimate")
    meter.close()


def test_cuda_without_nvml_is_an_estimate_that_says_the_gpu_is_not_counted(no_nvml, clock, cpu):
    with pytest.warns(RuntimeWarning, match="GPU's own energy is not counted"):
        meter = cuda_meter(clock, cpu)
    assert meter.method == "estimate"
    assert "not installed" in meter.scope
    meter.begin_window("train")
    cpu.advance(1.0)
    assert meter.end_window("train").energy_j == pytest.approx(10.0)


def test_nvml_that_cannot_start_falls_through_to_the_estimate(fake_nvml, clock, cpu):
    fake_nvml.init_error = fake_nvml.NVMLError("Driver Not Loaded")
    with pytest.warns(RuntimeWarning, match="Driver Not Loaded"):
        meter = cuda_meter(clock, cpu)
    assert meter.method == "estimate"
    assert fake_nvml.references == 0


# -- NVML: the CUDA paths a CPU machine cannot reach ------------------------------------------


@pytest.mark.parametrize(
    ("before_mj", "after_mj"),
    [(1_000_000, 0), (2**64 - 3_000, 4_000)],  # a driver reload restarts at zero; a wrap of the 64-bit counter
    ids=["reset", "wrap"],
)
def test_counter_going_back_hands_over_to_power_sampling(fake_nvml, clock, cpu, before_mj, after_mj):
    fake_nvml.energy_mj = before_mj
    meter = cuda_meter(clock, cpu)
    meter.begin_window("train")
    fake_nvml.energy_mj += 2_000  # read at the next edge: 2 J on the counter's own scale
    clock.advance(1.0)
    assert meter.end_window("train") == EnergyMeasurement(2.0, 1.0, "nvml-counter")
    meter.begin_window("train")
    fake_nvml.energy_mj = after_mj
    fake_nvml.power_mw = 100_000
    clock.advance(3.0)
    with pytest.warns(RuntimeWarning, match=r"went back from .* mJ \(the driver reloaded or the GPU was reset\)"):
        measurement = meter.end_window("train")
    # Never negative, never a silent zero: the 3 s since the last good reading at the first sampled power.
    assert measurement == EnergyMeasurement(300.0, 3.0, "nvml-counter->nvml-power-sampling")
    assert meter.method == "nvml-power-sampling"
    meter.close()
    assert fake_nvml.references == 0
    assert not sampler_threads()


def test_counter_that_stands_still_is_no_reset(fake_nvml, clock, cpu):
    meter = cuda_meter(clock, cpu)
    meter.begin_window("idle")
    clock.advance(0.5)  # the counter unchanged: a window shorter than NVML's update, or an idle board
    assert meter.end_window("idle") == EnergyMeasurement(0.0, 0.5, "nvml-counter")
    meter.close()


def test_no_counter_and_no_power_reading_is_an_estimate_that_names_both(fake_nvml, clock, cpu):
    fake_nvml.counter_error = fake_nvml.NVMLError("Not Supported")
    fake_nvml.power_error = fake_nvml.NVMLError("Not Supported")
    with pytest.warns(RuntimeWarning, match="GPU's own energy is not counted"):
        meter = cuda_meter(clock, cpu)
    assert meter.method == "estimate"
    assert "nvmlDeviceGetTotalEnergyConsumption failed" in meter.scope
    assert "nvmlDeviceGetPowerUsage failed" in meter.scope
    assert fake_nvml.references == 0  # each source that did not open released its NVML reference
    assert not sampler_threads()


def test_power_sampling_window_integrates_the_samples_inside_it(fake_nvml):
    # Edges and inner samples alike enter the trapezoid integral: 100 W for 1 s, then 300 W for 2 s.
    times = iter([0.0, 1.0, 2.0, 3.0]).__next__
    fake_nvml.power_mw = 100_000
    sampler = NvmlPowerSampler(0, SLOW_SAMPLING_S, now=times)  # opens at t = 0
    assert sampler.read_j() == pytest.approx(100.0)  # t = 1, still 100 W
    fake_nvml.power_mw = 300_000
    assert sampler.read_j() == pytest.approx(300.0)  # t = 2: + (100 + 300) / 2 W x 1 s
    assert sampler.read_j() == pytest.approx(600.0)  # t = 3: + 300 W x 1 s
    sampler.close()


def test_a_bare_cuda_device_is_metered_on_the_current_device(fake_nvml, clock, cpu, monkeypatch):
    monkeypatch.setattr(energy.torch.cuda, "current_device", lambda: 2)
    meter = open_meter("cuda", clock=clock, cpu_time_s=cpu)
    assert fake_nvml.looked_up == ["GPU-fake-2"]
    assert "cuda:2" in meter.scope
    meter.close()


@pytest.mark.parametrize(
    ("torch_uuid", "nvml_uuid"),
    [("5d3ac4b0-0000-1111-2222-333344445555", "GPU-5d3ac4b0-0000-1111-2222-333344445555"),
     ("GPU-5d3ac4b0-0000-1111-2222-333344445555", "GPU-5d3ac4b0-0000-1111-2222-333344445555"),
     ("MIG-9e1f-0000", "MIG-9e1f-0000")],
)
def test_cuda_uuid_is_spelled_as_nvml_spells_it(monkeypatch, torch_uuid, nvml_uuid):
    properties = {3: types.SimpleNamespace(uuid=torch_uuid)}
    monkeypatch.setattr(energy.torch.cuda, "get_device_properties", properties.__getitem__)
    assert energy.cuda_uuid(3) == nvml_uuid


def test_meter_windows_on_cuda_synchronise_their_own_device(fake_nvml, cpu, monkeypatch):
    synced = []
    monkeypatch.setattr(clock_module.torch.cuda, "synchronize", synced.append)
    meter = open_meter("cuda:1", cpu_time_s=cpu)  # the default clock: device-synced
    synced.clear()  # the meter's first reading
    meter.begin_window("train")
    meter.end_window("train")
    assert synced == [energy.torch.device("cuda:1")] * 2
    meter.close()
