"""The trial matrix: arm kinds and names, paired seeds, stable trial ids, shards."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, strategies as st

from conftest import SUITES
from harness_fakes import mini_suite_text
from step7bench.harness.matrix import arm_name, build_arms, parse_shard, plan_trials, shard
from step7bench.harness.suite import AA_SEED_OFFSET, load_suite


@pytest.fixture
def tiny(fake_specs):
    return load_suite(str(SUITES / "tiny.toml"))


def test_arms_of_a_classification_workload(tiny, fake_specs):
    arms = {arm.name: arm.kind for arm in build_arms(tiny, "classification")}
    seed = "curriculum+active_learning+gradient_caching+transfer"
    assert arms["baseline"] == "baseline" and arms["aa"] == "aa"
    assert arms["curriculum"] == "alone"  # also the first cumulative row: kept once, as 'alone'
    assert arms["curriculum_random"] == "control" and "dynamic_lr_random" not in arms
    assert arms[seed] == "stack"
    assert arms["curriculum+active_learning+gradient_caching"] == "leave_one_out"  # also cumulative row 3
    assert arms["curriculum+active_learning"] == "pair"  # also cumulative row 2
    assert arms["gradient_caching+transfer"] == "pair"
    # augmentation is sequence-only: no arm alone, and the all-stack leaves it out
    assert "augmentation" not in arms
    assert arms[f"{seed}+difficulty_prediction+dynamic_lr"] == "stack"


def test_arms_of_a_sequence_workload_include_sequence_only_techniques(tiny, fake_specs):
    names = [arm.name for arm in build_arms(tiny, "sequence")]
    assert "augmentation" in names
    assert "curriculum+active_learning+gradient_caching+transfer+difficulty_prediction+augmentation+dynamic_lr" in names
    assert len(names) == len(set(names))


def test_every_cumulative_row_is_an_arm(tiny, fake_specs):
    names = {arm.name for arm in build_arms(tiny, "classification")}
    for end in range(1, 5):
        assert arm_name(tiny.seed_stack[:end]) in names


def test_arms_share_seeds_and_aa_is_paired_by_position(tiny, fake_specs):
    trials = plan_trials(tiny)
    seeds_by_arm: dict[str, list[int]] = {}
    for trial in trials:
        seeds_by_arm.setdefault(trial.arm.name, []).append(trial.seed)
    assert seeds_by_arm.pop("aa") == [AA_SEED_OFFSET, AA_SEED_OFFSET + 1]
    assert all(seeds == [0, 1] for seeds in seeds_by_arm.values())


def test_trial_ids_are_unique_and_stable(tiny, fake_specs):
    first = [t.trial_id for t in plan_trials(tiny)]
    assert len(set(first)) == len(first)
    assert first == [t.trial_id for t in plan_trials(tiny)]


def test_the_id_changes_with_what_defines_the_trial(tiny, fake_specs):
    base = {t.trial_id for t in plan_trials(tiny)}
    more_seeds = {t.trial_id for t in plan_trials(tiny.with_seeds(3))}
    assert base < more_seeds  # adding seeds keeps every existing trial: a resume runs only the new ones


def test_settings_are_part_of_the_identity(tmp_path, fake_specs):
    text = (SUITES / "tiny.toml").read_text()
    plain = tmp_path / "plain.toml"
    plain.write_text(text)
    tuned = tmp_path / "tuned.toml"
    tuned.write_text(text + "\n[technique.curriculum]\nexplode = true\n")
    ids = {p: {t.arm.name: t.trial_id for t in plan_trials(load_suite(str(p)))} for p in (plain, tuned)}
    assert ids[plain]["baseline"] == ids[tuned]["baseline"]
    assert ids[plain]["curriculum"] != ids[tuned]["curriculum"]


def test_a_suites_own_headroom_is_part_of_the_identity_and_the_default_keeps_the_ids(tmp_path, fake_specs):
    text = (SUITES / "tiny.toml").read_text()
    ids = {}
    for name, headroom in (("default", None), ("stated", 4 / 3), ("longer", 2.0)):
        path = tmp_path / f"{name}.toml"
        path.write_text(text.replace('seeds = 2', f'seeds = 2\nheadroom = {headroom!r}' if headroom else 'seeds = 2'))
        trials = plan_trials(load_suite(str(path)))
        ids[name] = [t.trial_id for t in trials]
        assert all(("headroom" in t.identity()) == (name == "longer") for t in trials)
    assert ids["default"] == ids["stated"]  # the ids trials were stored under before headroom was named
    assert not set(ids["default"]) & set(ids["longer"])  # a late arm may train longer: another trial


def test_a_control_arm_trains_at_its_techniques_settings(tmp_path, fake_specs):
    path = tmp_path / "controlled.toml"
    path.write_text(mini_suite_text(arms='["baseline", "alone", "control"]',
                                    extra="\n[technique.curriculum]\nfull_at = 0.3\n"))
    settings = {t.arm.name: t.settings for t in plan_trials(load_suite(str(path)))}
    assert settings["curriculum_random"]["curriculum_random"] == {"full_at": 0.3}
    assert settings["curriculum"]["curriculum"] == {"full_at": 0.3}


@given(total=st.integers(0, 60), count=st.integers(1, 8))
def test_shards_partition_the_plan(total, count):
    trials = list(range(total))
    parts = [shard(trials, index, count) for index in range(1, count + 1)]
    assert sorted(sum(parts, [])) == trials
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("text", ["3", "0/2", "3/2", "a/b", "1/0", "-1/2"])
def test_bad_shard_specs_are_refused(text):
    with pytest.raises(ValueError, match="shard"):
        parse_shard(text)


def test_a_shard_spec_parses():
    assert parse_shard("2/4") == (2, 4)


def _with_tuning(tmp_path, fake_specs, extra_arms: str):
    fake_specs["curriculum"] = dataclasses.replace(fake_specs["curriculum"], as_specified={"full_at": 0.5},
                                                   grid=({"full_at": 0.2},))
    (tmp_path / "t.toml").write_text(
        '[[target]]\nworkload = "digits"\npreset = "micro"\ntarget_val_loss = 2.2\n\n'
        '[[tuning]]\nworkload = "digits"\npreset = "micro"\ntechnique = "curriculum"\nwinner = {full_at = 0.2}\n')
    path = tmp_path / "tuned.toml"
    path.write_text(mini_suite_text(techniques='["curriculum"]', arms=f'["baseline", "alone", "control"{extra_arms}]')
                    .replace("seeds = 1", 'seeds = 1\ntargets = "t.toml"').replace("target_val_loss = 2.2\n", ""))
    return load_suite(str(path))


def test_arms_train_at_the_workloads_tuned_settings_and_controls_inherit_them(tmp_path, fake_specs):
    trials = {t.arm.name: t for t in plan_trials(_with_tuning(tmp_path, fake_specs, ', "as_specified"'))}
    assert trials["curriculum"].settings == {"curriculum": {"full_at": 0.2}}
    assert trials["curriculum_random"].settings == {"curriculum_random": {"full_at": 0.2}}
    as_specified = trials["curriculum@as_specified"]
    assert as_specified.settings == {"curriculum": {"full_at": 0.5}}
    assert (as_specified.arm.kind, as_specified.arm.variant) == ("as_specified", "as_specified")
    assert as_specified.trial_id != trials["curriculum"].trial_id


def test_the_positive_controls_are_arms_of_their_own(tmp_path, fake_specs):
    arms = {t.arm.name: t.arm.kind for t in plan_trials(_with_tuning(tmp_path, fake_specs, ', "positive_controls"'))}
    assert arms["warm_start"] == arms["lr_scale"] == "positive_control"


def test_the_instruments_arms_get_their_own_seeds_and_adaptive_seeds_never_take_them_away(tmp_path, fake_specs):
    text = mini_suite_text(seeds=2, techniques='["curriculum"]', arms='["baseline", "aa", "alone", "positive_controls"]')
    path = tmp_path / "instrument.toml"
    path.write_text(text.replace('arms = [', 'aa_seeds = 5\npositive_control_seeds = 4\narms = ['))
    suite = load_suite(str(path))

    def seeds(plan):
        counts = {}
        for trial in plan:
            counts[trial.arm.name] = counts.get(trial.arm.name, 0) + 1
        return counts

    assert seeds(plan_trials(suite)) == {"baseline": 5, "aa": 5, "curriculum": 2, "warm_start": 2, "lr_scale": 4,
                                         "baseline@weak_target": 4}
    more = seeds(plan_trials(suite, seeds_by_arm={("digits/micro", "curriculum"): 3, ("digits/micro", "baseline"): 3}))
    assert (more["curriculum"], more["baseline"], more["aa"]) == (3, 5, 5)
