"""Calibration: `step7bench calibrate --suite NAME` sets each workload's validation target from the
baseline, measures the weakened reference the positive control is judged against, and tunes every
technique over its grid, all on calibration seeds set apart from the judged ones
(CALIBRATION_SEED_OFFSET + i), so no arm is judged on the seeds it was fitted to.

Targets. The baseline trains its whole budget with validation checks at the finest spacing. A
seed's *sustained best* is the lowest level its validation loss stays at or below for the
workload's `confirm_steps` (the rule that decides a crossing, engine/target.py). The target is the
median sustained best raised by a stated margin (AlgoPerf sets its targets from a tuned baseline
the same way, Dahl et al. 2023); the share of calibration seeds whose sustained best reaches it
is reported, with a warning under 90% (DESIGN.md §2). The baseline's steps to that target on
each seed are recorded (the warm-start positive control needs them below its handover).

Weakened reference. The baseline at a scaled learning rate (`lr_scale`) trains its whole budget
on the same seeds, every check made too. It cannot reach the baseline's own target (set near the
best the tuned baseline holds within the budget), so it gets a target of its own, set from its
curves the same way: the *weak target*. Replaying both sets of curves against it gives each
seed's steps to it; the geometric mean of weakened / baseline steps is the speedup the
weak-reference positive control must find on the judged seeds, where both arms train to the
weak target.

Tuning (tuning parity: the baseline's learning rate was tuned on a grid; so is every technique).
Every technique of the suite with a grid runs alone at each grid point on the first
`tuning_seeds` calibration seeds; the winner is the point with the lowest median cost to target
on the tuning metric (all-in: pretraining counted), a miss counting as infinite. The grid, each
point's result and what the tuning cost are written beside the winner. The tuning's own cost is
reported, not charged to the arm (AlgoPerf's external tuning is not charged either).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from step7bench.engine import EvalPoint, TrialResult, resolve_device
from step7bench.engine.target import CheckRule, TargetWatch
from step7bench.errors import UserError
from step7bench.harness.executor import Deadline, Executor
from step7bench.harness.matrix import Arm, TrialSpec
from step7bench.harness.runner import utc_now
from step7bench.harness.checking import Document
from step7bench.harness.suite import TUNING_RECORD_KEYS, Suite, WorkloadEntry
from step7bench.techniques.positive_controls import WEAK_REFERENCE
from step7bench.measure.fingerprint import device_fingerprint, git_provenance
from step7bench.metric_names import METRIC_COLUMNS, PRETRAIN_COLUMNS
from step7bench.paths import atomic_write

CALIBRATION_SEED_OFFSET = 20_000
REACH_RATE_GOAL = 0.9

Report = Callable[[str], None]


# -- pure helpers --------------------------------------------------------------------------------


def target_from(best_val_losses: list[float], margin: float) -> tuple[float, float]:
    """(target, median): the median of the best losses, raised by the relative `margin`."""
    if not best_val_losses:
        raise ValueError("best_val_losses is empty")
    median = statistics.median(best_val_losses)
    return median * (1.0 + margin), median


def sustained_best(curve: Sequence[tuple[int, float]], confirm_steps: int) -> float:
    """The lowest loss the curve stays at or below over `confirm_steps` steps: over every check,
    the highest loss from it to `confirm_steps` later, minimised. Windows that run past the
    curve's end do not count (the trial could not confirm them). inf for an empty curve."""
    best = math.inf
    for index, (step, _) in enumerate(curve):
        window = [loss for later, loss in curve[index:] if later <= step + confirm_steps]
        if curve[-1][0] >= step + confirm_steps:
            best = min(best, max(window))
    return best


def crossing_step(curve: Sequence[tuple[int, float]], rule: CheckRule, target: float) -> int | None:
    """The step at which a trial checking every point of `curve` would have confirmed reaching
    `target` (its time to target), None if it never does."""
    watch = TargetWatch(rule, target)
    for step, loss in curve:
        crossing = watch.record(step, loss)
        if crossing is not None:
            return crossing.step
    return None


def reach_warning(workload: str, reach_rate: float, seeds: int) -> str | None:
    if reach_rate >= REACH_RATE_GOAL:
        return None
    return (f"warning: {workload}: the baseline reaches its target on {reach_rate:.0%} of {seeds} calibration seeds "
            f"(goal {REACH_RATE_GOAL:.0%}): raise the workload's calibration_margin or its budget")


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetRecord:
    """A target and how it was set (the fields of a `[[target]]` entry)."""

    workload: str
    preset: str
    target_val_loss: float
    median_best_val_loss: float
    margin: float
    calibration_seeds: list[int]
    best_val_losses: list[float]
    statuses: list[str]
    max_steps: int
    max_seconds: float
    hardware_class: str
    git_commit: str
    calibrated_at: str
    check_rule: dict[str, Any] = field(default_factory=dict)
    reach_rate: float = 1.0
    baseline_steps_to_target: list[int | None] = field(default_factory=list)
    weak_reference: dict[str, Any] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return (f"median sustained best validation loss (the lowest level held for {self.check_rule.get('confirm_steps', 0)}"
                f" steps) of the baseline over {len(self.calibration_seeds)} seeds within the budget, "
                f"times (1 + {self.margin:g})")


