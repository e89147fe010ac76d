"""`step7bench trial`: one trial, the baseline or a stack of techniques, and its cost to target."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from step7bench.cli.arguments import (add_device_argument, add_plugin_argument, add_threads_argument, add_verb,
                                      apply_threads, non_negative_int)
from step7bench.cli.choices import PRESET_NAMES, WORKLOAD_NAMES
from step7bench.errors import unknown_message
from step7bench.errors import UserError

if TYPE_CHECKING:
    from step7bench.engine import Plugin, TrialResult
    from step7bench.workloads import Workload

DESCRIPTION = """
Train one workload from a seeded initialisation until its validation loss first reaches the
preset's target or the budget runs out, and print what it cost: steps, examples, tokens, FLOPs,
wall-clock, device-seconds and energy. Without --technique it is the baseline; each --technique
adds one technique (with its default settings) to the stack.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_verb(subparsers, "trial", summary="run one trial (baseline or a stack); print its cost to target",
                      description=DESCRIPTION,
                      examples=["step7bench trial --workload digits --preset micro --device cpu --threads 1",
                                "step7bench trial --workload grammar-lm --preset micro --technique curriculum "
                                "--technique gradient_caching --json"])
    parser.add_argument("--workload", required=True, metavar="NAME",
                        help=f"one of {', '.join(WORKLOAD_NAMES)}, or a plugin's (see --plugin)")
    parser.add_argument("--preset", default="small", choices=PRESET_NAMES,
                        help="model and budget size: micro (seconds, tests), small (a 2-core CPU), large (a GPU); "
                             "default small")
    parser.add_argument("--technique", action="append", default=[], metavar="NAME",
                        help="a technique to stack (repeat for several; `step7bench list` names them); "
                             "default: none, the baseline")
    add_plugin_argument(parser)
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                        help="seed of every random source of the trial (default 0)")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (status, steps_to_target, curve, ledger) instead of a summary")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from step7bench.engine import run_trial
    from step7bench.harness.registry import load_registry

    registry = load_registry(args.plugin)
    if args.workload not in registry.workloads:
        raise UserError(unknown_message("workload", args.workload, registry.workloads))
    specs = _technique_specs(args.technique, registry.techniques)
    apply_threads(args)
    workload = registry.workload(args.workload, args.preset)
    result = run_trial(workload, args.seed, _plugins(specs, workload), device=args.device)
    print(json.dumps(result.to_dict()) if args.json else summary(result))
    return 1 if result.status == "failed" else 0


def _technique_specs(names: list[str], registry) -> list:
    """The registry's specs of `names` in the registry's order, which is the order suites stack
    them in, so a stack's result does not depend on the order of the flags. An unknown or
    repeated name is a UserError (with a "did you mean")."""
    for name in names:
        if name not in registry:
            raise UserError(f"--technique: {unknown_message('technique', name, registry)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"--technique {repeated[0]} is given twice")
    return [spec for name, spec in registry.items() if name in names]


def _plugins(specs: list, workload: Workload) -> list[Plugin]:
    """A fresh plugin of each technique at its default settings, checked first against the
    workload's task and against each other's stages (two techniques filling one stage)."""
    from step7bench.engine import StageConflict, check_compatible

    for spec in specs:
        if workload.task not in spec.tasks:
            raise UserError(f"--technique {spec.name} does not apply to {workload.name}, a {workload.task} workload "
                            f"(it applies to {', '.join(sorted(spec.tasks))})")
    try:
        check_compatible({spec.name: list(spec.stages) for spec in specs})
    except StageConflict as exc:
        raise UserError(f"--technique: these techniques cannot be stacked: {exc}") from None
    return [spec.plugin(workload, {}) for spec in specs]


def summary(result: TrialResult) -> str:
    """A few readable lines: outcome, then the ledger by kind of cost."""
    ledger = result.ledger
    outcome = f"{result.status} at step {result.steps_to_target}" if result.steps_to_target else result.status
    stack = f" with {'+'.join(result.techniques)}" if result.techniques else ""
    lines = [
        f"{result.workload}/{result.preset} seed {result.seed} on {result.device}{stack}: {outcome}",
        f"  target val loss {result.target_val_loss:.4f}, best reached {result.best_val_loss:.4f}",
        f"  steps {ledger.steps}, examples fwd/bwd {ledger.examples_forward}/{ledger.examples_backward}, "
        f"tokens fwd {ledger.tokens_forward}",
        f"  FLOPs fwd {ledger.flops_forward:.3e}, bwd {ledger.flops_backward:.3e}, overhead {ledger.flops_overhead:.3e}",
        f"  wall train {ledger.wall_train_s:.2f} s, overhead {ledger.wall_overhead_s:.2f} s, "
        f"eval (not cost) {ledger.wall_eval_s:.2f} s, device {ledger.device_s:.2f} s",
        f"  energy {ledger.energy_j:.1f} J ({ledger.energy_method}), peak memory "
        f"{ledger.peak_memory_bytes / 2**20:.0f} MiB",
    ]
    if result.error:
        lines.append("  error: " + result.error.splitlines()[-1])
    return "\n".join(lines)
