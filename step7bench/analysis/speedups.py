"""Speedups of every arm over the baseline, paired by seed, on every metric and accounting.

Pairing (the harness's design): all arms of a workload share seeds with the baseline and are
paired with it seed by seed; the A/A arm ran the baseline on *other* seeds and is paired with
it by position in sorted seed order. Failed trials (the code raised) measured nothing: the
seed is left out of that pair and counted in `n_failed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from step7bench.analysis.metrics import (ACCOUNTINGS, DEFAULT_DOWNSTREAM_TASKS, METRICS, Accounting, Metric,
                                         costs_to_target, supports)
from step7bench.analysis.stats import (DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval, median, olympic_mean,
                                       median_rows, paired_bootstrap, seed_speedups)
from step7bench.seeding import numpy_rng

BASELINE_ARM = "baseline"
AA_ARM = "aa"


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn. Every interval's resampling stream is seeded from `seed` and the
    name of what it estimates, so a report regenerated from the same results is identical."""

    resamples: int = DEFAULT_RESAMPLES
    confidence: float = DEFAULT_CONFIDENCE
    seed: int = 0

    def rng(self, *purpose: object) -> np.random.Generator:
        return numpy_rng(self.seed, "bootstrap:" + ":".join(map(str, purpose)))


@dataclass(frozen=True)
class PairedCosts:
    """Costs of one arm and its reference arm (`baseline`) on the seeds where both measured
    something, sorted by seed. `baseline_seeds` differ from `seeds` only for the A/A arm."""

    seeds: np.ndarray
    baseline_seeds: np.ndarray
    baseline: np.ndarray
    arm: np.ndarray
    n_failed: int

    def speedups(self) -> np.ndarray:
        return seed_speedups(self.baseline, self.arm)


@dataclass(frozen=True)
class SpeedupEstimate:
    """Speedup of one arm over a reference arm (the baseline unless stated) on one metric:
    cost(reference) / cost(arm) per seed,
    aggregated by the median (olympic mean also given), with a paired bootstrap interval."""

    workload: str
    arm: str
    arm_kind: str
    techniques: str
    reference: str
    metric: str
    accounting: Accounting
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    median: float
    olympic_mean: float
    interval: Interval
    n_arm_missed: int
    n_reference_missed: int
    n_failed: int
    deterministic: bool

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)


def measurable(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials that measured a cost: all but the failed ones."""
    return trials[trials["status"] != "failed"]


def workload_metrics(trials: pd.DataFrame) -> list[Metric]:
    """The metrics a workload's trials spend: those whose every finite cost is positive (a
    classifier has no tokens; an unmeasured figure would be zero, and zero has no speedup)."""
    done = measurable(trials)
    reached = done[done["status"] == "reached"]
    return [metric for metric in METRICS if len(reached) and (reached[metric.column].astype(float) > 0).all()]


def paired_costs(trials: pd.DataFrame, arm: str, metric: Metric, accounting: Accounting = "finetune",
                 downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS, reference: str = BASELINE_ARM) -> PairedCosts:
    """Pair `arm`'s trials of one workload with those of `reference` (see module docstring)."""
    if trials["workload"].nunique() > 1:
        raise ValueError("trials: pass one workload's trials")
    arm_trials, ref_trials = trials[trials["arm"] == arm], trials[trials["arm"] == reference]
    if arm_trials.empty or ref_trials.empty:
        raise ValueError(f"arm: no trials of {arm!r} or of {reference!r}")
    arm_side = _seed_costs(arm_trials, metric, accounting, downstream_tasks)
    ref_side = _seed_costs(ref_trials, metric, accounting, downstream_tasks)
    if arm == AA_ARM and reference == BASELINE_ARM:
        # Other seeds: pair the k-th smallest A/A seed with the k-th smallest baseline seed.
        n = min(len(arm_side), len(ref_side))
        arm_side, ref_side = arm_side.iloc[:n], ref_side.iloc[:n]
        seeds, ref_seeds = arm_side.index.to_numpy(), ref_side.index.to_numpy()
    else:
        common = arm_side.index.intersection(ref_side.index).sort_values()
        arm_side, ref_side = arm_side.loc[common], ref_side.loc[common]
        seeds = ref_seeds = common.to_numpy()
    n_failed = int((arm_trials["status"] == "failed").sum() + (ref_trials["status"] == "failed").sum())
    return PairedCosts(seeds, ref_seeds, ref_side.to_numpy(), arm_side.to_numpy(), n_failed)


