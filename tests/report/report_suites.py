"""Minimal synthetic results of every shape of suite the report must render: each arm group
alone and together, one and two workloads, misses, failures, a partial matrix, the instrument's
checks passing and failing, and the records the harness writes beside the trials (variant,
settings, mechanism activity, calibration with its tuning grid, the deadline's list).

Built on the analysis tests' planted-effect tables (tests/analysis/synthetic.py), which know
nothing of these records; this module adds them as the harness stores them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from synthetic import PlantedArm, synthetic_curves, synthetic_runs, synthetic_trials, write_store

WORKLOAD = "synthetic"
PRESET = "micro"
HANDOVER_STEP = 60  # the warm start's steps booked as pretraining
WEAK_TARGET = 2.2  # the weak-reference positive control's target (calibration sets it from its curves)

SETTINGS = {
    "curriculum": ({"strategy": "root", "start_fraction": 0.01, "full_at": 0.5},
                   {"difficulty_metric": "perplexity", "strategy": "linear", "candidate_pool": "all"}),
    "active_learning": ({"rounds": 4, "candidate_pool": 2}, {"strategy": "uncertainty", "budget_fraction": 0.5}),
    "gradient_caching": ({"similarity_threshold": 0.6}, {"similarity_threshold": 0.9, "cache_size": 100}),
    "transfer": ({"pretrain_fraction": 1.0}, {"pretrain_fraction": 5 / 3, "finetune_lr_scale": 0.1}),
    "difficulty_prediction": ({"skip_threshold": 0.2}, {"skip_threshold": 0.5}),
}
ACTIVITY = {
    "curriculum": (True, "trained on an easiest-first subset for 48% of steps", 0.48),
    "curriculum_random": (True, "trained on a random subset for 48% of steps", 0.48),
    "active_learning": (True, "trained on 50% of the pool", 0.5),
    "gradient_caching": (False, "0% of steps reused a gradient", 0.0),
    "transfer": (True, "pretrained 300 steps on the source data", 300.0),
    "difficulty_prediction": (True, "skipped 16% of examples", 0.16),
    "lr_scale": (True, "learning rate x 0.3", 0.3),
}
TUNING_GRIDS = {
    # technique -> (settings, median device seconds to target or inf, reached of 3)
    "transfer": ([({"pretrain_fraction": f}, cost, reached) for f, cost, reached in
                  ((0.25, 21.0, 3), (0.5, 18.5, 3), (1.0, 17.0, 3), (2.0, 24.0, 3), (3.0, float("inf"), 1))]
                 + [({"pretrain_fraction": 1.0, "finetune_lr_scale": 0.3}, 19.5, 3)]),
    "curriculum": [({"strategy": "linear", "start_fraction": 0.01, "full_at": 0.5}, 22.0, 3),
                   ({"strategy": "root", "start_fraction": 0.01, "full_at": 0.5}, 20.0, 3),
                   ({"strategy": "linear", "start_fraction": 0.2, "full_at": 0.2}, float("inf"), 0)],
}


@dataclass(frozen=True)
class Shape:
    """One suite's shape: its arm groups and what else the store records."""

    groups: frozenset[str]
    workloads: tuple[str, ...] = (WORKLOAD,)
    seeds: int = 2
    weak_expected: float = 1.3  # calibration's baseline speedup over the weakened reference
    partial: bool = False  # a deadline kept the transfer arm's last seed from starting
    misses: bool = False  # curriculum misses every seed; the baseline misses one seed
    failed: bool = False  # one trial raised
    nothing_reached: bool = False  # no trial reached the target; one diverged (no finite loss at all)
    claims: str | None = None  # a claims file's text; None: the seed's claims; "" : no claims at all
    extra: dict = field(default_factory=dict)


