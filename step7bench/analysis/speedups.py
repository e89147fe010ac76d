"""Speedups of every arm over the baseline, paired by seed, on every metric and accounting.

Pairing (the harness's design): every trial records the baseline seed it is paired with
(`pair_seed`): its own seed for the arms that share seeds with the baseline, baseline seed i for
the A/A arm's trial on another seed. Failed trials (the code raised) measured nothing: the pair
is left out on both sides and the failure counted in `n_failed`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from step7bench.analysis.metrics import (ACCOUNTINGS, DEFAULT_DOWNSTREAM_TASKS, METRICS, Accounting, Metric,
                                         costs_to_target, supports)
from step7bench.analysis.stats import (DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, Interval, median, olympic_mean,
                                       median_rows, paired_bootstrap, seed_speedups)
from step7bench.engine import TIME_BOUND
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
    n_time_bound: int = 0  # paired trials (either side) stopped by their wall-clock budget

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
    techniques: tuple[str, ...]
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
    n_time_bound: int = 0

    @property
    def time_bound(self) -> bool:
        """Whether a paired trial stopped on `max_seconds`: its counts then depend on the machine's
        speed, so even a deterministic metric is not exactly reproducible."""
        return self.n_time_bound > 0

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)


class CostTable:
    """Every measured trial's cost to target on every metric and accounting, computed once and
    indexed by (workload, arm), so the many estimates of a report pair arrays, not frames.

    Failed trials are left out (they measured nothing) and counted per arm.
    """

    def __init__(self, trials: pd.DataFrame, downstream_tasks: int = DEFAULT_DOWNSTREAM_TASKS) -> None:
        if trials.duplicated(["workload", "arm", "pair_seed"]).any():
            raise ValueError("trials: an arm has two trials paired with one baseline seed")
        failed = trials["status"] == "failed"
        measured = trials[~failed].reset_index(drop=True)
        self.downstream_tasks = downstream_tasks
        self._failed = trials[failed].groupby(["workload", "arm"]).size().to_dict()
        self._seeds = measured["seed"].to_numpy(dtype=np.int64)
        self._pair_seeds = measured["pair_seed"].to_numpy(dtype=np.int64)
        self._time_bound = (measured["stop_reason"] == TIME_BOUND).to_numpy(dtype=bool)
        groups = measured.groupby(["workload", "arm"], sort=False).indices
        self._rows = {key: np.asarray(rows) for key, rows in groups.items()}
        self._info = {(w, a): (str(k), tuple(t), c if isinstance(c, str) else None) for w, a, k, t, c in
                      trials[["workload", "arm", "arm_kind", "techniques", "control_of"]]
                      .drop_duplicates(["workload", "arm"]).itertuples(index=False)}
        self._costs = {(metric.name, accounting): costs_to_target(measured, metric, accounting, downstream_tasks)
                       .to_numpy() for metric in METRICS for accounting in ACCOUNTINGS if supports(metric, accounting)}
        self._pretrain = {metric.name: measured[metric.pretrain_column].to_numpy(dtype=float)
                          for metric in METRICS if metric.pretrain_column}
        self._metrics = {workload: self._spent(measured, rows) for workload, rows in
                         measured.groupby("workload", sort=True).indices.items()}

    @staticmethod
    def _spent(measured: pd.DataFrame, rows: np.ndarray) -> list[Metric]:
        """The metrics a workload spends: those whose every cost of a reached trial is positive (a
        classifier has no tokens; an unmeasured figure would be zero, and zero has no speedup)."""
        reached = measured.iloc[rows]
        reached = reached[reached["status"] == "reached"]
        return [m for m in METRICS if len(reached) and (reached[m.column].astype(float) > 0).all()]

    @property
    def workloads(self) -> list[str]:
        return sorted({workload for workload, _ in self._info})

    def arms(self, workload: str) -> list[str]:
        """The arms of `workload` in the order they first appear in the trials."""
        return [arm for w, arm in self._info if w == workload]

    def kind(self, workload: str, arm: str) -> str:
        return self._info[(workload, arm)][0]

    def techniques(self, workload: str, arm: str) -> tuple[str, ...]:
        return self._info[(workload, arm)][1]

    def control_of(self, workload: str, arm: str) -> str | None:
        """The technique a random-control arm stands for; None for any other arm."""
        return self._info[(workload, arm)][2]

    def metrics(self, workload: str) -> list[Metric]:
        return self._metrics.get(workload, [])

    def pretrained(self, workload: str, arm: str, metric: Metric) -> bool:
        """Whether any trial of the arm spent something on pretraining in `metric`."""
        rows = self._rows.get((workload, arm), np.array([], dtype=int))
        return metric.name in self._pretrain and bool((self._pretrain[metric.name][rows] > 0).any())

    def pair(self, workload: str, arm: str, metric: Metric, accounting: Accounting = "finetune",
             reference: str = BASELINE_ARM) -> PairedCosts:
        """Pair `arm` with `reference` on one workload (see the module docstring)."""
        for name in (arm, reference):
            if (workload, name) not in self._info:
                raise ValueError(f"arm: no trials of {name!r} on {workload!r}")
        # By the pair seed each trial records, never by position: a failed trial on either side
        # would otherwise shift every later pair onto the wrong partner.
        costs = self._costs[(metric.name, accounting)]
        arm_side, ref_side = self._side(workload, arm, costs), self._side(workload, reference, costs)
        common = arm_side.index.intersection(ref_side.index).sort_values()
        seeds = self._side(workload, arm, self._seeds).loc[common].to_numpy()
        ref_seeds = self._side(workload, reference, self._seeds).loc[common].to_numpy()
        n_failed = self._failed.get((workload, arm), 0) + self._failed.get((workload, reference), 0)
        n_time_bound = (self._side(workload, arm, self._time_bound).loc[common].sum()
                        + self._side(workload, reference, self._time_bound).loc[common].sum())
        return PairedCosts(seeds, ref_seeds, ref_side.loc[common].to_numpy(), arm_side.loc[common].to_numpy(),
                           int(n_failed), int(n_time_bound))

    def _side(self, workload: str, arm: str, values: np.ndarray) -> pd.Series:
        """`values` (one per measured trial) of one arm's trials, indexed by the baseline seed each
        is paired with."""
        rows = self._rows.get((workload, arm), np.array([], dtype=int))
        return pd.Series(values[rows], index=self._pair_seeds[rows]).sort_index()


def estimate(table: CostTable, workload: str, arm: str, metric: Metric, accounting: Accounting = "finetune",
             settings: BootstrapSettings = BootstrapSettings(),
             reference: str = BASELINE_ARM) -> SpeedupEstimate | None:
    """The speedup of `arm` over `reference` (cost(reference) / cost(arm)) on one workload;
    None when no seed pairs."""
    pairs = table.pair(workload, arm, metric, accounting, reference)
    if pairs.seeds.size == 0:
        return None
    speedups = pairs.speedups()
    rng = settings.rng(workload, arm, reference, metric.name, accounting)
    interval = paired_bootstrap(median_rows, [speedups], rng, settings.resamples, settings.confidence)
    return SpeedupEstimate(
        workload=workload, arm=arm, arm_kind=table.kind(workload, arm), techniques=table.techniques(workload, arm),
        reference=reference, metric=metric.name, accounting=accounting, seeds=tuple(int(s) for s in pairs.seeds),
        per_seed=tuple(float(s) for s in speedups), median=median(speedups), olympic_mean=olympic_mean(speedups),
        interval=interval, n_arm_missed=int(np.isinf(pairs.arm).sum()),
        n_reference_missed=int(np.isinf(pairs.baseline).sum()), n_failed=pairs.n_failed,
        deterministic=metric.deterministic, n_time_bound=pairs.n_time_bound)


def all_estimates(table: CostTable, settings: BootstrapSettings = BootstrapSettings()) -> list[SpeedupEstimate]:
    """Every arm but the baseline, on every workload, metric the workload spends and accounting
    the metric has. Arms in the order they first appear in the trials."""
    estimates = []
    for workload in table.workloads:
        if BASELINE_ARM not in table.arms(workload):
            continue
        for arm in (a for a in table.arms(workload) if a != BASELINE_ARM):
            for metric in table.metrics(workload):
                for accounting in (a for a in ACCOUNTINGS if supports(metric, a)):
                    found = estimate(table, workload, arm, metric, accounting, settings)
                    if found is not None:
                        estimates.append(found)
    return estimates


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
