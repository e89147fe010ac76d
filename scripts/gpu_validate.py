"""Helpers of scripts/gpu-validate.sh, one subcommand each; the shell script orchestrates.

    python scripts/gpu_validate.py shim SITE_DIR        write step7bench's metadata for an uninstalled run
    python scripts/gpu_validate.py env OUT_JSON         print the device, driver, torch, NVML, bf16
    python scripts/gpu_validate.py peak OUT_JSON        time large matmuls: the bf16 peak this GPU reaches
    python scripts/gpu_validate.py step-times TRIALS_CSV  measured ms per optimizer step of each baseline
    python scripts/gpu_validate.py verdicts SUMMARY_JSON  the claims' verdicts as a short table

Each prints what it found to stdout and exits non-zero only when it could not do its job. Only
the standard library is imported at the top: `shim` runs before the project can be imported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Large enough that launch latency is noise: 2 x 8192^3 = 1.1 TFLOP per product, about 1.4 ms at
# the H200's bf16 peak. On the CPU (the dry run) a small product keeps the step short.
CUDA_MATMUL_SIZE = 8192
CPU_MATMUL_SIZE = 256
WARMUP_PRODUCTS = 3
TIMED_PRODUCTS = 10
ENERGY_PROBE_S = 0.2  # between two reads of NVML's energy counter, to see it move


# -- shim: what `pip install` would record --------------------------------------------------


def write_shim(site: Path) -> Path:
    """A `step7bench-<version>.dist-info` in `site`, as an install writes it, so that
    importlib.metadata finds the distribution's version (the report and `--version` read it) when
    the checkout runs from PYTHONPATH without an install (no setuptools, no network)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{project['name']}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
                                   encoding="utf-8")
    scripts = project.get("scripts", {})
    (info / "entry_points.txt").write_text(
        "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in scripts.items()), encoding="utf-8")
    (info / "top_level.txt").write_text("step7bench\n", encoding="utf-8")
    return info


# -- env ------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """The device, its driver, torch and CUDA, NVML's energy counter and bf16, from the project's own
    code where it has some (the fingerprint and the energy meters), so the check is of that code."""
    import torch

    from step7bench.measure.fingerprint import device_fingerprint

    cuda = torch.cuda.is_available()
    facts = device_fingerprint("cuda:0" if cuda else "cpu")
    return {
        "device": facts["device"], "hardware_class": facts["hardware_class"], "gpu_name": facts["gpu_name"],
        "gpu_driver_version": facts["gpu_driver_version"], "gpu_memory_bytes": facts["gpu_memory_bytes"],
        "cpu_model": facts["cpu_model"], "usable_cores": facts["usable_cores"],
        "python_version": facts["python_version"], "torch_version": facts["torch_version"],
        "torch_cuda_build": facts["torch_cuda_build"], "cudnn_version": facts["cudnn_version"],
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
        "nvml_energy_counter": _energy_counter() if cuda else "not checked: no CUDA device",
        "nvml_power_sampling": _power_sampling() if cuda else "not checked: no CUDA device",
        "engine_bf16_autocast": _engine_uses_autocast(),
    }


def _energy_counter() -> str:
    """Whether nvmlDeviceGetTotalEnergyConsumption works for cuda:0, read as the trials read it."""
    from step7bench.measure.energy import NvmlEnergyCounter, SourceFailed

    try:
        counter = NvmlEnergyCounter(0)
    except SourceFailed as failure:
        return f"does not work ({failure}): trials fall back to power sampling"
    try:
        time.sleep(ENERGY_PROBE_S)
        joules = counter.read_j()
    except SourceFailed as failure:
        return f"opened, then failed ({failure})"
    finally:
        counter.close()
    return f"works ({joules:.2f} J in {ENERGY_PROBE_S:g} s at idle)"


def _power_sampling() -> str:
    from step7bench.measure.energy import POWER_SAMPLE_INTERVAL_S, NvmlPowerSampler, SourceFailed

    try:
        sampler = NvmlPowerSampler(0, POWER_SAMPLE_INTERVAL_S)
    except SourceFailed as failure:
        return f"does not work ({failure})"
    try:
        return f"works ({sampler.first_w:.0f} W now)"
    finally:
        sampler.close()


def _engine_uses_autocast() -> bool:
    """Whether the engine's source calls torch.autocast: the suite's arithmetic assumes bf16 on CUDA."""
    return any("autocast" in path.read_text(encoding="utf-8") for path in (REPO / "step7bench" / "engine").glob("*.py"))


def print_environment(facts: dict[str, Any]) -> None:
    memory = facts["gpu_memory_bytes"]
    rows = [
        ("device", f"{facts['device']} ({facts['hardware_class']})"),
        ("GPU", f"{facts['gpu_name']}, {memory / 2**30:.0f} GiB" if memory else "none (CPU run)"),
        ("driver", facts["gpu_driver_version"] or "-"),
        ("CPU", f"{facts['cpu_model']}, {facts['usable_cores']} usable cores"),
        ("python / torch", f"{facts['python_version']} / {facts['torch_version']}"),
        ("CUDA build / cuDNN", f"{facts['torch_cuda_build'] or 'none'} / {facts['cudnn_version'] or 'none'}"),
        ("bf16 on the GPU", "supported" if facts["bf16_supported"] else "no"),
        ("NVML energy counter", facts["nvml_energy_counter"]),
        ("NVML power sampling", facts["nvml_power_sampling"]),
        ("engine bf16 autocast", "used" if facts["engine_bf16_autocast"]
         else "NOT used: training runs in fp32 (the suite's arithmetic assumes bf16)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


# -- peak -----------------------------------------------------------------------------------


def matmul_peak() -> dict[str, Any]:
    """bf16 matmul throughput: the mean of TIMED_PRODUCTS products after WARMUP_PRODUCTS, timed
    between device synchronisations (CUDA), in TFLOP/s. On the CPU a small product: a dry run."""
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda:0" if cuda else "cpu")
    size = CUDA_MATMUL_SIZE if cuda else CPU_MATMUL_SIZE
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=generator)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16, generator=generator)
    for _ in range(WARMUP_PRODUCTS):
        torch.matmul(a, b)
    _synchronize(device)
    start_s = time.perf_counter()
    for _ in range(TIMED_PRODUCTS):
        torch.matmul(a, b)
    _synchronize(device)
    seconds = time.perf_counter() - start_s
    tflops = 2 * size**3 * TIMED_PRODUCTS / seconds / 1e12
    return {"device": str(device), "dtype": "bfloat16", "size": size, "products": TIMED_PRODUCTS,
            "seconds": seconds, "tflops": tflops}


def _synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- step-times -----------------------------------------------------------------------------


def step_times(trials_csv: Path) -> list[tuple[str, float, int]]:
    """(workload/preset, median ms of training wall per optimizer step, baseline trials) from the
    exported trials: the figure the suite's arithmetic estimated."""
    import pandas as pd

    trials = pd.read_csv(trials_csv)
    baseline = trials[(trials["arm"] == "baseline") & (trials["steps"] > 0)]
    rows = []
    for (workload, preset), group in baseline.groupby(["workload", "preset"]):
        per_step_ms = 1e3 * group["wall_train_s"] / group["steps"]
        rows.append((f"{workload}/{preset}", float(per_step_ms.median()), len(group)))
    return rows


# -- verdicts -------------------------------------------------------------------------------

VERDICT_COLUMNS = ("claim", "workload", "claimed", "speedup", "95% interval", "verdict")


def verdict_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per (claim, workload) of summary.json's `claims`: the claimed and the measured
    speedup (`speedup`; `median` in summaries of schema 1), its interval and the verdict. An
    infinite figure is null in the file and named in the record's `infinite` member."""
    rows = []
    for claim in summary.get("claims", []):
        infinite = claim.get("infinite", {})
        low, high, measured = (_speedup(claim.get(key), key in infinite)
                               for key in ("ci_low", "ci_high", "speedup" if "speedup" in claim else "median"))
        rows.append((claim["name"], claim["workload"], _speedup(claim.get("claimed"), False), measured,
                     f"{low}-{high}", claim.get("verdict", "?")))
    return rows


def verdict_title(summary: dict[str, Any]) -> str:
    """What the claims were judged on: the metric and accounting of the first claim (one claims
    file judges every claim on one metric), the interval's confidence and the seeds."""
    first = summary["claims"][0]
    confidence = first.get("confidence", 0.95)
    return (f"claims judged on {first.get('metric', '?')}, {first.get('accounting', '?')}; "
            f"{confidence:.0%} intervals, seeds per arm: {first.get('n_seeds', '?')}")


def _speedup(value: float | None, infinite: bool) -> str:
    if infinite:
        return "inf"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}x"


