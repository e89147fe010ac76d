"""The trial matrix: the arms of each workload, crossed with the seeds, in a fixed order.

Arms and their kinds (the analysis reads `arm_kind`):

- `baseline`: no technique. `aa`: the baseline again on other seeds (AA_SEED_OFFSET + i,
  paired with baseline seed i: `TrialSpec.pair_seed`); its speedup over the baseline must come
  out as 1.
- `alone`: each technique of `matrix.techniques` by itself, at its tuned settings (the grid's
  winner on this workload, from the suite's targets file; its defaults where none is recorded).
  `as_specified`: each technique by itself at the settings the seed document states (arm name
  `technique@as_specified`). `control`: each technique's random control at the same rate and
  settings, named by the control's technique name. `positive_control`: the arms of known
  speedup (techniques/positive_controls.py): the warm start, to the workload's target; the
  weakened reference (`lr_scale`) and the baseline again (`baseline@weak_target`), both to the
  weak target calibration set from the weakened reference's own curves.
- `stack`: the seed's stack, and the all-techniques stack less those that do not apply to the
  workload's task. `leave_one_out`: the seed's stack
  less one technique. `pair`: every two techniques of the seed's stack. `cumulative`: the
  prefixes of the seed's stack, one per row of the seed's cumulative table.

A stack's arm name is its techniques joined by '+' in the suite's canonical order, so one
set of techniques is one arm whatever group asked for it: an arm asked for twice (the first
prefix of the seed's stack is also a technique alone) is kept once, under the first kind in
the order above. Every arm of a workload runs on the same seeds (a paired design) except `aa`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from step7bench.harness.suite import AA_SEED_OFFSET, DEFAULT_HEADROOM, Suite, WorkloadEntry
from step7bench.techniques.positive_controls import WEAK_REFERENCE

ARM_KINDS = ("baseline", "aa", "positive_control", "alone", "as_specified", "control", "stack", "leave_one_out",
             "pair", "cumulative")
BASELINE_AT_WEAK_TARGET = "baseline@weak_target"
"""The baseline trained to the weak target: with the weakened reference (`WEAK_REFERENCE`), the
weak-reference positive control's two arms."""
AS_SPECIFIED = "as_specified"
"""The variant of an arm whose techniques run at the seed document's stated settings."""


@dataclass(frozen=True)
class Arm:
    """An arm of the matrix: its name (for display), kind and techniques, and for a random
    control the technique it controls for. Stored with every trial, so the analysis needs no
    registry to know which control belongs to which technique."""

    name: str
    kind: str
    techniques: tuple[str, ...]
    control_of: str | None = None
    variant: str = "tuned"  # or AS_SPECIFIED

    @property
    def weak_target(self) -> bool:
        """Whether the arm trains to the weak target (the weak-reference positive control's)."""
        return self.kind == "positive_control" and self.name in (WEAK_REFERENCE, BASELINE_AT_WEAK_TARGET)


