"""The instrument's checks: can a speedup be told from noise (A/A), can a real one be seen
(positive controls), and does a data technique beat its random control.

- A/A: the baseline run again on other seeds, paired with the baseline. Its speedup interval
  must hold 1 on every metric; where it does not, seed-to-seed noise or a bias in the pairing
  is large enough to fake a speedup, and that metric's figures are not to be trusted.
- Positive controls (techniques/positive_controls.py), arms whose speedup is known:
  *warm start* (the run up to step k booked as pretraining) must show T/(T - k) in steps,
  finetune only, per seed, and 1 all-in; the *weakened reference* (the baseline at a scaled
  learning rate), with the baseline again, both trained to the weak target calibration set from
  the weakened reference's curves, must be found slower than the baseline (the interval of the
  baseline's speedup over it lies above 1) and by the factor calibration measured on its own
  seeds (the interval holds that expected speedup E). A control that fails makes the
  instrument untrustworthy on that workload.
- Controls: a technique that shrinks, reorders or skips data is compared with a random control
  at the same rate. Speedup over the control = cost(control) / cost(technique), paired by seed;
  whether it beats the control is decided by a log-rank test (Mantel 1966) on the two arms'
  times to target, misses censored at what they spent, so "reached 4/5 vs 0/5" is decisive when
  the data say so. Only if it beats the control does the technique's *idea* earn credit;
  otherwise the saving comes from the mere change of dataset size (Wu, Dyer & Neyshabur 2021).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from step7bench.analysis.censored import logrank_compare
from step7bench.analysis.claims import arm_for
from step7bench.analysis.metrics import get_metric
from step7bench.analysis.speedups import AA_ARM, CostTable, SpeedupEstimate, estimate
from step7bench.analysis.stats import DEFAULT_CONFIDENCE
from step7bench.harness.matrix import BASELINE_AT_WEAK_TARGET
from step7bench.techniques.positive_controls import WARM_START, WEAK_REFERENCE

BEATS, LOSES, TIES = "beats its control", "loses to its control", "not distinguishable from its control"


@dataclass(frozen=True)
class AACheck:
    """The A/A arm on one workload and metric; `holds_one` says whether its interval contains 1."""

    workload: str
    metric: str
    measured: SpeedupEstimate

    @property
    def holds_one(self) -> bool:
        return self.measured.interval.holds(1.0)


@dataclass(frozen=True)
class ControlComparison:
    """A technique against its random control on one workload and metric (finetune accounting)."""

    workload: str
    technique: str
    control: str
    metric: str
    technique_vs_baseline: SpeedupEstimate | None
    control_vs_baseline: SpeedupEstimate | None
    technique_vs_control: SpeedupEstimate | None
    p_value: float
    direction: int  # +1: the technique reached the target sooner, -1: the control did, 0: neither
    alpha: float = 1 - DEFAULT_CONFIDENCE  # the test's level: one minus the intervals' confidence beside it

    @property
    def outcome(self) -> str:
        """BEATS or LOSES when the log-rank test is significant at `alpha`, in its direction."""
        if self.p_value < self.alpha and self.direction:
            return BEATS if self.direction > 0 else LOSES
        return TIES


@dataclass(frozen=True)
class PositiveControl:
    """A control of known speedup on one workload: what it should show, what it showed."""

    name: str
    workload: str
    metric: str
    expected: float | None
    measured: SpeedupEstimate | None
    holds: bool
    detail: str  # one line: what was checked

    @property
    def ci_low(self) -> float | None:
        return self.measured.interval.low if self.measured else None

    @property
    def ci_high(self) -> float | None:
        return self.measured.interval.high if self.measured else None


def aa_checks(table: CostTable, confidence: float) -> list[AACheck]:
    """The A/A arm on every workload that ran one, on every metric the workload spends."""
    checks = []
    for workload in table.workloads:
        if AA_ARM not in table.arms(workload):
            continue
        for metric in table.metrics(workload):
            measured = estimate(table, workload, AA_ARM, metric, "finetune", confidence)
            if measured is not None:
                checks.append(AACheck(workload, metric.name, measured))
    return checks


def control_comparisons(table: CostTable, confidence: float) -> list[ControlComparison]:
    """Each random-control arm against the arm of the technique it stands for (as the trials
    record it), where both ran, on every workload and metric the workload spends."""
    comparisons = []
    for workload in table.workloads:
        for control_arm in table.arms(workload):
            technique = table.control_of(workload, control_arm)
            technique_arm = arm_for(table, workload, [technique]) if technique else None
            if technique_arm is None:
                continue
            for metric in table.metrics(workload):
                p_value, direction = _logrank(table, workload, technique_arm, control_arm, metric)
                comparisons.append(ControlComparison(
                    workload=workload, technique=technique, control="+".join(table.techniques(workload, control_arm)),
                    metric=metric.name,
                    technique_vs_baseline=estimate(table, workload, technique_arm, metric, "finetune", confidence),
                    control_vs_baseline=estimate(table, workload, control_arm, metric, "finetune", confidence),
                    technique_vs_control=estimate(table, workload, technique_arm, metric, "finetune", confidence,
                                                  reference=control_arm),
                    p_value=p_value, direction=direction, alpha=1 - confidence))
    return comparisons


def _logrank(table: CostTable, workload: str, technique_arm: str, control_arm: str, metric) -> tuple[float, int]:
    pairs = table.pair(workload, technique_arm, metric, reference=control_arm)
    if not pairs.seeds.size:
        return 1.0, 0
    technique_times = np.where(np.isfinite(pairs.arm), pairs.arm, pairs.arm_spent)
    control_times = np.where(np.isfinite(pairs.baseline), pairs.baseline, pairs.baseline_spent)
    return logrank_compare(technique_times, np.isfinite(pairs.arm), control_times, np.isfinite(pairs.baseline))


def positive_controls(table: CostTable, trials: pd.DataFrame, expected_weak: Mapping[str, float],
                      confidence: float) -> list[PositiveControl]:
    """The warm start and the weakened reference on every workload that ran them. `expected_weak`
    holds calibration's measured baseline speedup over the weakened reference, per workload."""
    controls = []
    for workload in table.workloads:
        arms = table.arms(workload)
        if WARM_START in arms:
            controls.append(_warm_start(table, trials[trials["workload"] == workload], workload, confidence))
        if WEAK_REFERENCE in arms and BASELINE_AT_WEAK_TARGET in arms:
            controls.append(_weak_reference(table, workload, expected_weak.get(workload), confidence))
    return controls


