"""The training loop: stage order, charging, stopping rules, determinism, failure handling."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from step7bench.engine import (GateStage, InitStage, Plugin, SelectStage, StepStage, TransformStage,
                               run_trial)
from step7bench.engine import loop
from step7bench.engine.stages import PlainStep, ShuffledEpochs, WarmupCosine
from step7bench.measure.energy import EnergyMeter
from step7bench.measure.flops import FlopCounter
from step7bench.workloads.base import ExampleDataset

NONDETERMINISTIC = {"wall_train_s", "wall_overhead_s", "wall_eval_s", "device_s", "energy_j", "energy_eval_j",
                    "wall_s", "peak_memory_bytes", "energy_method", "wall_audit_s", "energy_audit_j"}


def _with_budget(workload, **changes):
    workload.preset = dataclasses.replace(workload.preset, budget=dataclasses.replace(workload.budget, **changes))
    return workload


class _Recorder:
    """Stages that log every call, so the test can read the order back."""

    def __init__(self):
        self.calls: list[str] = []

    def plugin(self) -> Plugin:
        log = self.calls

        class Select(SelectStage):
            def setup(self, ctx):
                self.ids = ctx.train.all_ids()[: len(ctx.train) // 2]

            def in_play(self, ctx):
                log.append("select")
                return self.ids

        class Order(ShuffledEpochs):
            def next_ids(self, ctx, in_play, batch_size):
                log.append("order")
                return super().next_ids(ctx, in_play, batch_size)

        class Transform(TransformStage):
            def transform(self, ctx, batch):
                log.append("transform")
                return batch

        class Gate(GateStage):
            """Keeps every other example and pays for one scoring pass over the batch."""

            def gate(self, ctx, batch):
                log.append("gate")
                with ctx.overhead():
                    ctx.score(batch)
                return batch.subset(torch.arange(0, len(batch), 2))

        class Step(PlainStep):
            def step(self, ctx, batch):
                log.append("step")
                return super().step(ctx, batch)

        class Schedule(WarmupCosine):
            def after_optimizer_step(self, ctx, loss):
                log.append("schedule")
                super().after_optimizer_step(ctx, loss)

            def on_eval(self, ctx, val_loss):
                log.append("on_eval")

        class Init(InitStage):
            def init(self, ctx):
                log.append("init")

        return Plugin("recorder", select=Select(), order=Order(), transform=Transform(), gate=Gate(), step=Step(),
                      schedule=Schedule(), init=Init())


def test_stages_run_in_the_designed_order_and_their_work_is_charged(digits_micro):
    recorder = _Recorder()
    _with_budget(digits_micro, max_steps=4)
    result = run_trial(digits_micro, seed=0, plugins=[recorder.plugin()], device="cpu", target_val_loss=0.0)
    assert result.status == "missed", result.error
    assert recorder.calls[0] == "init"
    iteration = ["select", "order", "transform", "gate", "step", "schedule"]
    assert recorder.calls[1:1 + len(iteration)] == iteration
    ledger = result.ledger
    batch = digits_micro.hparams.batch_size
    assert ledger.steps == 4
    assert ledger.examples_forward == ledger.examples_backward == 4 * batch // 2
    assert ledger.examples_overhead == 4 * batch
    # The scoring pass is a full-batch forward: twice the FLOPs of the gated training forwards.
    assert ledger.flops_overhead == 2 * ledger.flops_forward
    assert ledger.wall_overhead_s > 0 and ledger.wall_train_s > 0


def test_baseline_reaches_the_micro_target_and_records_a_curve(digits_micro):
    result = run_trial(digits_micro, seed=0, device="cpu")
    assert result.status == "reached", result.error
    assert result.stop_reason == "target"
    confirm = digits_micro.hparams.confirm_steps
    assert result.curve[-1].step == result.steps_to_target + confirm  # confirmed, then stopped
    assert result.curve[-1].val_loss <= digits_micro.target_val_loss < result.curve[0].val_loss
    steps = [point.step for point in result.curve]
    assert steps == sorted(steps) and steps[0] == digits_micro.hparams.eval_every_fine
    assert result.curve[-1].ledger["steps"] == result.ledger.steps + confirm
    assert result.ledger.energy_j > 0 and result.ledger.energy_method
    assert result.ledger.wall_eval_s > 0
    assert result.ledger.flops_backward > 0


def test_same_seed_gives_a_bit_identical_curve_and_ledger(digits_micro):
    _with_budget(digits_micro, max_steps=60)
    first = run_trial(digits_micro, seed=3, device="cpu", target_val_loss=0.0)
    second = run_trial(digits_micro, seed=3, device="cpu", target_val_loss=0.0)
    other = run_trial(digits_micro, seed=4, device="cpu", target_val_loss=0.0)

    def deterministic(result):
        return [(p.step, p.val_loss, p.train_loss, {k: v for k, v in p.ledger.items() if k not in NONDETERMINISTIC})
                for p in result.curve]

    assert deterministic(first) == deterministic(second)
    assert [p.val_loss for p in first.curve] != [p.val_loss for p in other.curve]


def test_a_non_finite_loss_ends_the_trial_as_diverged(digits_micro):
    class Poison(TransformStage):
        def transform(self, ctx, batch):
            if ctx.step >= 3:
                batch.inputs = torch.full_like(batch.inputs, float("nan"))
            return batch

    result = run_trial(digits_micro, seed=0, plugins=[Plugin("poison", transform=Poison())], device="cpu")
    assert (result.status, result.stop_reason) == ("diverged", "diverged")
    assert result.steps_to_target is None


def test_the_step_budget_ends_a_trial_that_misses_its_target(digits_micro):
    _with_budget(digits_micro, max_steps=15)
    result = run_trial(digits_micro, seed=0, device="cpu", target_val_loss=0.0)
    assert (result.status, result.stop_reason) == ("missed", "max_steps")
    assert result.ledger.steps == 15
    assert result.curve[-1].step == 15  # a final check after the last step


def test_the_seconds_budget_ends_a_trial(digits_micro):
    _with_budget(digits_micro, max_seconds=0.0)
    result = run_trial(digits_micro, seed=0, device="cpu")
    assert (result.status, result.stop_reason) == ("missed", "max_seconds") and result.ledger.steps == 0


def test_an_exception_in_a_technique_is_a_failed_trial_not_a_crash(digits_micro):
    class Broken(GateStage):
        def gate(self, ctx, batch):
            raise RuntimeError("predictor exploded")

    result = run_trial(digits_micro, seed=0, plugins=[Plugin("broken", gate=Broken())], device="cpu")
    assert result.status == "failed"
    assert "predictor exploded" in result.error


def test_stage_feedback_sees_every_check_of_the_coarse_schedule(digits_micro):
    """digits micro checks every step; techniques hear only of the checks every `eval_every` steps."""
    seen = []

    class Listener(ShuffledEpochs):
        def on_eval(self, ctx, val_loss):
            seen.append((ctx.step, val_loss))

    _with_budget(digits_micro, max_steps=30)
    result = run_trial(digits_micro, seed=0, plugins=[Plugin("listener", order=Listener())], device="cpu",
                       target_val_loss=0.0)
    every = digits_micro.hparams.eval_every
    assert len(result.curve) == 30
    assert seen == [(p.step, p.val_loss) for p in result.curve if p.step % every == 0]
    assert len(seen) >= 2


def test_a_step_stage_that_skips_the_update_takes_no_optimizer_step(digits_micro):
    class EveryOther(StepStage):
        def setup(self, ctx):
            self.calls = 0

        def step(self, ctx, batch):
            self.calls += 1
            if self.calls % 2:
                return None
            return PlainStep().step(ctx, batch)

    _with_budget(digits_micro, max_steps=10)
    result = run_trial(digits_micro, seed=0, plugins=[Plugin("half", step=EveryOther())], device="cpu",
                       target_val_loss=0.0)
    assert result.ledger.steps == 10


def test_cuda_request_without_cuda_is_a_user_error(digits_micro):
    from step7bench.errors import UserError

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="no CUDA device"):
        run_trial(digits_micro, seed=0, device="cuda")


class _ScriptedMeter(EnergyMeter):
    """A meter whose joules are whatever the test's stages add to `joules_read`."""

    def __init__(self):
        super().__init__(time.perf_counter)
        self.joules_read = 0.0
        self._use("scripted")

    @property
    def scope(self):
        return "the test's script"

    def _read_j(self, wall_s):
        return self.joules_read

    def _release(self):
        pass


