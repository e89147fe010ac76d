"""Speedups with missed targets: per-seed bounds on log speedups, an interval on their mean whose
coverage is checked by simulation, verdicts on claims, adaptive seeds with error spending, and a
log-rank comparison of unpaired arms. numpy and scipy only (and the verdict rule of stats.py).

Why. A percentile bootstrap of the median over 3 seeds is the [min, max] of three ratios and covers
75% (REFERENCES.md). Here the estimand is mu, the mean over seeds of d = log(cost_ref / cost_arm),
i.e. the log of the geometric-mean speedup, and a miss is censored data (DESIGN.md section 2): a
seed is an interval [low, high] on its d (`log_ratio_bounds`; `combine_bounds` for interactions).

Method (`log_mean_interval`). Model d_i ~ Normal(mu, sigma^2), censored (Tobit 1958).
- No seed censored: the paired t interval, closed form.
- Two or more exact seeds, some censored: the profile likelihood ratio of mu, sigma profiled out,
  with the Cox & Reid (1987) adjustment (one log sigma added: on uncensored data its LR statistic is
  (n - 1) log(1 + t^2 / (n - 1)), so n - 1 replaces n as in REML), inverted at the cutoff
  (m - 1) log(1 + q^2 / (m - 1)), q the t quantile with m - 1 degrees of freedom, m the number of
  EXACT seeds: the t interval again when nothing is censored.
- Fewer than two exact seeds: sigma cannot be estimated; the sign-test interval for the median
  (Thompson 1936), valid whatever the censoring, finite from 6 seeds on at 95% (e.g. 8 arms that
  all missed: mu <= the largest upper bound).

What the simulation showed (tests/analysis/test_censored.py: per seed a difficulty shared by both
arms, sd 0.1 in log, plus each arm's own noise; baseline budget at its own 90th percentile, arm
budget 1.33 x the baseline's median; mu in log{0.7, 1, 1.4}, sigma in {0.05, 0.15, 0.3}).
- The profile LR as first specified (plain likelihood, cutoff n log(1 + q^2 / (n - 1)) over all
  informative seeds) covered as little as 0.71 with misses, and 0.83-0.87 at n = 2 with only 5-14%
  missed (that run: baseline budget 1.15 x its median): one exact seed makes the likelihood
  unbounded as sigma -> 0 and the interval collapses to a point. The adjustment removes that.
- Adjusted, df from all informative seeds: 0.90-0.93 at n = 5, 8 when the arm misses often
  (speedup 0.7, ~40% of trials missed), the upper tail missing up to 9%. The cause is not small-n:
  a censored seed's bound log(cost_ref / arm_spent) shares cost_ref's noise with its d, so the
  censoring is informative for a model of d alone and biases the MLE. Counting a censored seed as
  half a degree of freedom still gave 0.90 at n = 8; counting only exact seeds (chosen) gives:

  ============  ==================================  =======================================
  speedup 0.7   missed 36-42% of trials             coverage 0.968-0.997, each tail <= 2.3%
  speedup 1.0   missed 5-11%                        coverage 0.944-0.964, each tail <= 3.3%
  speedup 1.4   missed 5%                           coverage 0.948-0.961, each tail <= 3.3%
  no misses     t interval                          coverage 0.942-0.960 (exact 0.95)
  ============  ==================================  =======================================

  (2000 replications per cell, n in {2, 3, 5, 8}, every sigma; the slow test grid.) With misses,
  at claim = truth, a false SUPPORTED (truth below the interval) or REFUTED (truth above it)
  happened <= 2.9% of the time each at n = 3, 5; <= 3.3% at n = 8.
- Robustness, same method: with a difficulty sd of 0.3, coverage >= 0.945 (one tail 4.1% at
  speedup 0.7, n = 8). If instead the arm's cost is the baseline's divided by an independent
  speedup, coverage >= 0.946 but the lower tail reaches up to 3.8% at n = 5, 8 (the baseline's
  misses are then the informative ones). The bias does not shrink with more seeds: re-run the
  grid before relying on n well above 8 with heavy censoring.

Adaptive seeds (`spending_levels`, `look_sizes`, `sequential_decision`): Lan & DeMets (1983)
spending, look k at confidence 1 - alpha_k, valid by the union bound. Simulated (3, 5, 7, 9 seeds,
alpha 0.05, 1000 runs, truth 1.2x): REFUTED of a 1.2x claim 1.9% (O'Brien-Fleming) / 2.1% (Pocock);
SUPPORTED of a 1.212x claim 1.3% / 0.9%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special, stats

from step7bench.analysis.stats import INCONCLUSIVE, Interval, verdict

CONFIDENCE = 0.95
"""Default two-sided confidence of an interval."""


_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_SIGMA_SPAN = 1e8
"""sigma is searched in [scale / span, scale * span], scale = the spread of the finite bounds."""
_MU_SPAN = 1e6
"""mu is searched within scale * span of the data; a bound farther out is reported infinite."""


@dataclass(frozen=True)
class CensoredEstimate:
    """The mean log speedup mu over seeds, with a confidence interval; log scale (natural log).

    `point` is the maximum-likelihood estimate of mu, the log of the geometric-mean speedup (the
    midpoint where a whole range of mu is a maximum): -inf or +inf when the data only bound it on
    one side (every seed's arm missed: -inf), NaN when nothing pins it (no informative seed, or
    censored seeds that contradict each other with fewer than two exact ones). `ci_low`/`ci_high`
    may be -inf/+inf; they are NaN never.

    Counts, over seeds: `n_exact` both arms reached the target; `n_upper_censored` only an upper
    bound on the seed's log speedup is known (the arm missed); `n_lower_censored` only a lower bound
    (the reference missed); `n_interval_censored` both bounds, finite and different (e.g. a crossing
    known only to lie between two checks); `n_uninformative` neither (both missed): left out.
    """

    point: float
    ci_low: float
    ci_high: float
    n_exact: int
    n_upper_censored: int
    n_lower_censored: int
    n_interval_censored: int
    n_uninformative: int
    method: str

    @property
    def n_informative(self) -> int:
        return self.n_exact + self.n_upper_censored + self.n_lower_censored + self.n_interval_censored

    @property
    def speedup(self) -> float:
        """exp(point): the geometric-mean speedup; 0 for -inf, inf for +inf."""
        return _exp(self.point)

    @property
    def speedup_low(self) -> float:
        return _exp(self.ci_low)

    @property
    def speedup_high(self) -> float:
        return _exp(self.ci_high)


def _exp(x: float) -> float:
    """exp with exp(-inf) = 0 and inf past the float range instead of an OverflowError."""
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def log_ratio_bounds(ref_cost: ArrayLike, arm_cost: ArrayLike, ref_spent: ArrayLike,
                     arm_spent: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (low, high) on each seed's log speedup d = log(ref_cost / arm_cost), paired by position.

    Costs are to the target in one unit (steps, FLOPs, seconds), inf where the trial missed it;
    `*_spent` is what each trial spent when it stopped (finite, positive; used only for a miss, whose
    cost is then known to exceed it, i.e. it is right-censored at it):

    ==========  ==========  ===================================  ==================
    reference   arm         what is known                        (low, high)
    ==========  ==========  ===================================  ==================
    reached     reached     d = log(ref_cost / arm_cost)         (d, d)
    reached     missed      d < log(ref_cost / arm_spent)        (-inf, that)
    missed      reached     d > log(ref_spent / arm_cost)        (that, +inf)
    missed      missed      nothing                              (-inf, +inf)
    ==========  ==========  ===================================  ==================
    """
    ref, arm = _costs(ref_cost, "ref_cost"), _costs(arm_cost, "arm_cost")
    ref_stop, arm_stop = _spent(ref_spent, "ref_spent"), _spent(arm_spent, "arm_spent")
    if not ref.shape == arm.shape == ref_stop.shape == arm_stop.shape:
        raise ValueError("ref_cost, arm_cost, ref_spent, arm_spent: expected one value per seed in each")
    ref_known = np.where(np.isfinite(ref), ref, ref_stop)
    arm_known = np.where(np.isfinite(arm), arm, arm_stop)
    ratio = np.log(ref_known / arm_known)
    low = np.where(np.isfinite(arm), ratio, -np.inf)
    high = np.where(np.isfinite(ref), ratio, np.inf)
    return low, high