@dataclass(frozen=True)
class TuningRecord:
    """A technique tuned on one workload (the fields of a `[[tuning]]` entry)."""

    workload: str
    preset: str
    technique: str
    metric: str
    winner: dict[str, Any]
    grid: list[dict[str, Any]]
    seeds: list[int]
    tuning_cost: dict[str, float]


@dataclass(frozen=True)
class Calibrated:
    targets: list[TargetRecord]
    tunings: list[TuningRecord]
    warnings: list[str]


# -- the calibration -------------------------------------------------------------------------------


def calibrate(suite: Suite, *, device: str = "auto", seeds: int | None = None, margin: float | None = None,
              tune: bool = True, tuning_seeds: int | None = None, tuning_metric: str = "device_hours",
              jobs: int = 1, threads: int | None = None, deadline: Deadline | None = None,
              report: Report = print) -> Calibrated:
    """Targets, the weakened reference and the techniques' tuning for every workload of `suite`.
    Past a `deadline`, the targets still need every baseline run; a weakened reference or a
    technique whose trials did not all start is left out, and a warning says so."""
    if tuning_metric not in METRIC_COLUMNS:
        raise UserError(f"unknown tuning metric {tuning_metric!r} (choose from {', '.join(METRIC_COLUMNS)})")
    torch_device = resolve_device(device)
    executor = Executor(suite.registry, torch_device, jobs=jobs, threads=threads, deadline=deadline)
    count = seeds if seeds is not None else suite.calibration_seeds
    seed_list = [CALIBRATION_SEED_OFFSET + i for i in range(count)]
    context = {"hardware_class": device_fingerprint(torch_device)["hardware_class"],
               "git_commit": git_provenance()["commit"] or "unknown"}
    weak = {WEAK_REFERENCE: suite.settings_for(WEAK_REFERENCE)}
    # Every baseline first: a deadline may cut the weakened references, never a target's runs. The
    # references are run only for a suite whose arms include the positive control that needs them.
    baselines = [_calibration_trial(entry, seed, dense=True) for entry in suite.workloads for seed in seed_list]
    references = [_calibration_trial(entry, seed, (WEAK_REFERENCE,), weak, dense=True, label=WEAK_REFERENCE)
                  for entry in suite.workloads for seed in seed_list if "positive_controls" in suite.arm_groups]
    dense = _run(executor, baselines + references, report)
    unrun_baselines = [trial for trial in executor.skipped if trial.arm.name == "baseline"]
    if unrun_baselines:
        raise UserError(f"calibration ran past its deadline before the baseline's {len(unrun_baselines)} last "
                        "run(s): no target written; give it more time or fewer seeds")
    targets = []
    for entry in suite.workloads:
        runs = {label: [dense.get((entry.key, label, seed)) for seed in seed_list]
                for label in ("baseline", WEAK_REFERENCE)}
        record = _target(suite, entry, runs["baseline"], seed_list, margin, context)
        reference = _weak_reference(runs, record) if None not in runs[WEAK_REFERENCE] else {}
        targets.append(dataclasses.replace(record, weak_reference=reference))
    retargeted = [dataclasses.replace(entry, target_val_loss=record.target_val_loss)
                  for entry, record in zip(suite.workloads, targets)]
    warnings = [w for record in targets
                if (w := reach_warning(f"{record.workload}/{record.preset}", record.reach_rate, count))]
    tuning_count = min(count, tuning_seeds or suite.calibration_seeds)
    results = _run(executor, _tuning_trials(suite, retargeted, seed_list[:tuning_count]) if tune else [], report)
    tunings = [_tuning(suite, entry, technique, seed_list[:tuning_count], tuning_metric, results)
               for entry in retargeted for technique in _tuned_techniques(suite, entry) if tune]
    warnings += [f"warning: the deadline left {len(executor.skipped)} calibration trial(s) unrun: "
                 f"{', '.join(sorted({f'{t.workload.key} {t.arm.name}' for t in executor.skipped}))} left out"
                 ] if executor.skipped else []
    return Calibrated(targets, [t for t in tunings if t is not None], warnings)


