"""A wall clock that waits for the device before it reads.

CUDA kernels run asynchronously: reading a host clock without synchronising measures
when work was queued, not when it finished (nanoGPT's bench.py synchronises likewise).
"""

from __future__ import annotations

import time

import torch


class Clock:
    """Monotonic seconds; on CUDA, `now()` synchronises the clock's own device first.

    The device is named on every synchronise: with several GPUs in one host (a rank per GPU),
    a bare `torch.cuda.synchronize()` waits for the *current* device, which need not be the one
    the trial runs on. A "cuda" device without an index means the current device.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        device = torch.device(device)
        self._cuda_device = device if device.type == "cuda" else None

    def now(self) -> float:
        if self._cuda_device is not None:
            torch.cuda.synchronize(self._cuda_device)
        return self.peek()

    @staticmethod
    def peek() -> float:
        """The same clock without waiting for the device: for deciding when to stop (a budget
        check every step must not stall the queue), never for a figure."""
        return time.perf_counter()