def _seed_costs(trials: pd.DataFrame, metric: Metric, accounting: Accounting, downstream_tasks: int) -> pd.Series:
    if trials["seed"].duplicated().any():
        raise ValueError(f"trials: arm {trials['arm'].iloc[0]!r} has two trials on one seed")
    done = measurable(trials)
    cost = costs_to_target(done, metric, accounting, downstream_tasks)
    return pd.Series(cost.to_numpy(), index=done["seed"].astype(int).to_numpy()).sort_index()


def estimate(trials: pd.DataFrame, arm: str, metric: Metric, accounting: Accounting = "finetune",
             settings: BootstrapSettings = BootstrapSettings(), downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS,
             reference: str = BASELINE_ARM) -> SpeedupEstimate | None:
    """The speedup of `arm` over `reference` (cost(reference) / cost(arm)) on one workload's trials;
    None when no seed pairs."""
    pairs = paired_costs(trials, arm, metric, accounting, downstream_tasks, reference)
    if pairs.seeds.size == 0:
        return None
    speedups = pairs.speedups()
    workload = str(trials["workload"].iloc[0])
    rng = settings.rng(workload, arm, reference, metric.name, accounting)
    interval = paired_bootstrap(median_rows, [speedups], rng, settings.resamples, settings.confidence)
    first = trials[trials["arm"] == arm].iloc[0]
    return SpeedupEstimate(
        workload=workload, arm=arm, arm_kind=str(first["arm_kind"]), techniques=str(first["techniques"]),
        reference=reference, metric=metric.name, accounting=accounting, seeds=tuple(int(s) for s in pairs.seeds),
        per_seed=tuple(float(s) for s in speedups), median=median(speedups), olympic_mean=olympic_mean(speedups),
        interval=interval, n_arm_missed=int(np.isinf(pairs.arm).sum()),
        n_reference_missed=int(np.isinf(pairs.baseline).sum()), n_failed=pairs.n_failed,
        deterministic=metric.deterministic)


def all_estimates(trials: pd.DataFrame, settings: BootstrapSettings = BootstrapSettings(),
                  downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> list[SpeedupEstimate]:
    """Every arm but the baseline, on every workload, metric the workload spends and accounting
    the metric has. Arms in the order they first appear in `trials`."""
    estimates = []
    for workload_trials, arm, metric, accounting in _combinations(trials):
        found = estimate(workload_trials, arm, metric, accounting, settings, downstream_tasks)
        if found is not None:
            estimates.append(found)
    return estimates


def _combinations(trials: pd.DataFrame) -> Iterator[tuple[pd.DataFrame, str, Metric, Accounting]]:
    for _, workload_trials in trials.groupby("workload", sort=True):
        if not (workload_trials["arm"] == BASELINE_ARM).any():
            continue
        metrics = workload_metrics(workload_trials)
        for arm in workload_trials["arm"].unique():
            if arm == BASELINE_ARM:
                continue
            for metric in metrics:
                for accounting in ACCOUNTINGS:
                    if supports(metric, accounting):
                        yield workload_trials, str(arm), metric, accounting


def estimates_frame(estimates: list[SpeedupEstimate]) -> pd.DataFrame:
    """One row per estimate, the interval as `ci_low`/`ci_high` (for tables and figures)."""
    rows = [{"workload": e.workload, "arm": e.arm, "arm_kind": e.arm_kind, "techniques": e.techniques,
             "metric": e.metric, "accounting": e.accounting, "n_seeds": e.n_seeds, "median": e.median,
             "olympic_mean": e.olympic_mean, "ci_low": e.interval.low, "ci_high": e.interval.high,
             "n_arm_missed": e.n_arm_missed, "n_reference_missed": e.n_reference_missed, "n_failed": e.n_failed}
            for e in estimates]
    return pd.DataFrame(rows, columns=["workload", "arm", "arm_kind", "techniques", "metric", "accounting",
                                       "n_seeds", "median", "olympic_mean", "ci_low", "ci_high", "n_arm_missed",
                                       "n_reference_missed", "n_failed"])
