"""`step7bench trial`: one trial of the baseline, its cost to target."""

from __future__ import annotations

import argparse
import json

from step7bench.cli import non_negative_int
from step7bench.engine import TrialResult, run_trial
from step7bench.workloads import PRESET_NAMES, get_workload


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("trial", help="run one baseline trial and print its cost to target")
    parser.add_argument("--workload", required=True, help="grammar-lm, code-lm or digits")
    parser.add_argument("--preset", default="small", choices=PRESET_NAMES)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    result = run_trial(get_workload(args.workload, args.preset), args.seed, device=args.device)
    print(json.dumps(result.to_dict()) if args.json else summary(result))
    return 1 if result.status == "failed" else 0


def summary(result: TrialResult) -> str:
    """A few readable lines: outcome, then the ledger by kind of cost."""
    ledger = result.ledger
    outcome = f"{result.status} at step {result.steps_to_target}" if result.steps_to_target else result.status
    lines = [
        f"{result.workload}/{result.preset} seed {result.seed} on {result.device}: {outcome}",
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
