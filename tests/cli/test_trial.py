"""`step7bench trial`, end to end at micro size, and its bad-input paths."""

from __future__ import annotations

import json

import pytest

from step7bench.cli import main

LEDGER_KEYS = {"steps", "examples_forward", "examples_backward", "tokens_forward", "flops_forward",
               "flops_backward", "flops_overhead", "wall_train_s", "wall_overhead_s", "wall_eval_s", "device_s",
               "energy_j", "energy_method", "peak_memory_bytes"}


def test_trial_json_reports_status_curve_and_ledger(capsys):
    assert main(["trial", "--workload", "digits", "--preset", "micro", "--seed", "1", "--device", "cpu",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "reached"
    assert report["steps_to_target"] == report["curve"][-1]["step"]
    assert LEDGER_KEYS <= set(report["ledger"])
    assert {"step", "val_loss", "ledger"} <= set(report["curve"][0])
    assert report["ledger"]["energy_j"] > 0


def test_trial_summary_is_readable(capsys):
    assert main(["trial", "--workload", "digits", "--preset", "micro", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digits/micro seed 0 on cpu: reached at step")
    assert "energy" in out and "FLOPs" in out


@pytest.mark.parametrize("argv, message", [
    (["trial", "--workload", "imagenet"], "unknown workload 'imagenet'"),
    (["trial", "--workload", "digits", "--preset", "huge"], "invalid choice: 'huge'"),
    (["trial", "--workload", "digits", "--seed", "-1"], "expected a non-negative integer"),
    (["trial", "--workload", "digits", "--seed", "one"], "expected a non-negative integer"),
    (["trial", "--workload", "digits", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["trial"], "required: --workload"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert "Traceback" not in captured.err