def format_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(f"{cell:<{width}}" for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]
    return "\n".join(lines)


# -- the command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    for verb in ("shim", "env", "peak", "step-times", "verdicts"):
        verbs.add_parser(verb).add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.verb == "shim":
        print(f"wrote {write_shim(args.path)}")
    elif args.verb == "env":
        facts = environment()
        print_environment(facts)
        args.path.write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    elif args.verb == "peak":
        peak = matmul_peak()
        args.path.write_text(json.dumps(peak, indent=1) + "\n", encoding="utf-8")
        where = "GPU" if peak["device"].startswith("cuda") else "CPU (a dry run: not a GPU figure)"
        print(f"  bf16 matmul {peak['size']}^3 on {where}: {peak['tflops']:.3g} TFLOP/s "
              f"(mean of {peak['products']} products after {WARMUP_PRODUCTS} warm-ups)")
    elif args.verb == "step-times":
        for workload, milliseconds, trials in step_times(args.path):
            print(f"  {workload}: {milliseconds:.2f} ms of training per optimizer step "
                  f"(median of {trials} baseline trials; compare suites/gpu.toml's estimate)")
    else:
        if not args.path.is_file():
            print(f"no {args.path}: the run wrote no report")
            return 1
        summary = json.loads(args.path.read_text(encoding="utf-8"))
        rows = verdict_rows(summary)
        if not rows:
            print(f"no claims in {args.path}")
            return 1
        print(verdict_title(summary))
        print(format_table(VERDICT_COLUMNS, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
