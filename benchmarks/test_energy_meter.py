"""Cost of one energy window (begin + end), which the engine pays at every evaluation point.

Run: `pytest benchmarks/test_energy_meter.py --benchmark-only`. RAPL is read from a powercap
tree of plain files here (two packages and a DRAM domain, as on a two-socket server); real
sysfs files cost a register read on top.
"""

from __future__ import annotations

import pytest

from step7bench.measure.energy import open_meter


def window(meter) -> None:
    meter.begin_window("w")
    meter.end_window("w")


@pytest.fixture
def powercap_tree(tmp_path):
    for directory, name in [("intel-rapl:0", "package-0"), ("intel-rapl:0:1", "dram"), ("intel-rapl:1", "package-1")]:
        domain = tmp_path / directory
        domain.mkdir()
        (domain / "name").write_text(f"{name}\n")
        (domain / "max_energy_range_uj").write_text("262143328850\n")
        (domain / "energy_uj").write_text("1000000\n")
    return tmp_path


def test_estimate_window(benchmark, tmp_path):
    with open_meter("cpu", powercap_root=tmp_path / "absent") as meter:
        assert meter.method == "estimate"
        benchmark(window, meter)


def test_rapl_window(benchmark, powercap_tree):
    with open_meter("cpu", powercap_root=powercap_tree) as meter:
        assert meter.method == "rapl"
        benchmark(window, meter)
