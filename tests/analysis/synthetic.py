"""Trial tables with planted effects, shaped like the results store's, for testing the analysis
and the reports without training anything.

Every arm of a workload shares each seed's difficulty (a log-normal factor common to all arms
on that seed, as in a paired design), and adds its own log-normal noise. An arm with speedup
`s` spends `1/s` of the baseline's cost on every metric; the noisy metrics (wall, device,
energy) get extra noise of their own, the deterministic ones do not.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from step7bench.harness.store import ResultsStore
from step7bench.harness.suite import AA_SEED_OFFSET
from step7bench.seeding import numpy_rng

BASE_STEPS = 400
"""Steps the synthetic baseline needs to reach its target on a seed of median difficulty."""

RUN_ID = "synthetic-run"
HARDWARE_CLASS = "cpu-synthetic"

# Per optimizer step of the synthetic workload: examples, tokens, FLOPs, wall s, energy J.
_PER_STEP = {"examples": 32, "tokens": 32 * 64, "flops": 2.0e9, "wall_s": 0.05, "energy_j": 1.5}


@dataclass(frozen=True)
class PlantedArm:
    """One arm of the synthetic table: its speedup on every metric, its kind and its techniques.

    `missed` lists seeds on which it misses the target. `pretrain_steps` > 0 gives it a
    pretraining bill (transfer learning), charged in the `*_pretrain` columns. Techniques default
    to the name's '+'-separated parts (none for the baseline and the A/A arm); a control arm
    stands for the technique its name has before "_random".
    """

    name: str
    speedup: float
    kind: str = "alone"
    techniques: tuple[str, ...] | None = None
    missed: tuple[int, ...] = ()
    pretrain_steps: int = 0

    @property
    def technique_names(self) -> tuple[str, ...]:
        if self.techniques is not None:
            return self.techniques
        return () if self.kind in ("baseline", "aa") else tuple(self.name.split("+"))

    @property
    def control_of(self) -> str | None:
        return self.name.removesuffix("_random") if self.kind == "control" else None


def synthetic_trials(arms: Sequence[PlantedArm], seeds: Sequence[int], workload: str = "synthetic",
                     seed_spread: float = 0.3, arm_noise: float = 0.05, measurement_noise: float = 0.05,
                     aa_seeds: Sequence[int] | None = None, random_seed: int = 0) -> pd.DataFrame:
    """A trials table with the baseline, `arms`, and an A/A arm on `aa_seeds` (default: seeds
    offset by AA_SEED_OFFSET, as the harness runs it). Noise levels are standard deviations of
    log-normal factors."""
    rng = numpy_rng(random_seed, f"synthetic:{workload}")
    aa_seeds = list(aa_seeds) if aa_seeds is not None else [seed + AA_SEED_OFFSET for seed in seeds]
    difficulty = {seed: float(rng.lognormal(0.0, seed_spread)) for seed in [*seeds, *aa_seeds]}
    everyone = [PlantedArm("baseline", 1.0, "baseline"), PlantedArm("aa", 1.0, "aa"), *arms]
    rows = []
    for arm in everyone:
        for pair_seed, seed in (zip(seeds, aa_seeds) if arm.kind == "aa" else zip(seeds, seeds)):
            rows.append({**_trial(rng, arm, seed, workload, difficulty[seed], arm_noise, measurement_noise),
                         "pair_seed": pair_seed})
    frame = pd.DataFrame(rows)
    frame.insert(0, "trial_id", np.arange(1, len(frame) + 1))
    return frame


def _trial(rng: np.random.Generator, arm: PlantedArm, seed: int, workload: str, difficulty: float,
           arm_noise: float, measurement_noise: float) -> dict[str, object]:
    steps = max(1, round(BASE_STEPS * difficulty * rng.lognormal(0.0, arm_noise) / arm.speedup))
    wall_s = steps * _PER_STEP["wall_s"] * rng.lognormal(0.0, measurement_noise)
    energy_j = steps * _PER_STEP["energy_j"] * rng.lognormal(0.0, measurement_noise)
    examples, tokens, flops = steps * _PER_STEP["examples"], steps * _PER_STEP["tokens"], steps * _PER_STEP["flops"]
    missed = seed in arm.missed
    pretrain = arm.pretrain_steps
    return {
        "run_id": RUN_ID, "workload": workload, "preset": "micro", "arm": arm.name, "arm_kind": arm.kind,
        "techniques": arm.technique_names, "control_of": arm.control_of, "seed": seed,
        "status": "missed" if missed else "reached", "stop_reason": "max_steps" if missed else "target",
        "steps_to_target": None if missed else steps,
        "target_val_loss": 2.0, "best_val_loss": 2.1 if missed else 1.99, "error": None, "device": "cpu",
        "hardware_class": HARDWARE_CLASS,
        "steps": steps, "examples_forward": examples, "examples_backward": examples, "tokens_forward": tokens,
        "tokens_backward": tokens, "examples_overhead": 0, "flops_forward": flops / 3, "flops_backward": 2 * flops / 3,
        "flops_overhead": 0.0, "wall_train_s": wall_s, "wall_overhead_s": 0.0, "wall_eval_s": 0.1 * wall_s,
        "device_s": wall_s, "energy_j": energy_j, "energy_eval_j": 0.1 * energy_j, "energy_method": "estimate",
        "peak_memory_bytes": 2**26, "steps_pretrain": pretrain, "examples_pretrain": pretrain * _PER_STEP["examples"],
        "flops_pretrain": pretrain * _PER_STEP["flops"], "wall_pretrain_s": pretrain * _PER_STEP["wall_s"],
        "device_pretrain_s": pretrain * _PER_STEP["wall_s"], "energy_pretrain_j": pretrain * _PER_STEP["energy_j"],
        "wall_audit_s": 0.0, "flops_audit": 0, "world_size": 1, "wall_s": wall_s, "flops_total": flops,
        "technique_stats": "{}",
    }


def synthetic_curves(trials: pd.DataFrame, points: int = 8) -> pd.DataFrame:
    """Validation curves for `trials`: the loss falls geometrically from 4.0 and first reaches the
    target at the trial's last point when it reached; the ledger grows linearly to its total."""
    rows = []
    for trial in trials.itertuples(index=False):
        final = trial.best_val_loss
        for k in range(1, points + 1):
            fraction = k / points
            row = {"trial_id": trial.trial_id, "step": round(trial.steps * fraction),
                   "val_loss": 4.0 * (final / 4.0) ** fraction, "train_loss": 4.1 * (final / 4.0) ** fraction}
            for column in ("steps", "examples_forward", "tokens_forward", "flops_forward", "flops_backward",
                           "flops_overhead", "flops_total", "wall_train_s", "wall_overhead_s", "wall_s", "device_s",
                           "energy_j"):
                row[column] = getattr(trial, column) * fraction
            rows.append(row)
    return pd.DataFrame(rows)


