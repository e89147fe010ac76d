"""The ledger: a snapshot (what the store, the ranks and the pretraining cache keep) gives the
ledger back, totals included."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from step7bench.engine import Ledger


@given(st.integers(0, 10**6), st.integers(0, 10**12), st.floats(0, 1e4), st.floats(0, 1e6))
def test_a_snapshot_gives_back_the_ledger_it_was_taken_of(steps, flops, wall_s, energy_j):
    ledger = Ledger()
    ledger.steps = steps
    ledger.charge_forward(examples=steps, tokens=steps, flops=flops)
    ledger.charge_overhead(examples=1, flops=flops // 3)
    ledger.wall_train_s = wall_s
    ledger.charge_energy(energy_j, "nvml")
    restored = Ledger.from_snapshot(ledger.snapshot())
    assert restored.snapshot() == ledger.snapshot()
    assert restored.flops_total == flops + flops // 3 and restored.energy_method == "nvml"
