"""What a result was measured on and with: the device fingerprint and the git provenance.

`hardware_class` is the short, stable name under which results of one kind of hardware are
compared; wall-clock and energy figures from two classes are never compared silently.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

from step7bench.measure.energy import NvmlDevice, SourceFailed

GIT_TIMEOUT_S = 5.0
"""Seconds one git command may take before provenance gives up on it (a hung network
filesystem must not hang a benchmark run)."""

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def device_fingerprint(device: torch.device | str) -> dict[str, Any]:
    """The hardware and software a trial on `device` runs on.

    Keys: device, hardware_class, cpu_model, logical_cores (the machine's), usable_cores
    (those this process may run on), torch_threads (this process's: each trial records the threads
    it trained with, which differ in a worker), gpu_name, gpu_driver_version,
    gpu_memory_bytes and gpu_facts_from ("nvml" or "torch"; the four are None off CUDA),
    torch_version, torch_cuda_build and cudnn_version (None in a CPU build), python_version,
    platform.
    """
    device = torch.device(device)
    cpu_model = _cpu_model()
    usable_cores = _usable_cores()
    gpu = _gpu_facts(device) if device.type == "cuda" else dict.fromkeys(_GPU_KEYS)
    return {
        "device": str(device),
        "hardware_class": _hardware_class(device, cpu_model, usable_cores, gpu["gpu_name"]),
        "cpu_model": cpu_model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores,
        "torch_threads": torch.get_num_threads(),
        **gpu,
        "torch_version": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def git_provenance(path: Path | str | None = None) -> dict[str, Any]:
    """The commit and a dirty flag of the git checkout holding `path` (default: this package).

    Returns ``{"commit": str, "dirty": bool, "reason": None}``, or ``{"commit": None,
    "dirty": None, "reason": why}`` outside a checkout or without git. Dirty means a tracked
    file differs from the commit; untracked files (results, caches) do not count.
    """
    where = Path(path) if path is not None else _PACKAGE_DIR
    try:
        commit = _git(where, "rev-parse", "HEAD")
        changes = _git(where, "status", "--porcelain", "--untracked-files=no")
    except _GitUnavailable as error:
        return {"commit": None, "dirty": None, "reason": str(error)}
    return {"commit": commit, "dirty": bool(changes), "reason": None}


# -- CPU ---------------------------------------------------------------------------------


def _cpu_model() -> str:
    """The "model name" of /proc/cpuinfo (Linux on x86); else what `platform` knows."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""  # not Linux: no /proc
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int:
    """Cores this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# -- GPU ---------------------------------------------------------------------------------

_GPU_KEYS = ("gpu_name", "gpu_driver_version", "gpu_memory_bytes", "gpu_facts_from")


def _gpu_facts(device: torch.device) -> dict[str, Any]:
    """Name, driver and memory of the GPU behind `device`: NVML's, else what torch knows."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        return _gpu_facts_nvml(index)
    except SourceFailed:
        properties = torch.cuda.get_device_properties(index)
        return dict(zip(_GPU_KEYS, (properties.name, None, int(properties.total_memory), "torch")))


def _gpu_facts_nvml(index: int) -> dict[str, Any]:
    nvml = NvmlDevice(index)
    try:
        facts = (
            nvml.query("nvmlDeviceGetName"),
            nvml.call("nvmlSystemGetDriverVersion"),
            int(nvml.query("nvmlDeviceGetMemoryInfo").total),
            "nvml",
        )
    finally:
        nvml.close()
    return dict(zip(_GPU_KEYS, facts))


# -- hardware class ----------------------------------------------------------------------


def _slug(text: str) -> str:
    """Lower case, trademark marks dropped, every other run of symbols one hyphen."""
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def _hardware_class(device: torch.device, cpu_model: str, usable_cores: int, gpu_name: str | None) -> str:
    """``cuda-<gpu>`` on CUDA, ``cpu-<model>-<cores>c`` on CPU, ``<type>-<cpu model>`` else.

    On CPU the usable core count is part of the class: the same model with half the cores
    is other hardware for wall-clock purposes.
    """
    if device.type == "cuda":
        return f"cuda-{_slug(gpu_name or 'unknown')}"
    if device.type == "cpu":
        return f"cpu-{_slug(cpu_model)}-{usable_cores}c"
    return f"{device.type}-{_slug(cpu_model)}"


# -- git ---------------------------------------------------------------------------------


class _GitUnavailable(Exception):
    """No commit can be named: not a checkout, no git, or git hung."""


def _git(where: Path, *args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh (and so lock) the index of a
    # checkout that someone may be committing in.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args],
            capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=False,
        )
    except FileNotFoundError as error:
        raise _GitUnavailable("git is not installed") from error
    except subprocess.TimeoutExpired as error:
        raise _GitUnavailable(f"git {args[0]} took over {GIT_TIMEOUT_S:g} s") from error
    if done.returncode != 0:
        first_line = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0]
        raise _GitUnavailable(f"git {args[0]} in {where}: {first_line}")
    return done.stdout.strip()