SHAPES: dict[str, Shape] = {
    "baseline-only": Shape(frozenset()),
    "baseline+aa": Shape(frozenset({"aa"})),
    "baseline+alone": Shape(frozenset({"alone"})),
    "controls": Shape(frozenset({"aa", "alone", "control"})),
    "positive-controls": Shape(frozenset({"aa", "positive_controls"}), seeds=3),
    "positive-control-fails": Shape(frozenset({"aa", "alone", "positive_controls"}), weak_expected=4.0),
    "stacks": Shape(frozenset({"aa", "alone", "stacks"}), seeds=3),
    "everything": Shape(frozenset({"aa", "alone", "as_specified", "control", "positive_controls", "stacks",
                                   "tuning"}), seeds=3),
    "two-workloads": Shape(frozenset({"aa", "alone", "control", "stacks"}), workloads=("grammar-lm", "digits")),
    "misses-and-failures": Shape(frozenset({"aa", "alone"}), seeds=3, misses=True, failed=True),
    "partial": Shape(frozenset({"aa", "alone", "as_specified"}), partial=True),
    "nothing-reached": Shape(frozenset({"alone", "control"}), nothing_reached=True),
    "own-claims": Shape(frozenset({"aa", "alone", "stacks"}), claims="""\
# A claims file of one's own: on steps, one technique the suite ran, one it did not, a stack.
metric = "steps"

[[claim]]
name = "my curriculum 1.2x"
techniques = ["curriculum"]
claimed = 1.2
kind = "technique"

[[claim]]
name = "augmentation 1.1x (not in the suite)"
techniques = ["augmentation"]
claimed = 1.1
kind = "technique"

[[claim]]
name = "curriculum and caching 1.5x"
techniques = ["curriculum", "gradient_caching"]
claimed = 1.5
kind = "cumulative"
"""),
    "no-claims": Shape(frozenset({"aa", "alone", "control"}), claims=""),
}


def planted_arms(shape: Shape) -> list[PlantedArm]:
    groups = shape.groups
    arms: list[PlantedArm] = []
    missed = tuple(range(shape.seeds)) if shape.misses else ()
    if "positive_controls" in groups:  # the weakened reference and the baseline again, to the weak target
        arms += [PlantedArm("lr_scale", 1 / 1.5, "positive_control", techniques=("lr_scale",)),
                 PlantedArm("baseline@weak_target", 1.0, "positive_control", techniques=())]
    if "alone" in groups or "stacks" in groups:
        arms += [PlantedArm("curriculum", 1.3, missed=missed), PlantedArm("gradient_caching", 0.9),
                 PlantedArm("transfer", 2.0, pretrain_steps=300)]
    if "stacks" in groups:
        arms += [PlantedArm("active_learning", 1.6), PlantedArm("difficulty_prediction", 1.1)]
    if "as_specified" in groups:
        arms += [PlantedArm("curriculum@as_specified", 1.05, "as_specified", techniques=("curriculum",)),
                 PlantedArm("transfer@as_specified", 0.8, "as_specified", techniques=("transfer",),
                            pretrain_steps=500)]
    if "control" in groups:
        arms.append(PlantedArm("curriculum_random", 1.2, "control"))
    if "stacks" in groups:
        arms += [PlantedArm("curriculum+active_learning", 1.8, "cumulative"),
                 PlantedArm("curriculum+active_learning+gradient_caching", 1.7, "cumulative"),
                 PlantedArm("curriculum+active_learning+gradient_caching+transfer", 2.4, "stack", pretrain_steps=300),
                 PlantedArm("active_learning+gradient_caching+transfer", 2.2, "leave_one_out", pretrain_steps=300),
                 PlantedArm("curriculum+gradient_caching", 1.1, "pair")]
    return arms


def _technique_stats(row: pd.Series) -> str:
    stats = {}
    for technique in row["techniques"]:
        if technique in ACTIVITY:
            fired, summary, value = ACTIVITY[technique]
            stats[technique] = {"activity": {"fired": fired, "summary": summary, "value": value}}
    return json.dumps(stats)


