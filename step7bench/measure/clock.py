"""A wall clock that waits for the device before it reads.

CUDA kernels run asynchronously: reading a host clock without synchronising measures
when work was queued, not when it finished (nanoGPT's bench.py synchronises likewise).
"""

from __future__ import annotations

import time

import torch


class Clock:
    """Monotonic seconds; on CUDA, `now()` synchronises the device first."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._sync = torch.device(device).type == "cuda"

    def now(self) -> float:
        if self._sync:
            torch.cuda.synchronize()
        return time.perf_counter()
