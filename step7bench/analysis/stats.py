"""What every estimate shares: per-seed speedups as numbers, the median, intervals and verdicts.

The intervals themselves come from `analysis.censored` (a censored log-normal model of the
per-seed log speedups). Here a seed's speedup is also kept as one number for the gate, which
compares seed by seed:

=====================  ==================  ==============================================
baseline               arm                 number for the seed
=====================  ==================  ==============================================
reached                reached             cost(baseline) / cost(arm)
reached                missed              0 (the arm never got there)
missed                 reached             inf (the arm got where the baseline could not)
missed                 missed              1: neither reached the target
=====================  ==================  ==============================================

Reports never show these codes for a miss: a miss is shown as censored ("missed k/n, < bound").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95
BOTH_MISSED_SPEEDUP = 1.0
"""The gate's number for a seed on which neither the baseline nor the arm reached the target."""


def seed_speedups(baseline_cost: Sequence[float], arm_cost: Sequence[float]) -> np.ndarray:
    """cost(baseline) / cost(arm) per seed, paired by position, with the codes above for misses;
    costs in the same unit, inf = missed.

    Returns values in [0, inf], never NaN. Raises ValueError for mismatched lengths, NaN,
    negative costs, or a zero cost (a metric the workload does not spend, e.g. tokens of a
    classifier, has no speedup).
    """
    base = np.asarray(baseline_cost, dtype=float)
    arm = np.asarray(arm_cost, dtype=float)
    if base.shape != arm.shape or base.ndim != 1:
        raise ValueError(f"arm_cost: expected one cost per baseline seed, got shapes {base.shape} and {arm.shape}")
    for name, cost in (("baseline_cost", base), ("arm_cost", arm)):
        if np.isnan(cost).any() or (cost <= 0).any():
            raise ValueError(f"{name}: costs must be positive (inf for a missed target), got {cost.tolist()}")
    speedup = np.full(base.shape, BOTH_MISSED_SPEEDUP)
    finite = np.isfinite(base) & np.isfinite(arm)
    speedup[finite] = base[finite] / arm[finite]
    speedup[np.isfinite(base) & np.isinf(arm)] = 0.0
    speedup[np.isinf(base) & np.isfinite(arm)] = np.inf
    return speedup


def median(values: Sequence[float]) -> float:
    """The median (mean of the two middle values for an even count; never inf - inf: the values
    lie in [0, inf])."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = len(ordered)
    return float(0.5 * ordered[(n - 1) // 2] + 0.5 * ordered[n // 2])


@dataclass(frozen=True)
class Interval:
    """A confidence interval on a speedup (0 and inf allowed as bounds; NaN: undefined)."""

    low: float
    high: float

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


Verdict = str
SUPPORTED, REFUTED, INCONCLUSIVE, NOT_MEASURED = "SUPPORTED", "REFUTED", "INCONCLUSIVE", "NOT MEASURED"


def verdict(interval: Interval, claimed: float) -> Verdict:
    """SUPPORTED when the interval's lower bound >= the claimed factor, REFUTED when its upper
    bound < the claimed factor, INCONCLUSIVE otherwise (DESIGN.md §2)."""
    if interval.low >= claimed:
        return SUPPORTED
    if interval.high < claimed:
        return REFUTED
    return INCONCLUSIVE