def _config(row: pd.Series) -> str:
    variant = 1 if row["variant"] == "as_specified" else 0
    settings = {t: SETTINGS[t][variant] for t in row["techniques"] if t in SETTINGS}
    return json.dumps({"arm": row["arm"], "seed": int(row["seed"]), "settings": settings,
                       "techniques": list(row["techniques"]), "workload": row["workload"]}, sort_keys=True)


def _warm_start(trials: pd.DataFrame, workload: str) -> pd.DataFrame:
    """The warm start: each baseline trial with its first HANDOVER_STEP steps booked as pretraining
    (so its finetune-only steps speedup is exactly T/(T - k))."""
    rows = []
    for _, base in trials[(trials["workload"] == workload) & (trials["arm"] == "baseline")].iterrows():
        total = float(base["steps"])
        share = (total - HANDOVER_STEP) / total
        row = base.copy()
        row["arm"], row["arm_kind"], row["techniques"] = "warm_start", "positive_control", ("warm_start",)
        row["steps_to_target"] = base["steps_to_target"]
        for column, pretrain in (("steps", "steps_pretrain"), ("examples_forward", "examples_pretrain"),
                                 ("flops_total", "flops_pretrain"), ("wall_s", "wall_pretrain_s"),
                                 ("device_s", "device_pretrain_s"), ("energy_j", "energy_pretrain_j")):
            row[pretrain] = base[column] * (1 - share)
        for column in ("steps", "examples_forward", "examples_backward", "tokens_forward", "tokens_backward",
                       "flops_forward", "flops_backward", "flops_total", "wall_train_s", "wall_s", "device_s",
                       "energy_j"):
            row[column] = base[column] * share
        row["steps"] = int(round(total)) - HANDOVER_STEP
        row["steps_pretrain"] = HANDOVER_STEP
        row["technique_stats"] = json.dumps({"warm_start": {
            "handover_step": HANDOVER_STEP,
            "activity": {"fired": True, "summary": f"the first {HANDOVER_STEP} steps booked as pretraining",
                         "value": HANDOVER_STEP}}})
        rows.append(row)
    return pd.DataFrame(rows)


def _calibration(shape: Shape) -> str:
    entries = {}
    for workload in shape.workloads:
        tuning = []
        if "tuning" in shape.groups:
            for technique, grid in TUNING_GRIDS.items():
                points = [{"settings": settings, "median_cost": cost, "reached": reached, "of": 3}
                          for settings, cost, reached in grid]
                best = min(points, key=lambda p: p["median_cost"])
                tuning.append({"workload": workload, "preset": PRESET, "technique": technique,
                               "metric": "device_hours", "winner": best["settings"], "grid": points,
                               "seeds": [20000, 20001, 20002],
                               "tuning_cost": {"steps": 9000.0, "flops": 1.8e13, "device_s": 450.0}})
        entries[f"{workload}/{PRESET}"] = {
            "target": {"workload": workload, "preset": PRESET, "target_val_loss": 2.0, "margin": 0.02,
                       "calibration_seeds": [20000, 20001, 20002], "calibrated_at": "2000-01-01T00:00:00+00:00",
                       "method": "median sustained best validation loss of the baseline, times (1 + 0.02)",
                       "git_commit": "0" * 40,
                       "weak_reference": {"technique": "lr_scale", "metric": "steps",
                                          "speedup": shape.weak_expected}},
            "tuning": tuning}
    return json.dumps(entries)


