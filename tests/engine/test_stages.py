import math

import pytest

from step7bench.engine.stages import (GateStage, Plugin, StageConflict, TransformStage, check_compatible,
                                      compose, warmup_cosine_factor)
from hypothesis import given, strategies as st


class _Transform(TransformStage):
    def transform(self, ctx, batch):
        return batch


class _Gate(GateStage):
    def gate(self, ctx, batch):
        return batch


def test_baseline_fills_every_stage_when_no_technique_is_given():
    stages = compose([])
    assert type(stages.select).__name__ == "AllExamples"
    assert type(stages.order).__name__ == "ShuffledEpochs"
    assert type(stages.step).__name__ == "PlainStep"
    assert type(stages.schedule).__name__ == "WarmupCosine"
    assert stages.transform == [] and stages.gate == []


def test_transforms_and_gates_chain_in_the_order_given():
    first, second = _Transform(), _Transform()
    gate_a, gate_b = _Gate(), _Gate()
    stages = compose([Plugin("a", transform=first, gate=gate_a), Plugin("b", transform=second, gate=gate_b)])
    assert stages.transform == [first, second]
    assert stages.gate == [gate_a, gate_b]


def test_a_transform_that_runs_first_goes_before_the_others_whatever_the_order():
    class Shard(_Transform):
        runs_first = True

    first, second, shard = _Transform(), _Transform(), Shard()
    stages = compose([Plugin("a", transform=first), Plugin("b", transform=second), Plugin("shard", transform=shard)])
    assert stages.transform == [shard, first, second]


def test_two_techniques_on_an_exclusive_stage_conflict_at_compose_time():
    from step7bench.engine.stages import PlainStep

    with pytest.raises(StageConflict, match="'a' and 'b' both fill the 'step' stage"):
        compose([Plugin("a", step=PlainStep()), Plugin("b", step=PlainStep())])


def test_conflicts_are_checked_from_stage_names_alone():
    check_compatible({"a": ["select", "gate"], "b": ["order", "gate"]})
    with pytest.raises(StageConflict):
        check_compatible({"a": ["schedule"], "b": ["schedule"]})


@given(warmup=st.integers(1, 50), total=st.integers(51, 500), step=st.integers(0, 600))
def test_schedule_factor_warms_up_then_decays_to_zero(warmup, total, step):
    factor = warmup_cosine_factor(step, warmup, total)
    assert 0.0 <= factor <= 1.0
    if step < warmup:
        assert math.isclose(factor, (step + 1) / warmup)
    if step >= total:
        assert factor == pytest.approx(0.0, abs=1e-12)
    if warmup <= step < total - 1:
        assert warmup_cosine_factor(step + 1, warmup, total) <= factor
