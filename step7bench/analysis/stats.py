"""Speedups over paired seeds: per-seed ratios, the median and olympic mean, and a paired
bootstrap percentile interval.

Infinite costs (missed targets) are part of the data, never dropped:

=====================  ==================  ==============================================
baseline               arm                 speedup cost(baseline) / cost(arm) for the seed
=====================  ==================  ==============================================
reached                reached             the ratio
reached                missed              0 (the arm never got there)
missed                 reached             inf (the arm got where the baseline could not)
missed                 missed              1: neither reached the target, so the seed holds
                                           no evidence that either costs less. Counting it
                                           as 1 keeps the seed (dropping it would hide that
                                           the arm failed too) and pulls the aggregate
                                           toward "no effect", never toward a claim.
=====================  ==================  ==============================================

Quantiles are order statistics, never interpolated, so infinite speedups cannot turn into NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples per interval; >= 2000 keeps the 2.5% / 97.5% order statistics stable
(Efron & Tibshirani 1993, ch. 13, advise >= 1000 for percentile intervals)."""

DEFAULT_CONFIDENCE = 0.95

BOTH_MISSED_SPEEDUP = 1.0
"""Speedup of a seed on which neither the baseline nor the arm reached the target (see above)."""


def seed_speedups(baseline_cost: Sequence[float], arm_cost: Sequence[float]) -> np.ndarray:
    """cost(baseline) / cost(arm) per seed, paired by position; costs in the same unit, inf = missed.

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


def median_rows(samples: np.ndarray) -> np.ndarray:
    """The median of each row of a 2-D array (mean of the two middle values for an even count).

    Values lie in [0, inf]; the mean of two middle values is never inf - inf, so never NaN.
    """
    ordered = np.sort(samples, axis=-1)
    n = ordered.shape[-1]
    return 0.5 * ordered[..., (n - 1) // 2] + 0.5 * ordered[..., n // 2]


def olympic_mean_rows(samples: np.ndarray) -> np.ndarray:
    """The mean of each row without its smallest and largest value (MLPerf Training's rule);
    the plain mean below three values."""
    ordered = np.sort(samples, axis=-1)
    if ordered.shape[-1] >= 3:
        ordered = ordered[..., 1:-1]
    return ordered.mean(axis=-1)


def median(values: Sequence[float]) -> float:
    return float(median_rows(np.asarray(values, dtype=float)[None, :])[0])


def olympic_mean(values: Sequence[float]) -> float:
    return float(olympic_mean_rows(np.asarray(values, dtype=float)[None, :])[0])


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval. `undefined_share` is the fraction of resamples whose
    statistic was undefined (NaN) and left out; 0 for a speedup."""

    low: float
    high: float
    undefined_share: float = 0.0

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


def percentile_interval(statistics: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The (1 - confidence)/2 and (1 + confidence)/2 quantiles of the bootstrap statistics as order
    statistics of the inverted empirical CDF (percentile interval, Efron & Tibshirani 1993, §13.3).

    NaN statistics (undefined resamples) are left out and their share reported; if all are NaN,
    the interval is NaN on both ends and callers report "undefined".
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must lie in (0, 1), got {confidence}")
    values = np.asarray(statistics, dtype=float).ravel()
    defined = np.sort(values[~np.isnan(values)])
    undefined_share = 1 - defined.size / values.size
    if defined.size == 0:
        return Interval(np.nan, np.nan, undefined_share)
    tail = (1 - confidence) / 2
    # Rounded before the ceiling so 0.025 * 2000 is 50, not 50.000000000000007.
    low_index = max(math.ceil(round(tail * defined.size, 9)) - 1, 0)
    high_index = math.ceil(round((1 - tail) * defined.size, 9)) - 1
    return Interval(float(defined[low_index]), float(defined[high_index]), undefined_share)


def paired_bootstrap(statistic: Callable[..., np.ndarray], columns: Sequence[np.ndarray], rng: np.random.Generator,
                     resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Bootstrap interval of `statistic` resampling whole seeds: row i of every column belongs to
    seed i, and one resample draws seeds with replacement and takes all their columns together,
    so the pairing (and any correlation between arms on one seed) is kept.

    `statistic(*resampled)` takes arrays of shape (resamples, seeds), one per column, and
    returns one value per resample. Callers pass columns in a canonical seed order (sorted
    by seed) so the interval does not depend on the order the trials were stored in.
    """
    if resamples < 1:
        raise ValueError(f"resamples: must be >= 1, got {resamples}")
    arrays = [np.asarray(column, dtype=float) for column in columns]
    n_seeds = arrays[0].shape[0] if arrays else 0
    if n_seeds == 0 or any(array.shape != (n_seeds,) for array in arrays):
        raise ValueError("columns: expected one or more 1-D arrays of the same non-zero length")
    picks = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    return percentile_interval(statistic(*(array[picks] for array in arrays)), confidence)


def ratio_of_medians(numerator: np.ndarray, *factors: np.ndarray) -> np.ndarray:
    """Row-wise median(numerator) / product of median(factor) for each factor: the interaction
    of a stack (numerator: its speedups) with the product of its techniques' speedups alone.

    A resample where the ratio is 0/0 or inf/inf is undefined (NaN): it says nothing about
    whether the speedups multiply. x/0 is inf and x/inf is 0 for the other x.
    """
    top = median_rows(numerator)
    bottom = np.ones_like(top)
    for factor in factors:
        with np.errstate(invalid="ignore"):  # 0 * inf within a product: undefined, kept as NaN
            bottom = bottom * median_rows(factor)
    with np.errstate(divide="ignore", invalid="ignore"):
        return top / bottom


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