def _warm_start(table: CostTable, trials: pd.DataFrame, workload: str, confidence: float) -> PositiveControl:
    steps = get_metric("steps")
    finetune = estimate(table, workload, WARM_START, steps, "finetune", confidence)
    all_in = estimate(table, workload, WARM_START, steps, "all_in", confidence)
    expected_per_seed = _expected_warm_start(trials[trials["arm"] == WARM_START], finetune.seeds if finetune else ())
    if finetune is None or all_in is None or not expected_per_seed:
        return PositiveControl("warm start", workload, "steps", None, finetune, False,
                               "the warm-start arm reached the target on no seed after its handover")
    expected = math.exp(float(np.mean(np.log(expected_per_seed))))
    exact = np.allclose(finetune.per_seed, expected_per_seed, rtol=1e-9, atol=0.0)
    holds = finetune.interval.holds(expected) and all_in.interval.holds(1.0)
    return PositiveControl(
        "warm start", workload, "steps", expected, finetune, holds,
        f"finetune-only steps speedup T/(T-k) expected {expected:.3f}, measured {finetune.point:.3f} "
        f"[{finetune.interval.low:.3f}, {finetune.interval.high:.3f}], "
        f"{'exact on every seed' if exact else 'not exact on every seed'}; all-in "
        f"{all_in.point:.3f} [{all_in.interval.low:.3f}, {all_in.interval.high:.3f}] (expected 1)")


def _expected_warm_start(trials: pd.DataFrame, seeds) -> list[float]:
    """T/(T - k) per seed (in `seeds` order), from each warm-start trial's steps to target T and
    its handover step k; empty if any seed missed or reached before its handover."""
    by_seed = trials.set_index("seed")
    expected = []
    for seed in seeds:
        row = by_seed.loc[seed]
        handover = json.loads(row["technique_stats"]).get(WARM_START, {}).get("handover_step", 0)
        target_step = row["steps_to_target"]
        if not (target_step == target_step) or target_step <= handover:  # NaN: missed
            return []
        expected.append(float(target_step) / (float(target_step) - handover))
    return expected


def _weak_reference(table: CostTable, workload: str, expected: float | None, confidence: float) -> PositiveControl:
    steps = get_metric("steps")
    measured = estimate(table, workload, BASELINE_AT_WEAK_TARGET, steps, "finetune", confidence,
                        reference=WEAK_REFERENCE)
    sees_it = measured is not None and measured.interval.low > 1.0
    agrees = expected is not None and measured is not None and measured.interval.holds(expected)
    found = (f"measured {measured.point:.3f} [{measured.interval.low:.3f}, {measured.interval.high:.3f}]"
             if measured else "not measured")
    basis = f"expected {expected:.3f}x, as calibration measured it on its own seeds" if expected else \
        "no calibrated expectation"
    return PositiveControl(
        "weakened reference", workload, "steps", expected, measured, sees_it and agrees,
        f"the baseline's steps speedup over itself at a scaled learning rate, both to the weak target: {found}; "
        f"{basis}; it holds when the interval lies above 1 and holds the expected speedup")
