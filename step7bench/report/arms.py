"""Which arms the report shows together: per technique, its arm at the tuned settings, at the seed
document's settings, and its random control, beside the baseline; and the stacks.

Read from the trials table (each trial records its arm's kind, techniques, variant and the
technique a control stands for), so any suite's matrix is grouped the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from step7bench.analysis.speedups import AA_ARM, BASELINE_ARM

AS_SPECIFIED = "as_specified"
NOT_TECHNIQUE_KINDS = ("baseline", "aa", "control", "positive_control")
ROLES = ("baseline", "tuned", "as_specified", "control")
ROLE_LABELS = {"baseline": "baseline", "aa": "A/A (baseline, other seeds)", "tuned": "tuned",
               "as_specified": "as specified", "control": "random control"}


@dataclass(frozen=True)
class ArmInfo:
    workload: str
    arm: str
    kind: str
    techniques: tuple[str, ...]
    control_of: str | None
    variant: str


@dataclass
class TechniqueArms:
    """The arms of one technique, per workload: role ("tuned", "as_specified", "control") -> arm,
    and the stacks (two or more techniques) it is part of."""

    technique: str
    roles: dict[str, dict[str, str]] = field(default_factory=dict)  # workload -> role -> arm
    stacks: dict[str, list[str]] = field(default_factory=dict)  # workload -> arms

    def arms(self, workload: str) -> dict[str, str]:
        """Role -> arm on `workload`, the baseline first, in ROLES order."""
        mine = self.roles.get(workload, {})
        return {role: mine[role] for role in ROLES if role in mine}

    @property
    def runs_alone(self) -> bool:
        return any(set(roles) - {"baseline"} for roles in self.roles.values())


def arm_infos(trials: pd.DataFrame) -> list[ArmInfo]:
    """One entry per (workload, arm), in the order the arms first appear in the trials."""
    variants = trials["variant"] if "variant" in trials else pd.Series(None, index=trials.index)
    controls = trials["control_of"] if "control_of" in trials else pd.Series(None, index=trials.index)
    infos: dict[tuple[str, str], ArmInfo] = {}
    for workload, arm, kind, techniques, control, variant in zip(
            trials["workload"], trials["arm"], trials["arm_kind"], trials["techniques"], controls, variants):
        if (workload, arm) not in infos:
            infos[(workload, arm)] = ArmInfo(str(workload), str(arm), str(kind), tuple(techniques),
                                             control if isinstance(control, str) else None,
                                             variant if isinstance(variant, str) else "tuned")
    return list(infos.values())


def technique_arms(trials: pd.DataFrame) -> list[TechniqueArms]:
    """Every technique of the matrix (those in its arms, and those a control stands for), in the
    order they first appear; positive controls are the instrument's, not techniques."""
    infos = arm_infos(trials)
    order: dict[str, TechniqueArms] = {}

    def entry(name: str) -> TechniqueArms:
        return order.setdefault(name, TechniqueArms(name))

    for info in infos:
        if info.kind == "control" and info.control_of:
            entry(info.control_of).roles.setdefault(info.workload, {})["control"] = info.arm
        elif info.kind not in NOT_TECHNIQUE_KINDS:
            for technique in info.techniques:
                found = entry(technique)
                if len(info.techniques) > 1:
                    found.stacks.setdefault(info.workload, []).append(info.arm)
                else:
                    role = AS_SPECIFIED if info.variant == AS_SPECIFIED else "tuned"
                    found.roles.setdefault(info.workload, {}).setdefault(role, info.arm)
    baselines = {info.workload for info in infos if info.arm == BASELINE_ARM}
    for found in order.values():
        for workload in baselines:
            if found.roles.get(workload):
                found.roles[workload]["baseline"] = BASELINE_ARM
    return list(order.values())


def stack_arms(trials: pd.DataFrame, workload: str) -> list[ArmInfo]:
    """The arms of two or more techniques on `workload` (stacks, leave-one-out, pairs, cumulative)."""
    return [info for info in arm_infos(trials) if info.workload == workload and len(info.techniques) > 1
            and info.kind not in NOT_TECHNIQUE_KINDS]


def reference_arms(trials: pd.DataFrame, workload: str) -> list[str]:
    """The baseline and the A/A arm of `workload`, where they ran."""
    present = set(trials.loc[trials["workload"] == workload, "arm"])
    return [arm for arm in (BASELINE_ARM, AA_ARM) if arm in present]
