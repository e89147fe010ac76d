"""Suites load, validate, and fail with one `FILE:LINE: what` line on every kind of mistake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness_fakes import mini_suite_text
from step7bench.cli import main
from step7bench.errors import UserError
from step7bench.harness.checking import key_lines
from step7bench.harness.claims import load_claims
from step7bench.harness.matrix import build_arms
from step7bench.harness.suite import SUITES_DIR, load_calibration, load_suite, shipped_suites

GOOD = mini_suite_text()
CPU_SUITES = ("smoke", "quick")
GPU_SUITES = ("full", "gpu")

# (id, suite text, a fragment the message must contain, the line it must point at or None)
MALFORMED = [
    ("toml-syntax", "name = 'x'\nseeds = = 2\n", "invalid TOML", 2),
    ("unknown-top-key", "colour = 'blue'\n" + GOOD, "unknown key 'colour'", 1),
    ("missing-seeds", GOOD.replace("seeds = 1\n", ""), "missing required key 'seeds'", None),
    ("seeds-string", GOOD.replace("seeds = 1", 'seeds = "three"'), "seeds must be a positive integer", 3),
    ("seeds-zero", GOOD.replace("seeds = 1", "seeds = 0"), "seeds must be a positive integer", 3),
    ("seeds-bool", GOOD.replace("seeds = 1", "seeds = true"), "seeds must be a positive integer", 3),
    ("unknown-workload", GOOD.replace('name = "digits"', 'name = "imagenet"'), "unknown workload 'imagenet'", 10),
    ("unknown-preset", GOOD.replace('preset = "micro"', 'preset = "huge"'), "no preset 'huge'", 11),
    ("unknown-technique", GOOD.replace('"active_learning"]', '"telepathy"]'), "unknown technique 'telepathy'", 6),
    ("control-as-technique", GOOD.replace('"active_learning"]', '"curriculum_random"]'), "random control", 6),
    ("duplicate-technique", GOOD.replace('"active_learning"]', '"curriculum"]'), "names 'curriculum' twice", 6),
    ("unknown-arm", GOOD.replace('"alone"]', '"everything"]'), "unknown arm group 'everything'", 7),
    ("no-baseline", GOOD.replace('["baseline", "aa", "alone"]', '["aa", "alone"]'), "must include 'baseline'", 7),
    ("stack-without-seed-stack", GOOD.replace('"alone"]', '"leave_one_out"]'), "needs matrix.seed_stack", 7),
    ("stage-conflict", GOOD.replace('["curriculum", "active_learning"]',
                                    '["curriculum", "active_learning", "gradient_caching", "gradient_accumulation"]')
     .replace("arms =", 'all_stack = ["gradient_caching", "gradient_accumulation"]\narms ='), "stage conflict", 7),
    ("stack-not-in-techniques", GOOD.replace("arms =", 'seed_stack = ["curriculum", "transfer"]\narms ='),
     "not in matrix.techniques", 7),
    ("zero-steps", GOOD.replace("max_steps = 21", "max_steps = 0"), "max_steps must be a positive integer", 12),
    ("steps-inside-warmup", GOOD.replace("max_steps = 21", "max_steps = 20"), "warm-up", 12),
    ("negative-seconds", GOOD + "max_seconds = -1.0\n", "max_seconds must be a positive finite number", 15),
    ("nan-target", GOOD.replace("target_val_loss = 2.2", "target_val_loss = nan"), "finite number", 13),
    ("unreachable-target", GOOD.replace("target_val_loss = 2.2", "target_val_loss = 0.0"), "positive", 13),
    ("unknown-workload-key", GOOD + "learning_rate = 0.1\n", "unknown key 'workload[0].learning_rate'", 15),
    ("duplicate-workload", GOOD + '\n[[workload]]\nname = "digits"\npreset = "micro"\n', "listed twice", 16),
    ("workload-at-two-presets", GOOD + '\n[[workload]]\nname = "digits"\npreset = "small"\n',
     "workload digits is listed twice (digits/micro and digits/small)", 16),
    ("no-workloads", "workload = []\n" + GOOD.split("[[workload]]")[0], "at least one [[workload]]", 1),
    ("unknown-setting", GOOD + '\n[technique.curriculum]\npace = "fast"\n', "unknown key 'technique.curriculum.pace'",
     17),
    ("settings-unknown-technique", GOOD + "\n[technique.telepathy]\nx = 1\n", "unknown technique 'telepathy'", 16),
    ("control-setting-conflicts", GOOD + "\n[technique.curriculum]\nfull_at = 0.3\n"
                                         "[technique.curriculum_random]\nfull_at = 0.4\n",
     "curriculum_random.full_at = 0.4 differs from curriculum.full_at = 0.3", 19),
    ("matrix-not-table", GOOD.replace("[matrix]", "matrix = 3\n[other]"), "unknown key 'other'", None),
]


def _write(tmp_path, text):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


def test_the_good_suite_loads(tmp_path, fake_specs):
    suite = load_suite(str(_write(tmp_path, GOOD)))
    assert suite.techniques == ("curriculum", "active_learning")
    assert suite.workloads[0].target_source == "suite"


def test_a_control_runs_at_its_techniques_settings_and_keeps_its_own_keys(tmp_path, fake_specs):
    text = GOOD + "\n[technique.curriculum]\nfull_at = 0.3\n[technique.curriculum_random]\nreuse_rate = 0.1\n"
    suite = load_suite(str(_write(tmp_path, text)))
    assert suite.settings_for("curriculum_random") == {"full_at": 0.3, "reuse_rate": 0.1}
    assert suite.settings_for("curriculum") == {"full_at": 0.3}
    agreeing = GOOD + "\n[technique.curriculum]\nfull_at = 0.3\n[technique.curriculum_random]\nfull_at = 0.3\n"
    assert load_suite(str(_write(tmp_path, agreeing))).settings_for("curriculum_random") == {"full_at": 0.3}


@pytest.mark.parametrize("case_id, text, fragment, line", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_a_malformed_suite_is_one_line_naming_file_and_line(tmp_path, fake_specs, capsys, case_id, text,
                                                            fragment, line):
    path = _write(tmp_path, text)
    assert main(["run", "--suite", str(path), "--results", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert fragment in err
    where = f"{path}:{line}:" if line is not None else f"{path}"
    assert where in err
    assert not (tmp_path / "out").exists()


def test_a_malformed_suite_exits_2_without_traceback_in_a_real_process(tmp_path):
    path = _write(tmp_path, GOOD.replace("seeds = 1", "seeds = -1"))
    done = subprocess.run([str(Path(sys.executable).parent / "step7bench"), "run", "--suite", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {path}:3: seeds must be a positive integer, got int -1"


def test_an_unknown_suite_name_lists_the_shipped_ones(fake_specs):
    with pytest.raises(UserError, match="unknown suite 'nope'.*smoke"):
        load_suite("nope")


@pytest.mark.parametrize("name", shipped_suites())
def test_every_shipped_suite_validates_against_the_real_registry(name):
    # Targets are calibrated on the hardware a suite is for: the GPU suites get theirs there.
    suite = load_suite(name, require_targets=name not in GPU_SUITES)
    assert suite.workloads and suite.seeds >= 1
    assert "# step7bench run --suite" in suite.path.read_text().splitlines()[0]


@pytest.mark.parametrize("name", CPU_SUITES)
def test_the_cpu_suites_have_calibrated_targets(name):
    assert {w.target_source for w in load_suite(name).workloads} == {"targets file"}


@pytest.mark.parametrize("name", shipped_suites())
def test_every_shipped_suite_runs_each_claim_arm_on_every_workload(name):
    suite = load_suite(name, require_targets=False)
    claims = load_claims(SUITES_DIR / "claims" / "step7.toml")
    for workload in suite.workloads:
        # The analysis finds a claim's arm by its set of techniques (analysis.claims.arm_for).
        arms = {frozenset(arm.techniques) for arm in build_arms(suite, workload.task)}
        missing = [claim.name for claim in claims if frozenset(claim.techniques) not in arms]
        assert not missing, f"{name} on {workload.key} does not run the arms of {missing}"


def test_shipped_suites_exist():
    assert {"smoke", "quick", "full", "gpu"} <= set(shipped_suites())


def test_targets_file_sets_the_target_unless_the_suite_does(tmp_path, fake_specs):
    (tmp_path / "t.toml").write_text('[[target]]\nworkload = "digits"\npreset = "micro"\ntarget_val_loss = 0.5\n')
    text = GOOD.replace("target_val_loss = 2.2\n", "").replace('seeds = 1', 'seeds = 1\ntargets = "t.toml"')
    suite = load_suite(str(_write(tmp_path, text)))
    assert (suite.workloads[0].target_val_loss, suite.workloads[0].target_source) == (0.5, "targets file")
    assert load_calibration(tmp_path / "t.toml").targets == {"digits/micro": 0.5}


def test_key_lines_follow_tables_and_arrays_of_tables():
    text = 'a = 1\n[m]\nb = 2\n[[w]]\nc = 3\n[[w]]\nc = 4\n[t.x]\nd = 5\n'
    assert key_lines(text) == {("a",): 1, ("m",): 2, ("m", "b"): 3, ("w", 0): 4, ("w", 0, "c"): 5, ("w", 1): 6,
                               ("w", 1, "c"): 7, ("t", "x"): 8, ("t", "x", "d"): 9}


def test_with_seeds_overrides_and_checks(tmp_path, fake_specs):
    suite = load_suite(str(_write(tmp_path, GOOD)))
    assert suite.with_seeds(4).seeds == 4
    with pytest.raises(UserError, match="at least 1"):
        suite.with_seeds(0)
