"""The cost clock of one trial: what training, technique overhead and audits spend, in seconds
and joules, booked to the ledger one segment at a time.

A *segment* is the training time between two validation checks (evaluation is off the clock).
Inside an open segment a technique books its own work with `overhead()` (charged: wall seconds
to `wall_overhead_s`, joules stay in `energy_j`, which counts training and overhead) or
`audit()` (not charged: work that checks a technique, booked to `wall_audit_s` and
`energy_audit_j`). Closing the segment books the rest of its wall time as training. This one
object owns that bookkeeping, so nothing else keeps counters that must be drained in step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from step7bench.engine.ledger import Ledger
from step7bench.measure.clock import Clock
from step7bench.measure.energy import EnergyMeter


class CostClock:
    """Segments of one trial, with the overhead and audit windows booked inside them.

    Attribution on CUDA: the clock read that opens `overhead()` or `audit()` synchronises the
    device, so the wait for training kernels still queued lands *before* the window, in training
    time, where that work belongs; the read that closes the window waits for the kernels queued
    inside it, so the technique's own device work is in its window.
    """

    def __init__(self, ledger: Ledger, clock: Clock, meter: EnergyMeter) -> None:
        self.ledger, self.clock, self.meter = ledger, clock, meter
        self._segment_start_s: float | None = None
        self._spent_before_s = 0.0
        self._booked_s = 0.0  # overhead and audit seconds inside the open segment
        self._audit_j = 0.0  # audit joules inside the open segment
        self._overhead_depth = 0

    # -- segments -------------------------------------------------------------------------
    def open_segment(self) -> None:
        self.meter.begin_window("train")
        self._booked_s = self._audit_j = 0.0
        self._spent_before_s = self.ledger.wall_s
        self._segment_start_s = self.clock.now()

    def close_segment(self) -> None:
        """Book the segment: its wall time less overhead and audit as training, its joules less
        audit joules as training + overhead energy; device-seconds follow the wall time."""
        if self._segment_start_s is None:
            raise RuntimeError("close_segment() without an open segment")
        elapsed_s = self.clock.now() - self._segment_start_s
        self._segment_start_s = None
        ledger = self.ledger
        ledger.wall_train_s += max(0.0, elapsed_s - self._booked_s)
        ledger.device_s = ledger.wall_s * ledger.world_size
        energy = self.meter.end_window("train")
        ledger.charge_energy(max(0.0, energy.energy_j - self._audit_j), energy.method)

    def spent_s(self) -> float:
        """Cost-clock seconds so far (unsynced inside a segment: a budget check, not a figure)."""
        if self._segment_start_s is None:
            return self.ledger.wall_s
        return self._spent_before_s + (self.clock.peek() - self._segment_start_s)

    # -- windows inside a segment -----------------------------------------------------------
    @contextlib.contextmanager
    def overhead(self) -> Iterator[None]:
        """Book the enclosed wall time as technique overhead (nested uses count once)."""
        self._overhead_depth += 1
        start_s = self.clock.now() if self._overhead_depth == 1 else 0.0
        try:
            yield
        finally:
            self._overhead_depth -= 1
            if self._overhead_depth == 0:
                elapsed_s = self.clock.now() - start_s
                self.ledger.wall_overhead_s += elapsed_s
                self._booked_s += elapsed_s

    @contextlib.contextmanager
    def audit(self) -> Iterator[None]:
        """Book the enclosed work as audit, charged to neither training nor overhead. Not to be
        nested in `overhead()`."""
        if self._overhead_depth:
            raise RuntimeError("ctx.audit() inside ctx.overhead() would book its time twice")
        self.meter.begin_window("audit")
        start_s = self.clock.now()
        try:
            yield
        finally:
            elapsed_s = self.clock.now() - start_s
            energy = self.meter.end_window("audit")
            self.ledger.wall_audit_s += elapsed_s
            self.ledger.charge_energy(energy.energy_j, energy.method, bucket="audit")
            self._booked_s += elapsed_s
            self._audit_j += energy.energy_j