def test_setup_overhead_gets_joules_and_audit_joules_are_booked_apart(digits_micro, monkeypatch):
    meter = _ScriptedMeter()
    monkeypatch.setattr(loop, "open_meter", lambda device: meter)

    class Scoring(ShuffledEpochs):
        def setup(self, ctx):
            super().setup(ctx)
            with ctx.overhead():
                meter.joules_read += 5.0  # up-front work: inside the first training window

    class Audited(PlainStep):
        def step(self, ctx, batch):
            with ctx.audit():
                meter.joules_read += 7.0
            meter.joules_read += 1.0
            return super().step(ctx, batch)

    _with_budget(digits_micro, max_steps=3)
    result = run_trial(digits_micro, seed=0, plugins=[Plugin("scripted", order=Scoring(), step=Audited())],
                       device="cpu", target_val_loss=0.0)
    assert result.status == "missed", result.error
    assert result.ledger.energy_audit_j == 3 * 7.0
    assert result.ledger.energy_j == 5.0 + 3 * 1.0
    assert result.ledger.energy_eval_j == 0.0


def test_stage_feedback_overhead_is_inside_a_training_window(digits_micro, monkeypatch):
    meter = _ScriptedMeter()
    monkeypatch.setattr(loop, "open_meter", lambda device: meter)

    class Feedback(WarmupCosine):
        def on_eval(self, ctx, val_loss):
            with ctx.overhead():
                meter.joules_read += 2.0

    _with_budget(digits_micro, max_steps=3 * digits_micro.hparams.eval_every)
    coarse = dataclasses.replace(digits_micro.hparams, eval_every_fine=0, eval_fine_band=0.0)
    result = run_trial(digits_micro, seed=0, plugins=[Plugin("feedback", schedule=Feedback())], device="cpu",
                       target_val_loss=0.0, hparams=coarse)
    assert result.status == "missed", result.error
    # Feedback after every check (the budget ends on a check step, so the loop ends after it).
    assert len(result.curve) == 3
    assert result.ledger.energy_j == 2.0 * len(result.curve)