@dataclass(frozen=True)
class TrialSpec:
    """One trial to run: a workload (with its budget and target), an arm and a seed.
    `world_size` is the number of ranks it trains on (above 1 only for a data-parallel arm)."""

    workload: WorkloadEntry
    arm: Arm
    seed: int
    settings: Mapping[str, Mapping[str, Any]]  # per technique of the arm, as the suite sets them
    world_size: int = 1
    data_parallel: bool = False  # the arm has a data-parallel technique (it may run on several ranks)
    pair_seed: int | None = None  # the baseline seed this trial is paired with (default: its own seed)
    dense_checks: bool = False  # check at the finest spacing all along (calibration reads whole curves)

    @property
    def paired_with(self) -> int:
        return self.seed if self.pair_seed is None else self.pair_seed

    def identity(self) -> dict[str, Any]:
        """Everything that defines the trial's outcome; its hash is the trial id. A data-parallel
        arm's outcome depends on its world size (global batch, shards), so it is named there; other
        arms always run on one process and their ids stay what they were. Headroom decides how
        long a late arm may train, so a suite's own headroom is named; the default's ids stay
        what they were before headroom was part of the identity."""
        w = self.workload
        ranks = {"world_size": self.world_size} if self.data_parallel else {}
        if w.budget.headroom != DEFAULT_HEADROOM:
            ranks["headroom"] = w.budget.headroom
        return {**ranks, "workload": w.name, "preset": w.preset, "data_seed": w.data_seed, "arm": self.arm.name,
                "techniques": list(self.arm.techniques), "seed": self.seed,
                "max_steps": w.budget.max_steps, "max_seconds": w.budget.max_seconds,
                "target_val_loss": w.target_val_loss,
                "settings": {name: dict(self.settings.get(name, {})) for name in self.arm.techniques}}

    @property
    def trial_id(self) -> str:
        canonical = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:20]

    def label(self) -> str:
        return f"{self.workload.key} {self.arm.name} seed {self.seed}"


def arm_name(techniques: tuple[str, ...]) -> str:
    return "+".join(techniques) if techniques else "baseline"


def build_arms(suite: Suite, task: str) -> list[Arm]:
    """The arms of one workload, in the order of ARM_KINDS, without the ones whose techniques
    do not apply to `task` (e.g. a sequence-only augmentation on an image classifier)."""
    specs = suite.registry.techniques
    order = {name: i for i, name in enumerate(suite.techniques)}

    def stack(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(names, key=order.__getitem__))

    groups = set(suite.arm_groups)
    seed = suite.seed_stack
    candidates: list[tuple[str, tuple[str, ...]]] = [("baseline", ())]
    if "aa" in groups:
        candidates.append(("aa", ()))
    if "positive_controls" in groups:
        candidates += [("positive_control", (name,)) for name, spec in specs.items() if spec.positive_control]
        candidates.append(("positive_control", ()))  # the baseline again, to the weak target
    if "alone" in groups:
        candidates += [("alone", (name,)) for name in suite.techniques]
    if "as_specified" in groups:
        candidates += [(AS_SPECIFIED, (name,)) for name in suite.techniques if specs[name].as_specified]
    controls_of = {specs[name].control: name for name in suite.techniques if specs[name].control is not None}
    if "control" in groups:
        candidates += [("control", (control,)) for control in controls_of]
    if "seed_stack" in groups:
        candidates.append(("stack", seed))
    if "all_stack" in groups:
        # All techniques stacked means all that apply to the task, not no stack at all.
        candidates.append(("stack", tuple(t for t in suite.all_stack if task in specs[t].tasks)))
    if "leave_one_out" in groups:
        candidates += [("leave_one_out", stack(tuple(t for t in seed if t != left_out))) for left_out in seed]
    if "pairs" in groups:
        candidates += [("pair", stack(pair)) for pair in itertools.combinations(seed, 2)]
    if "cumulative" in groups:
        candidates += [("cumulative", seed[:end]) for end in range(1, len(seed) + 1)]
    arms: dict[str, Arm] = {}
    for kind, techniques in candidates:
        name = ("aa" if kind == "aa" else BASELINE_AT_WEAK_TARGET if kind == "positive_control" and not techniques
                else arm_name(techniques) + (f"@{AS_SPECIFIED}" if kind == AS_SPECIFIED else ""))
        if name not in arms and all(task in specs[t].tasks for t in techniques):
            arms[name] = Arm(name, kind, techniques, controls_of.get(techniques[0]) if kind == "control" else None,
                             AS_SPECIFIED if kind == AS_SPECIFIED else "tuned")
    return list(arms.values())


