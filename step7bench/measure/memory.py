"""Peak memory of a trial, in bytes.

On CUDA: the most memory torch's caching allocator has handed to tensors since the last
reset (`torch.cuda.max_memory_allocated`); memory the allocator caches but has not handed
out is not counted. On CPU: the peak resident set size of the whole process
(`getrusage`'s ``ru_maxrss``), which the kernel offers no way to reset, so it is the peak
since the process started, whatever ran before the trial included.
"""

from __future__ import annotations

import resource
import sys

import torch

# ru_maxrss is in kilobytes on Linux and in bytes on macOS (getrusage(2) on each).
_MAXRSS_UNIT_BYTES = 1 if sys.platform == "darwin" else 1024


def peak_memory_bytes(device: torch.device | str) -> int:
    """Peak bytes on `device` (CUDA: since the last reset; CPU: since the process started)."""
    device = _checked(device)
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT_BYTES


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new CUDA peak from the memory in use now. On CPU it does nothing: the
    process's peak resident set size cannot be reset."""
    device = _checked(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _checked(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    if device.type not in ("cuda", "cpu"):
        raise ValueError(f"device: peak memory is measured on cuda or cpu, not {device.type}")
    return device