def _costs(values: ArrayLike, name: str) -> np.ndarray:
    cost = np.asarray(values, dtype=float)
    if cost.ndim != 1 or np.isnan(cost).any() or (cost <= 0).any():
        raise ValueError(f"{name}: expected a 1-D array of positive costs (inf for a miss), got {cost.tolist()}")
    return cost


def _spent(values: ArrayLike, name: str) -> np.ndarray:
    spent = np.asarray(values, dtype=float)
    if spent.ndim != 1 or not np.isfinite(spent).all() or (spent <= 0).any():
        raise ValueError(f"{name}: expected a 1-D array of finite positive spent costs, got {spent.tolist()}")
    return spent


def combine_bounds(coefficients: Sequence[float], lows: Sequence[ArrayLike],
                   highs: Sequence[ArrayLike]) -> tuple[np.ndarray, np.ndarray]:
    """Bounds on sum_j c_j * d_j per seed, given per-seed bounds [lows[j], highs[j]] on each d_j.

    Interval arithmetic: a positive c_j adds c_j * [low_j, high_j], a negative one c_j * [high_j,
    low_j]; an infinite side stays infinite. Lows are never +inf and highs never -inf, so no
    inf - inf arises. Example: the interaction of a stack of techniques A and B on each seed is
    combine_bounds([1, -1, -1], [low_AB, low_A, low_B], [high_AB, high_A, high_B]): the log of the
    stacked speedup over the product of the alone speedups. From `log_ratio_bounds` inputs the
    result is exact, one-sided or uninformative, never two-sided: misses of opposite sense cancel
    all information (as does any uninformative factor), misses of one sense stay one-sided.
    """
    if not len(coefficients) == len(lows) == len(highs) or not coefficients:
        raise ValueError("coefficients, lows, highs: expected one or more terms, one of each per term")
    bounds = [_validated(low, high) for low, high in zip(lows, highs)]
    if len({low.shape for low, _ in bounds}) != 1:
        raise ValueError("lows, highs: expected the same seeds (length) in every term")
    total_low, total_high = np.zeros_like(bounds[0][0]), np.zeros_like(bounds[0][0])
    for c, (low, high) in zip(coefficients, bounds):
        if not (math.isfinite(c) and c != 0):
            raise ValueError(f"coefficients: expected finite non-zero values, got {c}")
        total_low += c * (low if c > 0 else high)
        total_high += c * (high if c > 0 else low)
    return total_low, total_high