def arm_settings(suite: Suite, workload: WorkloadEntry, arm: Arm) -> dict[str, dict[str, Any]]:
    """Each technique's settings in `arm` on `workload`: the suite's, then either the seed
    document's (an as-specified arm) or the workload's tuned winner (every other arm; a random
    control takes its technique's tuned values for the settings it shares)."""
    specs = suite.registry.techniques
    settings = {}
    for name in arm.techniques:
        if arm.variant == AS_SPECIFIED:
            chosen = dict(specs[name].as_specified)
        else:
            tuned = workload.tuned.get(arm.control_of if arm.kind == "control" else name, {})
            chosen = {key: value for key, value in tuned.items() if key in specs[name].defaults}
        settings[name] = {**suite.settings_for(name), **chosen}
    return settings


def plan_trials(suite: Suite, nproc_per_node: int = 1,
                seeds_by_arm: Mapping[tuple[str, str], int] | None = None) -> list[TrialSpec]:
    """Every trial of the suite, seed by seed: after k seeds, every arm has k paired results.
    Arms with a data-parallel technique run on `nproc_per_node` ranks, every other on one.
    `seeds_by_arm` gives some arms ((workload key, arm name) -> seeds) more seeds than the suite's
    (an adaptive design adding seeds where a verdict is undecided); theirs come after the rest."""
    specs = suite.registry.techniques
    arms = {w.key: build_arms(suite, w.task) for w in suite.workloads}
    extra = {(w.key, arm.name): _instrument_seeds(suite, arm) for w in suite.workloads for arm in arms[w.key]
             if _instrument_seeds(suite, arm) > suite.seeds}
    for key, count in (seeds_by_arm or {}).items():
        extra[key] = max(count, extra.get(key, 0))
    seeds = max([suite.seeds, *extra.values()])
    trials = []
    for index in range(seeds):
        for workload in suite.workloads:
            for arm in arms[workload.key]:
                if index >= extra.get((workload.key, arm.name), suite.seeds):
                    continue
                seed = AA_SEED_OFFSET + index if arm.kind == "aa" else index
                settings = arm_settings(suite, workload, arm)
                data_parallel = any(specs[name].data_parallel for name in arm.techniques)
                trials.append(TrialSpec(_arm_workload(workload, arm), arm, seed, settings,
                                        nproc_per_node if data_parallel else 1, data_parallel, pair_seed=index))
    return trials


def _instrument_seeds(suite: Suite, arm: Arm) -> int:
    """Seeds of an arm of the instrument's own checks, which may get more than the rest: the
    weak-reference control's two arms, to resolve its known effect on a noisy workload; the A/A
    arm and the baseline, to bound a bias of the instrument more tightly (0: the suite's seeds)."""
    if arm.weak_target:
        return suite.positive_control_seeds
    return suite.aa_seeds if arm.kind in ("aa", "baseline") else 0


def _arm_workload(workload: WorkloadEntry, arm: Arm) -> WorkloadEntry:
    """The workload as `arm` trains on it: to the weak target for the weak-reference control's
    arms (the workload's own target where calibration set none: their speedup then has no
    expectation and the report says so)."""
    weak = (workload.calibration.get("weak_reference") or {}).get("target_val_loss")
    if arm.weak_target and isinstance(weak, (int, float)):
        return dataclasses.replace(workload, target_val_loss=float(weak))
    return workload


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 1 <= I <= N; ValueError otherwise."""
    index_text, _, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"shard must be I/N with integers, e.g. 2/4; got {text!r}") from None
    if not 1 <= index <= count:
        raise ValueError(f"shard must be I/N with 1 <= I <= N; got {text!r}")
    return index, count


def shard(trials: list[TrialSpec], index: int, count: int) -> list[TrialSpec]:
    """Shard `index` of `count` (1-based): every count-th trial of the plan, starting at index.

    Round robin over the plan (not a hash) gives each shard nearly the same mix of workloads,
    arms and seeds, hence nearly the same run time; the plan is deterministic, so any scheduler
    may run the shards in any order and `merge` joins them.
    """
    return trials[index - 1::count]
