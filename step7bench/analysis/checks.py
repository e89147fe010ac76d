"""Checks that say whether a speedup means what it seems to: the A/A arm, and each data
technique against its random control.

- A/A: the baseline run again on other seeds, paired with the baseline. Its speedup interval
  must hold 1 on every metric; where it does not, seed-to-seed noise or a bias in the pairing
  is large enough to fake a speedup, and that metric's figures are not to be trusted.
- Controls: a technique that shrinks, reorders or skips data is compared with a random control
  at the same rate (random order with the same pacing, a random subset of the same size, random
  skipping at the same rate). Speedup over the control = cost(control) / cost(technique), paired
  by seed. Only if it beats the control does the technique's *idea* earn credit; otherwise the
  saving comes from the mere change of dataset size (Wu, Dyer & Neyshabur, ICLR 2021).
"""

from __future__ import annotations

from dataclasses import dataclass

from step7bench.analysis.claims import arm_for
from step7bench.analysis.speedups import AA_ARM, BootstrapSettings, CostTable, SpeedupEstimate, estimate

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

    @property
    def outcome(self) -> str | None:
        """BEATS when the interval of speedup over the control lies above 1, LOSES below, else TIES."""
        if self.technique_vs_control is None:
            return None
        interval = self.technique_vs_control.interval
        return BEATS if interval.low > 1 else LOSES if interval.high < 1 else TIES


def aa_checks(table: CostTable, settings: BootstrapSettings = BootstrapSettings()) -> list[AACheck]:
    """The A/A arm on every workload that ran one, on every metric the workload spends."""
    checks = []
    for workload in table.workloads:
        if AA_ARM not in table.arms(workload):
            continue
        for metric in table.metrics(workload):
            measured = estimate(table, workload, AA_ARM, metric, "finetune", settings)
            if measured is not None:
                checks.append(AACheck(workload, metric.name, measured))
    return checks


def control_comparisons(table: CostTable, settings: BootstrapSettings = BootstrapSettings()) -> list[ControlComparison]:
    """Each random-control arm against the arm of the technique it stands for (as the trials
    record it), where both ran, on every workload and metric the workload spends."""
    comparisons = []
    for workload in table.workloads:
        for control_arm in table.arms(workload):
            technique = table.control_of(workload, control_arm)
            technique_arm = arm_for(table, workload, [technique]) if technique else None
            if technique_arm is None:
                continue
            control = "+".join(table.techniques(workload, control_arm))
            for metric in table.metrics(workload):
                comparisons.append(ControlComparison(
                    workload=workload, technique=technique, control=control, metric=metric.name,
                    technique_vs_baseline=estimate(table, workload, technique_arm, metric, "finetune", settings),
                    control_vs_baseline=estimate(table, workload, control_arm, metric, "finetune", settings),
                    technique_vs_control=estimate(table, workload, technique_arm, metric, "finetune", settings,
                                                  reference=control_arm)))
    return comparisons