def test_flops_are_counted_before_any_stage_runs(digits_micro, monkeypatch):
    events = []
    monkeypatch.setattr("step7bench.measure.flops._SHARED_COUNTS", {})  # earlier tests counted this shape
    count = FlopCounter._count
    monkeypatch.setattr(FlopCounter, "_count", lambda self, *args: events.append("count") or count(self, *args))

    class Init(InitStage):
        def init(self, ctx):
            events.append("init")

    _with_budget(digits_micro, max_steps=2)
    result = run_trial(digits_micro, seed=0, plugins=[Plugin("init", init=Init())], device="cpu",
                       target_val_loss=0.0)
    assert result.status == "missed", result.error
    assert events == ["count", "init"]  # one shape, counted before the cost clock starts
    assert result.ledger.flops_forward > 0


def test_empty_replacement_datasets_are_used_not_taken_for_missing(digits_micro, monkeypatch):
    empty = ExampleDataset(digits_micro.val.inputs[:0], digits_micro.val.targets[:0])
    seen = []
    monkeypatch.setattr(type(digits_micro), "evaluate", lambda self, model, device, dataset: seen.append(dataset) or 1.0)
    _with_budget(digits_micro, max_steps=1)
    run_trial(digits_micro, seed=0, device="cpu", val=empty, target_val_loss=0.0)
    assert seen and all(dataset is empty for dataset in seen)