def suite_frames(shape: Shape) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Trials, curves and runs of `shape`, as the results store holds them."""
    frames = []
    for index, workload in enumerate(shape.workloads):
        trials = synthetic_trials(planted_arms(shape), range(shape.seeds), workload, random_seed=index)
        if "aa" not in shape.groups:
            trials = trials[trials["arm"] != "aa"]
        if "positive_controls" in shape.groups:
            trials = pd.concat([trials, _warm_start(trials, workload)], ignore_index=True)
            weak = trials["arm"].isin(["lr_scale", "baseline@weak_target"])
            trials.loc[weak, "target_val_loss"] = WEAK_TARGET
        frames.append(trials)
    trials = pd.concat(frames, ignore_index=True)
    trials["preset"] = PRESET
    trials["trial_id"] = [f"t{i}" for i in range(len(trials))]
    trials["variant"] = np.where(trials["arm_kind"] == "as_specified", "as_specified", "tuned")
    trials["config"] = trials.apply(_config, axis=1)
    stats = trials.apply(_technique_stats, axis=1)
    trials["technique_stats"] = np.where(trials["arm"] == "warm_start", trials["technique_stats"], stats)
    if shape.misses:
        first = (trials["arm"] == "baseline") & (trials["seed"] == 0)
        trials.loc[first, ["status", "stop_reason", "steps_to_target", "best_val_loss"]] = \
            ["missed", "max_steps", None, 2.1]
    if shape.failed:
        broken = trials.index[(trials["arm"] == "gradient_caching") & (trials["seed"] == 1)]
        trials.loc[broken, ["status", "stop_reason", "steps_to_target", "error"]] = \
            ["failed", None, None, "RuntimeError: synthetic failure"]
    if shape.nothing_reached:
        trials[["status", "stop_reason", "steps_to_target", "best_val_loss"]] = ["missed", "max_steps", None, 2.5]
        trials.loc[trials.index[-1], ["status", "stop_reason", "best_val_loss"]] = ["diverged", "diverged",
                                                                                  float("inf")]
    past_deadline = []
    if shape.partial:
        late = (trials["arm"] == "transfer") & (trials["seed"] == shape.seeds - 1)
        past_deadline = [{"workload": w, "arm": "transfer", "seed": int(s)}
                         for w, s in zip(trials.loc[late, "workload"], trials.loc[late, "seed"])]
        trials = trials[~late].reset_index(drop=True)
        # and every trial of the as-specified transfer arm: a claim lacks its as-specified arm, none lacks its arm
        gone = trials["arm"] == "transfer@as_specified"
        past_deadline += [{"workload": w, "arm": "transfer@as_specified", "seed": int(s)}
                          for w, s in zip(trials.loc[gone, "workload"], trials.loc[gone, "seed"])]
        trials = trials[~gone].reset_index(drop=True)
    curves = synthetic_curves(trials[trials["status"] != "failed"])
    diverged = trials.loc[trials["status"] == "diverged", "trial_id"]
    curves.loc[curves["trial_id"].isin(set(diverged)), "val_loss"] = float("nan")
    runs = synthetic_runs()
    runs["calibration"] = _calibration(shape)
    runs["past_deadline"] = json.dumps(past_deadline)
    runs["command_line"] = ("step7bench run --suite suites/a-long-suite-name-for-wrapping.toml --results "
                            "/a/very/long/path/to/the/results/folder/that/must/wrap/inside/its/cell --threads 1")
    runs["suite_hash"] = "3b8220ae3e020535b8adc2e2f2c4ac83111a9e1e4fd93d6c1c5b0a1e2f3d4c5b"
    return trials, curves, runs


def write_suite(folder: Path, shape: Shape) -> tuple[Path, Path | None]:
    """The results store of `shape` in `folder`, and its claims file (None: the seed's claims)."""
    write_store(folder, *suite_frames(shape))
    claims = None
    if shape.claims:
        claims = folder / "claims.toml"
        claims.write_text(shape.claims)
    return folder, claims


def render_suite(folder: Path, shape: Shape) -> Path:
    """Write `shape`'s results and its report; returns index.html."""
    from step7bench.analysis.results import analyze, load_results
    from step7bench.report import write_analysis_report, write_report

    results, claims = write_suite(folder, shape)
    if shape.claims == "":
        return write_analysis_report(analyze(load_results(results), []), results)
    return write_report(results, claims) if claims else write_report(results)