def _calibration_trial(entry: WorkloadEntry, seed: int, techniques: tuple[str, ...] = (),
                       settings: Mapping[str, Mapping[str, Any]] | None = None, *, dense: bool = False,
                       label: str = "baseline") -> TrialSpec:
    """A calibration trial: the baseline on its own budget with every check made (dense), or an
    arm on the judged arms' budget (headroom included) to the calibrated target."""
    if dense:
        entry = dataclasses.replace(entry, target_val_loss=-math.inf,
                                    budget=dataclasses.replace(entry.budget, headroom=1.0))
    return TrialSpec(entry, Arm(label, "calibration", techniques), seed, dict(settings or {}), dense_checks=dense)


def _run(executor: Executor, trials: list[TrialSpec], report: Report) -> dict[tuple[str, str, int], TrialResult]:
    results = {}
    for finished in executor.run(trials):
        result, trial = finished.result, finished.trial
        if result.status == "failed":
            raise UserError(f"calibrating {trial.workload.key}: {trial.arm.name} seed {trial.seed} failed: "
                            f"{(result.error or '').strip().splitlines()[-1]}")
        report(f"{trial.workload.key} {trial.arm.name} seed {trial.seed}: {_outcome(result)}")
        results[(trial.workload.key, trial.arm.name, trial.seed)] = result
    return results


def _outcome(result: TrialResult) -> str:
    if result.status == "reached":
        return f"reached at step {result.steps_to_target}"
    return f"best val loss {result.best_val_loss:.4f} ({result.status})"


def _curve(points: Sequence[EvalPoint]) -> list[tuple[int, float]]:
    return [(point.step, point.val_loss) for point in points]


def _sustained_bests(results: Sequence[TrialResult], confirm_steps: int) -> list[float]:
    """Each run's sustained best validation loss; a diverged run's is infinite (it never held one)."""
    return [sustained_best(_curve(r.curve), confirm_steps) if r.status != "diverged" else math.inf for r in results]


def _target(suite: Suite, entry: WorkloadEntry, results: list[TrialResult], seeds: list[int],
            margin: float | None, context: Mapping[str, str]) -> TargetRecord:
    workload = suite.registry.workload(entry.name, entry.preset, entry.data_seed)
    rule = CheckRule.of(dataclasses.replace(workload.hparams, eval_fine_band=math.inf))
    best = _sustained_bests(results, rule.confirm_steps)
    chosen_margin = next(m for m in (margin, entry.calibration_margin, suite.calibration_margin) if m is not None)
    target, median = target_from(best, chosen_margin)
    if not math.isfinite(target):
        raise UserError(f"calibrating {entry.key}: the baseline diverged on most seeds; no target can be set")
    steps = [crossing_step(_curve(r.curve), rule, target) for r in results]
    return TargetRecord(
        workload=entry.name, preset=entry.preset, target_val_loss=target, median_best_val_loss=median,
        margin=chosen_margin, calibration_seeds=seeds, best_val_losses=best,
        statuses=["diverged" if r.status == "diverged" else "ran the full budget" for r in results],
        max_steps=entry.budget.max_steps, max_seconds=entry.budget.max_seconds, calibrated_at=utc_now(),
        check_rule=dataclasses.asdict(CheckRule.of(workload.hparams)),
        reach_rate=sum(loss <= target for loss in best) / len(best), baseline_steps_to_target=steps, **context)


def _tuned_techniques(suite: Suite, entry: WorkloadEntry) -> list[str]:
    specs = suite.registry.techniques
    return [name for name in suite.techniques if specs[name].grid and entry.task in specs[name].tasks]


def _grid_label(technique: str, index: int) -> str:
    return f"{technique}@grid{index}"


def _tuning_trials(suite: Suite, entries: Sequence[WorkloadEntry], tuning_seeds: list[int]) -> list[TrialSpec]:
    """Every grid point of every technique, to the calibrated target."""
    specs = suite.registry.techniques
    trials = []
    for entry in entries:
        for technique in _tuned_techniques(suite, entry):
            for index, point in enumerate(specs[technique].grid):
                settings = {technique: {**suite.settings_for(technique), **point}}
                trials += [_calibration_trial(entry, seed, (technique,), settings, label=_grid_label(technique, index))
                           for seed in tuning_seeds]
    return trials


def _weak_reference(runs: Mapping[str, list[TrialResult]], record: TargetRecord) -> dict[str, Any]:
    """The weak target (from the weakened reference's own curves, as the baseline's target is set
    from the baseline's) and the baseline's step speedup over the weakened reference to it."""
    rule = CheckRule(**record.check_rule)
    dense_rule = dataclasses.replace(rule, fine_band=math.inf)
    best = _sustained_bests(runs[WEAK_REFERENCE], rule.confirm_steps)
    weak_target, _ = target_from(best, record.margin)
    if not math.isfinite(weak_target):
        return {}
    per_seed = []
    for baseline, weak in zip(runs["baseline"], runs[WEAK_REFERENCE]):
        base_steps = crossing_step(_curve(baseline.curve), dense_rule, weak_target)
        weak_steps = crossing_step(_curve(weak.curve), dense_rule, weak_target)
        per_seed.append(weak_steps / base_steps if base_steps and weak_steps else None)
    known = [value for value in per_seed if value is not None]
    speedup = math.exp(statistics.fmean(math.log(v) for v in known)) if known else None
    return {"technique": WEAK_REFERENCE, "target_val_loss": weak_target, "metric": "steps", "speedup": speedup,
            "per_seed": per_seed, "reached": len(known), "of": len(per_seed)}


