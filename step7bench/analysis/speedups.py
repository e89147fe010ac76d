"""Speedups of every arm over a reference arm, paired by seed, on every metric and accounting.

Pairing (the harness's design): every trial records the baseline seed it is paired with
(`pair_seed`): its own seed for the arms that share seeds with the baseline, baseline seed i for
the A/A arm's trial on another seed. Failed trials (the code raised) measured nothing: the pair
is left out on both sides and the failure counted in `n_failed`.

A seed's speedup is cost(reference) / cost(arm) to the target. A trial that missed the target is
right-censored at what it spent (AlgoPerf keeps misses; they are never dropped and never zero):
a missed arm bounds the seed's speedup from above, a missed reference from below, and a seed
where both missed says nothing. The speedup over seeds is the geometric mean, with an interval
from the censored log-normal model of `analysis.censored` (exactly the paired t-interval on log
speedups when nothing is censored), whose coverage is checked by simulation in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from step7bench.analysis.censored import CensoredEstimate, log_mean_interval, log_ratio_bounds
from step7bench.analysis.metrics import (ACCOUNTINGS, DEFAULT_DOWNSTREAM_TASKS, METRICS, Accounting, Metric,
                                         costs_to_target, spent, supports)
from step7bench.analysis.stats import DEFAULT_CONFIDENCE, Interval, median, seed_speedups
from step7bench.engine import TIME_BOUND

BASELINE_ARM = "baseline"
AA_ARM = "aa"


@dataclass(frozen=True)
class PairedCosts:
    """Costs to target (inf: missed) and what each trial spent, of one arm and its reference on
    the baseline seeds where both measured something, in seed order. `seeds` are the arm's own
    seeds, `baseline_seeds` the reference's (they differ only for the A/A arm)."""

    seeds: np.ndarray
    baseline_seeds: np.ndarray
    baseline: np.ndarray
    arm: np.ndarray
    baseline_spent: np.ndarray
    arm_spent: np.ndarray
    n_failed: int
    n_time_bound: int = 0  # paired trials (either side) stopped by their wall-clock budget

    def speedups(self) -> np.ndarray:
        """Per seed, as a number: the ratio, 0 when the arm missed, inf when only the reference did,
        1 when both did (`analysis.stats.seed_speedups`; the gate compares these)."""
        return seed_speedups(self.baseline, self.arm)

    def log_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per seed, bounds on the log speedup (equal where both reached)."""
        return log_ratio_bounds(self.baseline, self.arm, self.baseline_spent, self.arm_spent)


@dataclass(frozen=True)
class SpeedupEstimate:
    """The speedup of one arm over a reference arm (the baseline unless stated) on one metric:
    cost(reference) / cost(arm), per seed and over seeds (the geometric mean of the censored
    model, with its interval)."""

    workload: str
    arm: str
    arm_kind: str
    techniques: tuple[str, ...]
    reference: str
    metric: str
    accounting: Accounting
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]
    per_seed_low: tuple[float, ...]  # bounds on each seed's speedup: equal where both reached
    per_seed_high: tuple[float, ...]
    estimate: CensoredEstimate
    n_arm_missed: int
    n_reference_missed: int
    n_failed: int
    deterministic: bool
    n_time_bound: int = 0

    @property
    def point(self) -> float:
        """The geometric-mean speedup (0 when every informative seed's arm missed, inf when
        every reference did; NaN when no seed says anything)."""
        return self.estimate.speedup

    @property
    def median(self) -> float:
        """The median of the per-seed numbers (the gate's aggregate)."""
        return median(self.per_seed)

    @property
    def interval(self) -> Interval:
        return Interval(self.estimate.speedup_low, self.estimate.speedup_high)

    @property
    def censored(self) -> bool:
        return bool(self.n_arm_missed or self.n_reference_missed)

    @property
    def n_both_missed(self) -> int:
        return self.estimate.n_uninformative

    @property
    def n_reached(self) -> int:
        """Seeds on which the arm reached the target."""
        return self.n_seeds - self.n_arm_missed

    @property
    def upper_bound(self) -> float:
        """When the arm missed on every seed: the largest speedup its misses allow, over the seeds
        where the reference reached the target (a seed where both missed bounds nothing); NaN
        otherwise, or when no seed bounds it."""
        if self.n_arm_missed != self.n_seeds or not self.n_seeds:
            return float("nan")
        bounds = [high for high in self.per_seed_high if high < float("inf")]
        return max(bounds) if bounds else float("nan")

    @property
    def time_bound(self) -> bool:
        """Whether a paired trial stopped on `max_seconds`: its counts then depend on the machine's
        speed, so even a deterministic metric is not exactly reproducible."""
        return self.n_time_bound > 0

    @property
    def n_seeds(self) -> int:
        return len(self.per_seed)


class CostTable:
    """Every measured trial's cost to target and spend on every metric and accounting, computed
    once and indexed by (workload, arm), so the many estimates of a report pair arrays, not frames.

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
        self._targets = dict(zip(zip(trials["workload"], trials["arm"]), trials["target_val_loss"].astype(float)))
        variants = trials["variant"] if "variant" in trials else pd.Series(None, index=trials.index)
        self._variants = {(w, a): v if isinstance(v, str) else "tuned"
                          for w, a, v in zip(trials["workload"], trials["arm"], variants)}
        pairs = [(metric, accounting) for metric in METRICS for accounting in ACCOUNTINGS
                 if supports(metric, accounting)]
        self._costs = {(m.name, a): costs_to_target(measured, m, a, downstream_tasks).to_numpy() for m, a in pairs}
        self._spent = {(m.name, a): spent(measured, m, a, downstream_tasks).to_numpy() for m, a in pairs}
        self._pretrain = {metric.name: measured[metric.pretrain_column].to_numpy(dtype=float)
                          for metric in METRICS if metric.pretrain_column}
        self._metrics = {workload: self._spent_metrics(measured, rows) for workload, rows in
                         measured.groupby("workload", sort=True).indices.items()}

    @staticmethod
    def _spent_metrics(measured: pd.DataFrame, rows: np.ndarray) -> list[Metric]:
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

    def variant(self, workload: str, arm: str) -> str:
        """"tuned", or "as_specified" for an arm at the seed document's settings."""
        return self._variants[(workload, arm)]

    def metrics(self, workload: str) -> list[Metric]:
        return self._metrics.get(workload, [])

    def same_target(self, workload: str, arm: str, reference: str = BASELINE_ARM) -> bool:
        """Whether two arms trained to one target: only then is one's cost a speedup over the other's."""
        return self._targets[(workload, arm)] == self._targets[(workload, reference)]

    def pretrained(self, workload: str, arm: str, metric: Metric) -> bool:
        """Whether any trial of the arm spent something on pretraining in `metric`."""
        rows = self._rows.get((workload, arm), np.array([], dtype=int))
        return metric.name in self._pretrain and bool((self._pretrain[metric.name][rows] > 0).any())

    def pair(self, workload: str, arm: str, metric: Metric, accounting: Accounting = "finetune",
             reference: str = BASELINE_ARM, max_pair_seeds: int | None = None) -> PairedCosts:
        """Pair `arm` with `reference` on one workload (see the module docstring), on the first
        `max_pair_seeds` baseline seeds when given (an adaptive design's look)."""
        for name in (arm, reference):
            if (workload, name) not in self._info:
                raise ValueError(f"arm: no trials of {name!r} on {workload!r}")
        # By the pair seed each trial records, never by position: a failed trial on either side
        # would otherwise shift every later pair onto the wrong partner.
        key = (metric.name, accounting)
        arm_cost, ref_cost = self._side(workload, arm, self._costs[key]), self._side(workload, reference,
                                                                                   self._costs[key])
        common = arm_cost.index.intersection(ref_cost.index).sort_values()
        if max_pair_seeds is not None:
            common = common[common < max_pair_seeds]
        n_failed = self._failed.get((workload, arm), 0) + self._failed.get((workload, reference), 0)
        n_time_bound = (self._side(workload, arm, self._time_bound).loc[common].sum()
                        + self._side(workload, reference, self._time_bound).loc[common].sum())
        return PairedCosts(
            seeds=self._side(workload, arm, self._seeds).loc[common].to_numpy(),
            baseline_seeds=self._side(workload, reference, self._seeds).loc[common].to_numpy(),
            baseline=ref_cost.loc[common].to_numpy(), arm=arm_cost.loc[common].to_numpy(),
            baseline_spent=self._side(workload, reference, self._spent[key]).loc[common].to_numpy(),
            arm_spent=self._side(workload, arm, self._spent[key]).loc[common].to_numpy(),
            n_failed=int(n_failed), n_time_bound=int(n_time_bound))

    def _side(self, workload: str, arm: str, values: np.ndarray) -> pd.Series:
        """`values` (one per measured trial) of one arm's trials, indexed by the baseline seed each
        is paired with."""
        rows = self._rows.get((workload, arm), np.array([], dtype=int))
        return pd.Series(values[rows], index=self._pair_seeds[rows]).sort_index()


def estimate(table: CostTable, workload: str, arm: str, metric: Metric, accounting: Accounting = "finetune",
             confidence: float = DEFAULT_CONFIDENCE, reference: str = BASELINE_ARM,
             max_pair_seeds: int | None = None) -> SpeedupEstimate | None:
    """The speedup of `arm` over `reference` (cost(reference) / cost(arm)) on one workload, with an
    interval at `confidence`; None when no seed pairs (either arm absent there: a shard's folder
    may hold an arm without its baseline)."""
    if not {arm, reference} <= set(table.arms(workload)):
        return None
    pairs = table.pair(workload, arm, metric, accounting, reference, max_pair_seeds)
    if pairs.seeds.size == 0:
        return None
    low, high = pairs.log_bounds()
    with np.errstate(over="ignore"):
        per_seed_low, per_seed_high = np.exp(low), np.exp(high)
    return SpeedupEstimate(
        workload=workload, arm=arm, arm_kind=table.kind(workload, arm), techniques=table.techniques(workload, arm),
        reference=reference, metric=metric.name, accounting=accounting, seeds=tuple(int(s) for s in pairs.seeds),
        per_seed=tuple(float(s) for s in pairs.speedups()), per_seed_low=tuple(map(float, per_seed_low)),
        per_seed_high=tuple(map(float, per_seed_high)), estimate=log_mean_interval(low, high, confidence),
        n_arm_missed=int(np.isinf(pairs.arm).sum()), n_reference_missed=int(np.isinf(pairs.baseline).sum()),
        n_failed=pairs.n_failed, deterministic=metric.deterministic, n_time_bound=pairs.n_time_bound)


def all_estimates(table: CostTable, confidence: float = DEFAULT_CONFIDENCE) -> list[SpeedupEstimate]:
    """Every arm but the baseline that trained to the baseline's target, on every workload, metric
    the workload spends and accounting the metric has. Arms in the order they first appear."""
    estimates = []
    for workload in table.workloads:
        if BASELINE_ARM not in table.arms(workload):
            continue
        for arm in (a for a in table.arms(workload) if a != BASELINE_ARM and table.same_target(workload, a)):
            for metric in table.metrics(workload):
                for accounting in (a for a in ACCOUNTINGS if supports(metric, a)):
                    found = estimate(table, workload, arm, metric, accounting, confidence)
                    if found is not None:
                        estimates.append(found)
    return estimates
