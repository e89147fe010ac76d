"""`step7bench list`: the workloads and their presets, the techniques, and the suites."""

from __future__ import annotations

import argparse

from step7bench.cli.arguments import add_plugin_argument, add_verb

DESCRIPTION = """
List what a suite or a trial can name: the workloads with their presets (step budget, seconds
budget, default target), the techniques with their stages and random controls, and the shipped
suites with their number of trials (or why one does not validate).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "list", summary="list workloads, presets, techniques and suites",
                      description=DESCRIPTION, examples=["step7bench list", "step7bench list --plugin my_technique.py"])
    add_plugin_argument(parser)
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from step7bench.harness.registry import BUILT_IN, load_registry
    from step7bench.harness.suite import shipped_suites

    registry = load_registry(args.plugin)

    def source(kind: str, name: str) -> str:
        where = registry.sources[f"{kind} {name}"]
        return "" if where == BUILT_IN else f" [{where}]"

    print("workloads (preset: step budget, seconds budget, default target val loss):")
    for name, cls in sorted(registry.workloads.items()):
        print(f"  {name} ({cls.task}): {cls.description}{source('workload', name)}")
        for preset in cls.presets.values():
            print(f"    {preset.name}: {preset.budget.max_steps} steps, {preset.budget.max_seconds:g} s, "
                  f"target {preset.target_val_loss:g}")
    print("techniques (stages; random control):")
    for spec in registry.techniques.values():
        control = ("positive control" if spec.positive_control else "is a control" if spec.is_control
                   else f"control {spec.control}" if spec.control else "no control")
        print(f"  {spec.name} ({', '.join(spec.stages)}; {control}): {spec.summary}{source('technique', spec.name)}")
    print("suites:")
    for name in shipped_suites():
        print(f"  {name}: {_suite_line(name)}")
    return 0


def _suite_line(name: str) -> str:
    from step7bench.errors import UserError
    from step7bench.harness.runner import plan
    from step7bench.harness.suite import load_suite

    try:
        suite = load_suite(name)
    except UserError as exc:
        return f"does not validate: {exc}"
    return f"{len(plan(suite))} trials; {suite.description}"