def _tuning(suite: Suite, entry: WorkloadEntry, technique: str, seeds: list[int], metric: str,
            results: Mapping[tuple[str, str, int], TrialResult]) -> TuningRecord | None:
    """The grid's results and winner; None when a deadline left any of its trials unrun."""
    points = suite.registry.techniques[technique].grid
    if any((entry.key, _grid_label(technique, i), seed) not in results for i in range(len(points)) for seed in seeds):
        return None
    grid = []
    spent: dict[str, float] = {"steps": 0.0, "flops": 0.0, "device_s": 0.0}
    for index, point in enumerate(points):
        trials = [results[(entry.key, _grid_label(technique, index), seed)] for seed in seeds]
        costs = [_all_in_cost(trial, metric) for trial in trials]
        grid.append({"settings": dict(point), "median_cost": statistics.median(costs),
                     "reached": sum(t.status == "reached" for t in trials), "of": len(trials)})
        for trial in trials:
            spent["steps"] += trial.ledger.steps + trial.ledger.steps_pretrain
            spent["flops"] += trial.ledger.flops_total + trial.ledger.flops_pretrain
            spent["device_s"] += trial.ledger.device_s + trial.ledger.device_pretrain_s
    best = min(range(len(grid)), key=lambda i: (grid[i]["median_cost"], -grid[i]["reached"], i))
    return TuningRecord(workload=entry.name, preset=entry.preset, technique=technique, metric=metric,
                        winner=dict(grid[best]["settings"]), grid=grid, seeds=seeds, tuning_cost=spent)


def _all_in_cost(result: TrialResult, metric: str) -> float:
    """What a tuning trial cost to the target in `metric`, pretraining included (inf if missed)."""
    if result.status != "reached":
        return math.inf
    ledger = result.ledger.snapshot()
    pretrain = PRETRAIN_COLUMNS.get(metric)
    return float(ledger[METRIC_COLUMNS[metric]]) + (float(ledger[pretrain]) if pretrain else 0.0)


# -- the targets file ------------------------------------------------------------------------------


def write_targets(path: Path, calibrated: Calibrated, command: str) -> None:
    """The targets file, TOML: one `[[target]]` per workload and one `[[tuning]]` per tuned
    technique and workload, each saying how it was set."""
    lines = [f"# Written by `{command}` on {utc_now()[:10]}: targets, the weakened reference and each technique's",
             "# tuning, on calibration seeds. Rerun the command to recalibrate rather than editing by hand.", ""]
    for record in calibrated.targets:
        lines += ["[[target]]", *_assignments(_target_fields(record)), ""]
    for tuning in calibrated.tunings:
        lines += ["[[tuning]]", *_assignments(dataclasses.asdict(tuning)), ""]
    text = "\n".join(lines).encode("utf-8")
    atomic_write(path, lambda handle: handle.write(text))  # a crash mid-write leaves the old targets whole


def read_tunings(path: Path) -> list[TuningRecord]:
    """The [[tuning]] records of a targets file (kept when only the targets are recalibrated).
    A hand-written entry may give only workload, preset, technique and winner (as the suite
    reader allows); what it leaves out is kept empty."""
    doc = Document(path)
    empty: dict[str, Any] = {"metric": "", "grid": [], "seeds": [], "tuning_cost": {}}
    return [TuningRecord(**{key: entry.get(key, empty.get(key)) for key in TUNING_RECORD_KEYS})
            for entry in doc.get(doc.values, (), "tuning", "table_list", [])]


def _target_fields(record: TargetRecord) -> dict[str, Any]:
    values = dataclasses.asdict(record)
    return {"workload": values.pop("workload"), "preset": values.pop("preset"),
            "target_val_loss": values.pop("target_val_loss"), "method": record.method, **values}


def _assignments(values: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in values.items()]


def _toml_value(value: Any) -> str:
    """A TOML value; None (no value, e.g. a seed that never reached the target) is written as the
    string "none", TOML having no null."""
    if value is None:
        return '"none"'
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf" if value < 0 else "nan")
    if isinstance(value, (int, str)):
        return json.dumps(value) if isinstance(value, str) else str(value)
    raise TypeError(f"cannot write {value!r} to a targets file")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)