def _validated(low: ArrayLike, high: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    low, high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    if low.shape != high.shape or low.ndim != 1:
        raise ValueError(f"low, high: expected 1-D arrays of one length, got shapes {low.shape} and {high.shape}")
    if np.isnan(low).any() or np.isnan(high).any() or np.isposinf(low).any() or np.isneginf(high).any():
        raise ValueError("low, high: expected low in [-inf, inf), high in (-inf, inf], no NaN")
    if (low > high).any():
        raise ValueError("low, high: expected low <= high on every seed")
    return low, high


def log_mean_interval(low: ArrayLike, high: ArrayLike, confidence: float = CONFIDENCE) -> CensoredEstimate:
    """Estimate and two-sided `confidence` interval of mu, the mean of the seeds' log speedups d_i,
    from per-seed bounds low_i <= d_i <= high_i (natural log; see `log_ratio_bounds`).

    Model: d_i ~ Normal(mu, sigma^2), independent across seeds, observed exactly or censored
    (Tobit 1958). The method depends on what the seeds hold (module docstring: why, and the
    coverage measured):

    - no informative seed: point NaN, interval (-inf, inf), method "no information";
    - every informative seed exact: the paired Student t interval mean +- q sd / sqrt(n), closed
      form; one seed gives (-inf, inf), identical values the point interval [x, x]; method "t";
    - two or more exact seeds and some censored: inversion of the adjusted profile likelihood ratio,
      cutoff calibrated on the t distribution with (exact seeds - 1) degrees of freedom; method
      "profile likelihood";
    - fewer than two exact seeds: the distribution-free sign-test interval for the median (Thompson
      1936), finite only from 6 seeds on at 95%, widened if need be to hold the point (the
      likelihood's maximum); method "sign test".

    `confidence` in (0, 1]; 1 gives (-inf, inf) except for identical exact values. Raises
    ValueError on malformed bounds only; never returns NaN bounds.
    """
    if not 0 < confidence <= 1:
        raise ValueError(f"confidence: must lie in (0, 1], got {confidence}")
    low, high = _validated(low, high)
    exact = low == high
    informative = np.isfinite(low) | np.isfinite(high)
    counts = dict(n_exact=int(exact.sum()), n_upper_censored=int((np.isneginf(low) & np.isfinite(high)).sum()),
                  n_lower_censored=int((np.isfinite(low) & np.isposinf(high)).sum()),
                  n_interval_censored=int((np.isfinite(low) & np.isfinite(high) & ~exact).sum()),
                  n_uninformative=int((~informative).sum()))
    if not informative.any():
        return CensoredEstimate(math.nan, -math.inf, math.inf, **counts, method="no information")
    if exact[informative].all():
        return _t_estimate(low[exact], confidence, counts)
    likelihood = _Likelihood(low[informative], high[informative])
    if likelihood.n_exact < 2:
        point = likelihood.maximum()
        ci_low, ci_high = _sign_interval(low[informative], high[informative], confidence)
        return CensoredEstimate(point, _nanmin(ci_low, point), _nanmax(ci_high, point), **counts, method="sign test")
    point, ci_low, ci_high = likelihood.interval(_cutoff(likelihood.n_exact, confidence))
    return CensoredEstimate(point, ci_low, ci_high, **counts, method="profile likelihood")


def _nanmin(bound: float, point: float) -> float:
    return bound if math.isnan(point) else min(bound, point)


def _nanmax(bound: float, point: float) -> float:
    return bound if math.isnan(point) else max(bound, point)


def _t_quantile(df: int, confidence: float) -> float:
    return float(stats.t.isf((1 - confidence) / 2, df))


def _t_estimate(x: np.ndarray, confidence: float, counts: dict[str, int]) -> CensoredEstimate:
    """The paired t interval (Student 1908) on exactly observed log speedups."""
    mean = float(x.mean())
    if x.size == 1:
        return CensoredEstimate(mean, -math.inf, math.inf, **counts, method="t")
    if np.ptp(x) == 0:
        return CensoredEstimate(float(x[0]), float(x[0]), float(x[0]), **counts, method="t")
    half = _t_quantile(x.size - 1, confidence) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return CensoredEstimate(mean, mean - half, mean + half, **counts, method="t")


def _cutoff(n: int, confidence: float) -> float:
    """Likelihood-ratio cutoff (n - 1) log(1 + q^2 / (n - 1)), q the t quantile with n - 1 degrees of
    freedom: for n uncensored normal values the adjusted profile LR statistic of mu equals
    (n - 1) log(1 + t^2 / (n - 1)), t the one-sample t statistic, so this cutoff reproduces the t
    interval exactly."""
    q = _t_quantile(n - 1, confidence)
    return (n - 1) * math.log1p(q * q / (n - 1))


def _sign_interval(low: np.ndarray, high: np.ndarray, confidence: float) -> tuple[float, float]:
    """The sign-test interval for the median of the d_i (Thompson 1936), valid whatever the
    censoring: with k the least count such that P(Binomial(n, 1/2) >= k) <= (1 - confidence) / 2,
    mu > the k-th smallest upper bound would need k seeds below their median; likewise below."""
    n = low.size
    tails = stats.binom.sf(np.arange(n + 1) - 1, n, 0.5)  # P(Binomial >= k), k = 0..n
    passing = np.flatnonzero(tails <= (1 - confidence) / 2)
    if passing.size == 0:
        return -math.inf, math.inf
    k = int(passing[0])
    return float(np.sort(low)[n - k]), float(np.sort(high)[k - 1])


class _Likelihood:
    """Log-likelihood of censored normal data in (mu, theta), theta = 1/sigma, with the data's bounds.

    Terms per seed, z = theta (bound - mu): exact x: log theta - z^2 / 2; d < h: log Phi(z_h);
    d > l: log Phi(-z_l); l < d < h: log(Phi(z_h) - Phi(z_l)). With at least one exact seed one
    log theta is taken off (the REML-type adjustment for estimating mu, Cox & Reid 1987): its profile
    LR on uncensored data is then (n - 1) log(1 + t^2 / (n - 1)), and a single exact seed no longer
    makes the likelihood unbounded as sigma -> 0. In (mu * theta, theta) every term is concave
    (Olsen 1978; Phi of an interval is log-concave), so for fixed mu there is one best theta and
    the profile in mu is unimodal: its level sets, hence the confidence set, are intervals.
    """

    def __init__(self, low: np.ndarray, high: np.ndarray) -> None:
        exact = low == high
        one_sided = np.isinf(low) ^ np.isinf(high)
        interval = ~exact & ~one_sided
        self.n_exact = int(exact.sum())
        self.exact = low[exact]
        # d < h as sign +1 with bound h; d > l as sign -1 with bound l: both log Phi(sign * theta * (bound - mu)).
        self.sign = np.where(np.isinf(low[one_sided]), 1.0, -1.0)
        self.bound = np.where(self.sign > 0, high[one_sided], low[one_sided])
        self.interval_low, self.interval_high = low[interval], high[interval]
        self.log_theta_power = self.n_exact - min(self.n_exact, 1)
        self.finite = np.concatenate([low[np.isfinite(low)], high[np.isfinite(high)]])
        self.hull = (float(self.finite.min()), float(self.finite.max()))
        self.consistent = (float(low.max()), float(high.min()))
        self.scale = self.hull[1] - self.hull[0] or 1.0
        self.span = self.scale * _MU_SPAN
        self.log_theta_range = (-math.log(self.scale * _SIGMA_SPAN), math.log(_SIGMA_SPAN / self.scale))

    def value(self, mu: float, theta: float) -> float:
        z = theta * (self.exact - mu)
        total = self.log_theta_power * math.log(theta) - 0.5 * float(z @ z)
        total += float(special.log_ndtr(theta * self.sign * (self.bound - mu)).sum())
        if self.interval_low.size:
            total += float(self._interval(mu, theta)[0].sum())
        return total

    def gradients(self, mu: float, theta: float) -> tuple[float, float]:
        """(theta * dvalue/dtheta, dvalue/dmu): the first is dimensionless, its sign is enough."""
        z = theta * (self.exact - mu)
        g_theta, g_mu = self.log_theta_power - float(z @ z), theta * float(z.sum())
        z = theta * self.sign * (self.bound - mu)
        mills = _mills(z)
        g_theta += float(z @ mills)
        g_mu -= theta * float(self.sign @ mills)
        if self.interval_low.size:
            _, r_low, r_high = self._interval(mu, theta)
            z_low, z_high = theta * (self.interval_low - mu), theta * (self.interval_high - mu)
            g_theta += float((z_high * r_high - z_low * r_low).sum())
            g_mu -= theta * float((r_high - r_low).sum())
        return g_theta, g_mu

    def _interval(self, mu: float, theta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _interval_terms(theta * (self.interval_low - mu), theta * (self.interval_high - mu),
                               theta * (self.interval_high - self.interval_low))

    def theta_hat(self, mu: float) -> float:
        """The best theta for this mu, clamped to the searched range. A function of mu alone (the
        search starts from the root mean square distance of the finite bounds to mu, never from a
        previous solution), so that root finders over mu see one function."""
        def slope(log_theta: float) -> float:
            return self.gradients(mu, math.exp(log_theta))[0]

        lowest, highest = self.log_theta_range
        spread = math.sqrt(float(np.mean((self.finite - mu) ** 2)))
        start = min(max(-math.log(spread), lowest), highest) if spread > 0 else highest
        rising = slope(start) > 0
        end = highest if rising else lowest
        bracket = _bracket(slope, start, rising, end, 0.5)
        return math.exp(end if bracket is None else optimize.brentq(slope, *sorted(bracket), xtol=1e-9))

    def profile(self, mu: float) -> float:
        return self.value(mu, self.theta_hat(mu))

    def profile_slope(self, mu: float) -> float:
        """d profile / d mu, which is dvalue/dmu at the best theta (envelope theorem)."""
        return self.gradients(mu, self.theta_hat(mu))[1]

    def maximum(self) -> float:
        """The maximum-likelihood mu. Consistent bounds with no more than one exact seed are all
        attained as sigma -> 0: every mu in [max low, min high] is a maximum and the midpoint is
        returned (-inf or +inf when that set is unbounded). NaN when the maximum lies at sigma ->
        infinity, where mu is not identified."""
        low, high = self.consistent
        if low <= high and self.log_theta_power == 0:
            return low if math.isinf(low) else high if math.isinf(high) else 0.5 * (low + high)
        start = 0.5 * sum(self.hull)
        rising = self.profile_slope(start) > 0
        bracket = _bracket(self.profile_slope, start, rising, start + (self.span if rising else -self.span),
                           self.scale / 4)
        if bracket is None:
            return math.nan
        mu = optimize.brentq(self.profile_slope, *sorted(bracket), xtol=1e-9 * self.scale, rtol=1e-12)
        return math.nan if math.log(self.theta_hat(mu)) <= self.log_theta_range[0] else mu

    def interval(self, cutoff: float) -> tuple[float, float, float]:
        """(mle, low, high): the set where 2 (max profile - profile(mu)) <= cutoff. Needs two or more
        exact seeds, so that the maximum is finite; identical exact seeds that every censored bound
        admits give the point interval, as sigma -> 0 makes the likelihood unbounded there."""
        low, high = self.consistent
        if low <= high:
            return low, low, low
        mu_hat = self.maximum()
        if math.isinf(cutoff) or math.isnan(mu_hat):  # the second never seen: a guard, not a case
            return mu_hat, -math.inf, math.inf
        level = self.profile(mu_hat) - cutoff / 2

        def excess(mu: float) -> float:
            return self.profile(mu) - level

        return mu_hat, self._crossing(excess, mu_hat, -1), self._crossing(excess, mu_hat, +1)

    def _crossing(self, excess: Callable[[float], float], start: float, direction: int) -> float:
        bracket = _bracket(excess, start, True, start + direction * self.span, self.scale / 4)
        if bracket is None:
            return direction * math.inf
        return optimize.brentq(excess, *sorted(bracket), xtol=1e-9 * self.scale, rtol=1e-12)


def _bracket(f: Callable[[float], float], start: float, positive: bool, end: float,
             step: float) -> tuple[float, float] | None:
    """(inner, outer): the first interval on the walk from `start` to `end`, in steps growing 4x,
    where f turns from `positive` (f(start) > 0) to the other sign; None if it never does."""
    direction = 1.0 if end >= start else -1.0
    inner = start
    while True:
        outer = start + direction * step
        if (outer - end) * direction >= 0:
            outer = end
        if (f(outer) > 0) != positive:
            return inner, outer
        if outer == end:
            return None
        inner, step = outer, 4 * step


def _mills(z: np.ndarray) -> np.ndarray:
    """phi(z) / Phi(z), stable in both tails: Phi(z) = erfcx(-z / sqrt 2) exp(-z^2 / 2) / 2."""
    return math.sqrt(2 / math.pi) / special.erfcx(-z / math.sqrt(2))


def _interval_terms(z_low: np.ndarray, z_high: np.ndarray,
                    width: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log D, phi(z_low) / D, phi(z_high) / D) for D = Phi(z_high) - Phi(z_low), `width` = z_high -
    z_low taken from the data (a difference of z would lose it). Computed in the lower tail (by
    symmetry when z_low > 0) through Mills ratios; an interval too narrow for Phi to resolve
    (D below 1e-6 of Phi(z_high)) uses D = phi(midpoint) * width, exact to O(width^2)."""
    flip = z_low > 0
    lower, upper = np.where(flip, -z_high, z_low), np.where(flip, -z_low, z_high)
    log_ratio = special.log_ndtr(lower) - special.log_ndtr(upper)  # log Phi(lower) / Phi(upper) <= 0
    narrow = log_ratio > -1e-6
    widen = -np.log1p(-np.exp(np.where(narrow, -1.0, log_ratio)))  # log Phi(upper) / D where not narrow
    middle = 0.5 * (lower + upper)
    with np.errstate(over="ignore"):  # in the branch np.where drops
        log_d = np.where(narrow, -0.5 * middle * middle - _LOG_SQRT_2PI + np.log(width),
                         special.log_ndtr(upper) - widen)
        at_upper = np.where(narrow, np.exp(-0.25 * width * (upper + middle)) / width,
                            _mills(upper) * np.exp(widen))
        at_lower = np.where(narrow, np.exp(0.25 * width * (lower + middle)) / width,
                            _mills(lower) * np.exp(log_ratio + widen))
    return log_d, np.where(flip, at_upper, at_lower), np.where(flip, at_lower, at_upper)


def claim_verdict(estimate: CensoredEstimate, claim: float) -> str:
    """`analysis.stats.verdict` of the estimate's interval, as speedups, against the claimed speedup."""
    return verdict(Interval(estimate.speedup_low, estimate.speedup_high), claim)


_SPENDING_SHAPES: dict[str, Callable[[float, float], float]] = {
    "obrien-fleming": lambda t, alpha: 2 * float(stats.norm.sf(stats.norm.isf(alpha / 2) / math.sqrt(t))),
    "pocock": lambda t, alpha: alpha * math.log1p((math.e - 1) * t),
}


def spending_levels(looks: int, alpha: float = 0.05, shape: str = "obrien-fleming") -> list[float]:
    """Error spent at each of `looks` equally spaced looks: increments of a Lan-DeMets (1983)
    spending function alpha(t) at information fractions t = k / looks, summing to `alpha`.

    "obrien-fleming": alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt t), which spends almost nothing
    early and keeps most of alpha for the last look; "pocock": alpha log(1 + (e - 1) t), nearly even.
    Look k's interval is taken at confidence 1 - levels[k - 1]; by the union bound the chance that
    any look's interval misses mu is <= alpha whatever the correlation between looks, so verdicts
    may be read after every look and the procedure stopped at the first decisive one.
    """
    if looks < 1 or int(looks) != looks:
        raise ValueError(f"looks: expected a positive integer, got {looks}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    if shape not in _SPENDING_SHAPES:
        raise ValueError(f"shape: expected one of {sorted(_SPENDING_SHAPES)}, got {shape!r}")
    spent = [0.0] + [_SPENDING_SHAPES[shape](k / looks, alpha) for k in range(1, looks + 1)]
    spent[-1] = alpha  # exact at t = 1, without the spending function's rounding
    return [after - before for before, after in zip(spent, spent[1:])]


def look_sizes(initial: int, batch: int, max_seeds: int) -> list[int]:
    """Seeds at each planned look: `initial`, then `batch` more per look, the last capped at
    `max_seeds`; e.g. (3, 2, 8) -> [3, 5, 7, 8]. Its length is the `looks` of the spending plan,
    fixed before the first look."""
    if not 1 <= initial <= max_seeds or batch < 1:
        raise ValueError(f"expected 1 <= initial <= max_seeds and batch >= 1, got {initial}, {batch}, {max_seeds}")
    return list(range(initial, max_seeds, batch)) + [max_seeds]


@dataclass(frozen=True)
class Decision:
    """One look of the sequential procedure: the verdict at this look's confidence, and whether to
    stop adding seeds (the verdict is decisive, or this was the last planned look)."""

    verdict: str
    stop: bool
    confidence: float
    estimate: CensoredEstimate


def sequential_decision(low: ArrayLike, high: ArrayLike, claim: float, look: int, looks: int,
                        alpha: float = 0.05, shape: str = "obrien-fleming") -> Decision:
    """The verdict on `claim` at look `look` (1-based) of `looks`, from all seeds so far (bounds as
    for `log_mean_interval`), at confidence 1 - spending_levels(looks, alpha, shape)[look - 1].
    The plan (looks, alpha, shape) must be fixed before the first look; the overall chance of a
    wrong verdict is then <= alpha (module docstring, measured)."""
    if not 1 <= look <= looks:
        raise ValueError(f"look: expected 1..{looks}, got {look}")
    confidence = 1 - spending_levels(looks, alpha, shape)[look - 1]
    estimate = log_mean_interval(low, high, confidence)
    outcome = claim_verdict(estimate, claim)
    return Decision(outcome, outcome != INCONCLUSIVE or look == looks, confidence, estimate)


def logrank_compare(times_a: ArrayLike, reached_a: ArrayLike, times_b: ArrayLike,
                    reached_b: ArrayLike) -> tuple[float, int]:
    """Two-sided log-rank test (Mantel 1966) that arms a and b reach the target equally fast, on
    unpaired trials (e.g. a data-selection technique against its random control at the same rate).

    A trial's time is its cost to the target when `reached`, else what it spent when it stopped
    (right-censored there). Returns (p_value, direction): direction +1 when a reached the target
    sooner than b (more of a's trials reached it than expected under equal hazards of reaching it),
    -1 when b did, 0 when neither (then p = 1). Uses scipy.stats.logrank on scipy.stats.CensoredData.
    """
    a, b = _survival(times_a, reached_a, "a"), _survival(times_b, reached_b, "b")
    with np.errstate(invalid="ignore", divide="ignore"):  # no variance (no events): 0/0, reported as p = 1
        result = stats.logrank(a, b)
    statistic = float(result.statistic)
    if math.isnan(statistic) or statistic == 0:
        return 1.0, 0
    return float(result.pvalue), 1 if statistic > 0 else -1


def _survival(times: ArrayLike, reached: ArrayLike, name: str) -> stats.CensoredData:
    time, hit = np.asarray(times, dtype=float), np.asarray(reached)
    if time.ndim != 1 or time.size == 0 or time.shape != hit.shape or hit.dtype != bool:
        raise ValueError(f"times_{name}, reached_{name}: expected equal-length 1-D arrays, reached boolean, non-empty")
    if not np.isfinite(time).all() or (time <= 0).any():
        raise ValueError(f"times_{name}: expected finite positive times, got {time.tolist()}")
    return stats.CensoredData(uncensored=time[hit], right=time[~hit])