def synthetic_runs(suite_name: str = "synthetic") -> pd.DataFrame:
    """The provenance table of the one synthetic run, shaped like the results store's."""
    fingerprint = {"device": "cpu", "hardware_class": HARDWARE_CLASS, "cpu_model": "synthetic CPU",
                   "logical_cores": 2, "usable_cores": 2, "torch_version": "synthetic"}
    return pd.DataFrame([{
        "run_id": RUN_ID, "started_at": "2000-01-01T00:00:00+00:00", "git_commit": "0" * 40, "git_dirty": False,
        "torch_version": "synthetic", "device_fingerprint": json.dumps(fingerprint), "hardware_class": HARDWARE_CLASS,
        "suite_name": suite_name, "suite_hash": "synthetic", "command_line": "synthetic", "python_version": "3.11",
    }])


SEED_STACK = ("curriculum", "active_learning", "gradient_caching", "transfer")

SEED_SUITE_ARMS = (
    PlantedArm("curriculum", 1.3),
    PlantedArm("curriculum_random", 1.25, "control"),
    PlantedArm("active_learning", 1.8),
    PlantedArm("active_learning_random", 1.2, "control"),
    PlantedArm("gradient_caching", 0.9),
    PlantedArm("transfer", 3.0, pretrain_steps=600),
    PlantedArm("difficulty_prediction", 1.1),
    PlantedArm("curriculum+active_learning", 2.0, "cumulative"),
    PlantedArm("curriculum+active_learning+gradient_caching", 1.9, "cumulative"),
    PlantedArm("+".join(SEED_STACK), 4.0, "cumulative", pretrain_steps=600),
)
"""The seed document's arms with made-up effects (not measurements): a stack that gives less
than the product of its parts, one technique that slows training, one that pretrains."""


def synthetic_seed_suite(seeds: Sequence[int] = range(6), workloads: Sequence[str] = ("grammar-lm", "digits"),
                         suite_name: str = "synthetic") -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Trials, curves and runs of the seed's arms on `workloads` (trial ids unique across them)."""
    trials = pd.concat([synthetic_trials(SEED_SUITE_ARMS, seeds, workload, random_seed=i)
                        for i, workload in enumerate(workloads)], ignore_index=True)
    trials["trial_id"] = [f"t{i}" for i in range(len(trials))]
    return trials, synthetic_curves(trials), synthetic_runs(suite_name)


def write_store(folder: Path, trials: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame) -> Path:
    """A results store in `folder` holding these tables, written straight into its SQLite tables
    (the harness's own writer needs real `TrialResult`s)."""
    with ResultsStore(folder) as store:
        path = store.path
    trials = trials.assign(techniques=trials["techniques"].map(lambda names: json.dumps(list(names))))
    with contextlib.closing(sqlite3.connect(path)) as db:
        for name, frame in (("runs", runs), ("trials", trials), ("curves", curves)):
            frame.to_sql(name, db, if_exists="append", index=False)
        db.commit()
    return folder
