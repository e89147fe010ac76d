"""`step7bench list`: the workloads and their presets, the techniques, and the suites."""

from __future__ import annotations

import argparse

from step7bench.errors import UserError
from step7bench.harness.runner import plan
from step7bench.harness.suite import load_suite, shipped_suites
from step7bench.techniques import technique_specs
from step7bench.workloads import get_workload, workload_names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list workloads, presets, techniques and suites")
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    print("workloads (preset: step budget, seconds budget, default target val loss):")
    for name in workload_names():
        workload = get_workload(name, "micro")
        print(f"  {name} ({workload.task}): {workload.description}")
        for preset in workload.presets.values():
            print(f"    {preset.name}: {preset.budget.max_steps} steps, {preset.budget.max_seconds:g} s, "
                  f"target {preset.target_val_loss:g}")
    print("techniques (stages; random control):")
    for spec in technique_specs().values():
        control = "is a control" if spec.is_control else (f"control {spec.control}" if spec.control else "no control")
        print(f"  {spec.name} ({', '.join(spec.stages)}; {control}): {spec.summary}")
    print("suites:")
    for name in shipped_suites():
        print(f"  {name}: {_suite_line(name)}")
    return 0


def _suite_line(name: str) -> str:
    try:
        suite = load_suite(name)
    except UserError as exc:
        return f"does not validate: {exc}"
    return f"{len(plan(suite))} trials; {suite.description}"
