"""Suites: which workloads, techniques, arms and seeds a run covers, read from a TOML file.

Everything is validated when the file is loaded, before anything trains: unknown keys, wrong
types, unknown workload, preset or technique names, stage conflicts between stacked
techniques, and budgets or targets that cannot work. Each error is one line,
`FILE:LINE: what is wrong`. The format is documented in `suites/README.md`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from step7bench.engine import StageConflict, check_compatible
from step7bench.errors import UserError, did_you_mean
from step7bench.harness.checking import Document, KeyPath
from step7bench.harness.registry import Registry, load_registry
from step7bench.workloads import Budget

SUITES_DIR = Path(__file__).resolve().parents[2] / "suites"
"""The shipped suites; `--suite NAME` means `SUITES_DIR/NAME.toml`."""

ARM_GROUPS = ("baseline", "aa", "positive_controls", "alone", "as_specified", "control", "seed_stack", "all_stack",
              "leave_one_out", "pairs", "cumulative")
"""Groups of arms a suite may ask for in `matrix.arms` (see `harness.matrix`)."""

_NEEDS_SEED_STACK = ("seed_stack", "leave_one_out", "pairs", "cumulative")

AA_SEED_OFFSET = 10_000
"""The A/A arm runs the baseline on seeds AA_SEED_OFFSET + i, paired with baseline seed i (the
pairing is stored with each trial; nothing decodes it from the seed)."""


@dataclass(frozen=True)
class AdaptivePlan:
    """`run --adaptive`: start with the suite's seeds, add `batch` more at a time to the arms of
    undecided claims, up to `max_seeds`; each look judged at its share of `alpha` by a Lan-DeMets
    `spending` function ("obrien-fleming" or "pocock"), so wrong verdicts stay under `alpha`
    overall (analysis/censored.py measures it)."""

    max_seeds: int
    batch: int = 2
    alpha: float = 0.05
    spending: str = "obrien-fleming"


SPENDING_SHAPES = ("obrien-fleming", "pocock")

DEFAULT_HEADROOM = 4 / 3
"""Every arm may train this many times the baseline's budget before its miss is final: AlgoPerf
gives submissions about a third more runtime than its target-setting runs."""


@dataclass(frozen=True)
class WorkloadEntry:
    """One workload of a suite at one preset, with the budget and target every arm uses, and
    what calibration recorded for it (how its target was set, each technique's tuned settings)."""

    name: str
    preset: str
    task: str
    budget: Budget
    target_val_loss: float
    target_source: str  # "suite", "targets file" or "preset default"
    data_seed: int = 0
    calibration_margin: float | None = None  # this workload's margin over the suite's, if set
    calibration: Mapping[str, Any] = field(default_factory=dict)  # the targets file's record
    tuned: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # technique -> winning settings
    tuning: tuple[Mapping[str, Any], ...] = ()  # the [[tuning]] records: grids, results, costs

    @property
    def key(self) -> str:
        return f"{self.name}/{self.preset}"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    description: str
    registry: Registry  # the techniques and workloads this suite may use, plugins included
    seeds: int
    techniques: tuple[str, ...]  # the canonical order: every stack is named in this order
    seed_stack: tuple[str, ...]
    all_stack: tuple[str, ...]
    arm_groups: tuple[str, ...]
    workloads: tuple[WorkloadEntry, ...]
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per technique
    targets_path: Path | None = None
    calibration_seeds: int = 3
    calibration_margin: float = 0.02
    suite_hash: str = ""
    overrides: tuple[str, ...] = ()  # the --set PATH=VALUE changes the suite was loaded with
    adaptive: AdaptivePlan | None = None  # how `run --adaptive` adds seeds (the suite's [adaptive] table)
    positive_control_seeds: int = 0  # seeds of the weak-reference control's arms (0: the suite's seeds)
    aa_seeds: int = 0  # seeds of the A/A arm and the baseline it pairs with (0: the suite's seeds)

    def with_seeds(self, seeds: int) -> Suite:
        if seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {seeds}")
        if self.adaptive is not None and seeds > self.adaptive.max_seeds:  # the suite file's own rule
            raise UserError(f"--seeds {seeds} is above the suite's adaptive.max_seeds ({self.adaptive.max_seeds})")
        return dataclasses.replace(self, seeds=seeds)

    def settings_for(self, technique: str) -> dict[str, Any]:
        return dict(self.settings.get(technique, {}))


def suite_path(name_or_path: str) -> Path:
    """A path as given if it names a file (or ends in .toml), else the shipped suite NAME."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"suite file {candidate} does not exist")
        return candidate
    shipped = SUITES_DIR / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise UserError(f"unknown suite {name_or_path!r} (shipped: {', '.join(shipped_suites()) or 'none'}; "
                        "or give a path to a .toml file)")
    return shipped


def shipped_suites() -> list[str]:
    return sorted(path.stem for path in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str, *, plugins: Sequence[str] = (), overrides: Sequence[str] = (),
               registry: Registry | None = None, require_targets: bool = True) -> Suite:
    """Read and validate a suite, resolving its registry: the built-ins, installed entry points,
    the suite's own `plugins` and the extra `plugins` given (`--plugin`). A `registry` given
    instead is used as it is (tests pass stand-ins this way). `overrides` (`--set PATH=VALUE`)
    change values before anything is validated, so they are checked like the file's own; they
    enter the suite's hash, and through the settings and budgets they change, the trial ids.

    `require_targets=False` accepts workloads without a usable target (what `calibrate` needs).
    """
    path = suite_path(name_or_path)
    doc = Document(path)
    for override in overrides:
        apply_override(doc.values, override)
    if registry is None:
        suite_plugins = doc.get(doc.values, (), "plugins", "str_list", [])
        registry = load_registry([*suite_plugins, *plugins], relative_to=path.parent)
    suite = _SuiteReader(doc, registry).read(require_targets)
    return dataclasses.replace(suite, overrides=tuple(overrides),
                               suite_hash=_hash(path, suite.targets_path, tuple(overrides)))


def apply_override(values: dict[str, Any], override: str) -> None:
    """Set one `PATH=VALUE` in a suite's parsed values. PATH is dotted: a top-level key (`seeds`),
    a table's key (`technique.curriculum.full_at`), or a workload's key by its name
    (`grammar-lm.max_steps`). VALUE is read as a TOML value (`400`, `0.3`, `true`, `"root"`, `[1, 2]`),
    or taken as a string when it is not one (`root`)."""
    path_text, equals, value_text = override.partition("=")
    if not equals or not path_text.strip():
        raise UserError(f"--set {override!r}: expected PATH=VALUE, e.g. grammar-lm.max_steps=400")
    path = path_text.strip().split(".")
    try:
        value = tomllib.loads(f"value = {value_text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = value_text.strip()
    table = _workload_table(values, path[0])
    keys = path[1:] if table is not None else path
    table = values if table is None else table
    for key in keys[:-1]:
        child = table.setdefault(key, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {override!r}: {key!r} is a value, not a table")
        table = child
    if not keys:
        raise UserError(f"--set {override!r}: name a key of workload {path[0]!r}, e.g. {path[0]}.max_steps=400")
    table[keys[-1]] = value


def _workload_table(values: dict[str, Any], name: str) -> dict[str, Any] | None:
    entries = values.get("workload")
    if not isinstance(entries, list):
        return None
    return next((entry for entry in entries if isinstance(entry, dict) and entry.get("name") == name), None)


class _SuiteReader:
    TOP_KEYS = ("name", "description", "seeds", "targets", "plugins", "headroom", "matrix", "workload", "technique",
                "calibration", "adaptive")
    ADAPTIVE_KEYS = ("max_seeds", "batch", "alpha", "spending")
    MATRIX_KEYS = ("techniques", "seed_stack", "all_stack", "arms", "positive_control_seeds", "aa_seeds")
    WORKLOAD_KEYS = ("name", "preset", "max_steps", "max_seconds", "target_val_loss", "data_seed",
                     "calibration_margin")

    def __init__(self, doc: Document, registry: Registry) -> None:
        self.doc, self.registry, self.specs = doc, registry, registry.techniques

    def read(self, require_targets: bool) -> Suite:
        doc, top = self.doc, self.doc.values
        doc.check_keys(top, (), self.TOP_KEYS, required=("name", "seeds", "matrix", "workload"))
        name = doc.get(top, (), "name", "str")
        if not name:
            raise doc.fail(("name",), "name must not be empty")
        matrix = doc.get(top, (), "matrix", "table")
        techniques, seed_stack, all_stack, arms = self._matrix(matrix)
        settings = self._inherit_control_settings(self._settings(doc.get(top, (), "technique", "table", {})))
        targets_path = self._targets_path(doc.get(top, (), "targets", "str"))
        calibrated = load_calibration(targets_path) if targets_path and targets_path.is_file() else Calibration()
        headroom = float(doc.get(top, (), "headroom", "positive_number", DEFAULT_HEADROOM))
        if headroom < 1:
            raise doc.fail(("headroom",), f"headroom must be at least 1 (arms may train past the baseline's budget, "
                                          f"not stop short of it), got {headroom}")
        workloads = self._workloads(doc.get(top, (), "workload", "table_list"), calibrated, headroom, require_targets)
        calibration = doc.get(top, (), "calibration", "table", {})
        doc.check_keys(calibration, ("calibration",), ("seeds", "margin"))
        margin = self._margin(calibration, ("calibration",), 0.02)
        seeds = doc.get(top, (), "seeds", "positive_int")
        return Suite(
            name=name, path=doc.path, description=doc.get(top, (), "description", "str", ""), registry=self.registry,
            seeds=seeds, techniques=techniques, seed_stack=seed_stack,
            all_stack=all_stack, arm_groups=arms, workloads=workloads, settings=settings,
            targets_path=targets_path,
            calibration_seeds=doc.get(calibration, ("calibration",), "seeds", "positive_int", 3),
            calibration_margin=float(margin), suite_hash=_hash(doc.path, targets_path),
            adaptive=self._adaptive(doc.get(top, (), "adaptive", "table", None), seeds),
            positive_control_seeds=doc.get(matrix, ("matrix",), "positive_control_seeds", "positive_int", 0),
            aa_seeds=doc.get(matrix, ("matrix",), "aa_seeds", "positive_int", 0))

    def _adaptive(self, table: dict[str, Any] | None, seeds: int) -> AdaptivePlan | None:
        if table is None:
            return None
        doc, here = self.doc, ("adaptive",)
        doc.check_keys(table, here, self.ADAPTIVE_KEYS, required=("max_seeds",))
        plan = AdaptivePlan(max_seeds=doc.get(table, here, "max_seeds", "positive_int"),
                            batch=doc.get(table, here, "batch", "positive_int", 2),
                            alpha=float(doc.get(table, here, "alpha", "positive_number", 0.05)),
                            spending=doc.get(table, here, "spending", "str", "obrien-fleming"))
        if plan.max_seeds < seeds:
            raise doc.fail((*here, "max_seeds"), f"adaptive.max_seeds ({plan.max_seeds}) is below seeds ({seeds})")
        if not 0 < plan.alpha < 1:
            raise doc.fail((*here, "alpha"), f"adaptive.alpha must be in (0, 1), got {plan.alpha}")
        if plan.spending not in SPENDING_SHAPES:
            raise doc.fail((*here, "spending"), f"adaptive.spending must be one of {', '.join(SPENDING_SHAPES)}"
                                                f"{did_you_mean(plan.spending, SPENDING_SHAPES)}")
        return plan

    # -- matrix -------------------------------------------------------------------------------
    def _matrix(self, matrix: dict[str, Any]) -> tuple[tuple[str, ...], ...]:
        doc, here = self.doc, ("matrix",)
        doc.check_keys(matrix, here, self.MATRIX_KEYS, required=("techniques", "arms"))
        techniques = self._technique_list(matrix, "techniques", self.specs)
        order = {name: i for i, name in enumerate(techniques)}
        stacks = {"techniques": techniques}
        for key in ("seed_stack", "all_stack"):
            stack = self._technique_list(matrix, key, order) if key in matrix else []
            if len(stack) == 1:
                raise doc.fail((*here, key), f"matrix.{key} must stack at least two techniques")
            self._check_stages(stack, (*here, key))
            stacks[key] = tuple(sorted(stack, key=order.__getitem__))
        arms = doc.get(matrix, here, "arms", "str_list")
        self._check_arms(arms, stacks)
        return techniques, stacks["seed_stack"], stacks["all_stack"], tuple(arms)

    def _technique_list(self, matrix: dict[str, Any], key: str, known: Mapping[str, Any]) -> tuple[str, ...]:
        doc, path = self.doc, ("matrix", key)
        names = doc.get(matrix, ("matrix",), key, "str_list")
        for name in names:
            if name not in known:
                where = "matrix.techniques" if key != "techniques" else "the technique registry"
                choices = ", ".join(sorted(known)) or "none registered yet"
                raise doc.fail(path, f"unknown technique {name!r} in matrix.{key}{did_you_mean(name, known)} "
                                     f"(not in {where}: {choices})")
            if key == "techniques" and self.specs[name].is_control:
                raise doc.fail(path, f"{name!r} is a random control: it gets its own arm through the "
                                     "'control' arm group, not a place in matrix.techniques")
            if key == "techniques" and self.specs[name].positive_control:
                raise doc.fail(path, f"{name!r} is a positive control: it gets its own arm through the "
                                     "'positive_controls' arm group, not a place in matrix.techniques")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise doc.fail(path, f"matrix.{key} names {duplicates[0]!r} twice")
        return tuple(names)

    def _check_stages(self, stack: tuple[str, ...], path: KeyPath) -> None:
        try:
            check_compatible({name: list(self.specs[name].stages) for name in stack})
        except StageConflict as exc:
            raise self.doc.fail(path, f"stage conflict: {exc}") from None

    def _check_arms(self, arms: list[str], stacks: dict[str, tuple[str, ...]]) -> None:
        doc, path = self.doc, ("matrix", "arms")
        for arm in arms:
            if arm not in ARM_GROUPS:
                raise doc.fail(path, f"unknown arm group {arm!r}{did_you_mean(arm, ARM_GROUPS)} "
                                     f"(choose from {', '.join(ARM_GROUPS)})")
            if arm in _NEEDS_SEED_STACK and not stacks["seed_stack"]:
                raise doc.fail(path, f"arm group {arm!r} needs matrix.seed_stack")
            if arm == "all_stack" and not stacks["all_stack"]:
                raise doc.fail(path, "arm group 'all_stack' needs matrix.all_stack")
        if "control" in arms:
            for name in stacks["techniques"]:
                control = self.specs[name].control
                if control is not None and control not in self.specs:
                    raise doc.fail(path, f"technique {name!r} names the control {control!r}, which is not "
                                         "registered")
        if "baseline" not in arms:
            raise doc.fail(path, "matrix.arms must include 'baseline': every speedup is measured against it")

    # -- technique settings -----------------------------------------------------------------
    def _settings(self, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
        doc = self.doc
        for name, values in table.items():
            path = ("technique", name)
            if name not in self.specs:
                raise doc.fail(path, f"settings for unknown technique {name!r}{did_you_mean(name, self.specs)} "
                                     f"(registered: {', '.join(sorted(self.specs)) or 'none yet'})")
            doc.get(table, ("technique",), name, "table")
            doc.check_keys(values, path, self.specs[name].defaults)
        return {name: dict(values) for name, values in table.items()}

    def _inherit_control_settings(self, settings: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """A control runs at its technique's rate: it takes the technique's settings for every key it
        shares, so `[technique.curriculum] full_at = 0.3` also moves `curriculum_random`. A control's
        own setting of a shared key that differs is an error (two rates for one comparison); keys
        only the control has stay its own."""
        merged = {name: dict(values) for name, values in settings.items()}
        for name, values in settings.items():
            control = self.specs[name].control
            if control is None or control not in self.specs:
                continue
            shared = {key: value for key, value in values.items() if key in self.specs[control].defaults}
            own = settings.get(control, {})
            for key, value in shared.items():
                if key in own and own[key] != value:
                    raise self.doc.fail(("technique", control, key),
                                        f"{control}.{key} = {own[key]!r} differs from {name}.{key} = {value!r}: "
                                        "a control runs at its technique's settings (drop one of them)")
            if shared:
                merged[control] = {**shared, **own}
        return merged

    # -- workloads --------------------------------------------------------------------------
    def _targets_path(self, relative: str | None) -> Path | None:
        return None if relative is None else (self.doc.path.parent / relative).resolve()

    def _margin(self, table: dict[str, Any], here: KeyPath, default: float | None) -> float | None:
        key = "margin" if here == ("calibration",) else "calibration_margin"
        margin = self.doc.get(table, here, key, "number", default)
        if margin is not None and not 0 <= margin < 1:
            raise self.doc.fail((*here, key), f"{key} must be in [0, 1), got {margin}")
        return None if margin is None else float(margin)

    def _workloads(self, entries: list[dict[str, Any]], calibrated: Calibration, headroom: float,
                   require_targets: bool) -> tuple[WorkloadEntry, ...]:
        if not entries:
            raise self.doc.fail(("workload",), "a suite needs at least one [[workload]]")
        workloads = [self._workload(i, entry, calibrated, headroom, require_targets) for i, entry in enumerate(entries)]
        # One preset per workload: the analysis pairs and reports trials by workload name, so two
        # presets of one workload would be pooled as if they were one.
        names = [w.name for w in workloads]
        for i, name in enumerate(names):
            if name in names[:i]:
                first = workloads[names.index(name)]
                raise self.doc.fail(("workload", i), f"workload {name} is listed twice ({first.key} and "
                                                     f"{workloads[i].key}): a suite runs one preset of each")
        return tuple(workloads)

    def _workload(self, index: int, entry: dict[str, Any], calibrated: Calibration, headroom: float,
                  require_targets: bool) -> WorkloadEntry:
        doc, here = self.doc, ("workload", index)
        doc.check_keys(entry, here, self.WORKLOAD_KEYS, required=("name", "preset"))
        name, preset = doc.get(entry, here, "name", "str"), doc.get(entry, here, "preset", "str")
        try:
            workload = self.registry.workload(name, preset)
        except UserError as exc:
            raise doc.fail((*here, "preset" if "preset" in str(exc) else "name"), str(exc)) from None
        default = workload.preset
        budget = Budget(max_steps=doc.get(entry, here, "max_steps", "positive_int", default.budget.max_steps),
                        max_seconds=float(doc.get(entry, here, "max_seconds", "positive_number",
                                                  default.budget.max_seconds)), headroom=headroom)
        if budget.max_steps <= default.hparams.warmup_steps:
            # The baseline's schedule would never decay: not the tuned baseline the method needs.
            raise doc.fail((*here, "max_steps"), f"budget of {budget.max_steps} steps ends before the preset's "
                                                 f"{default.hparams.warmup_steps} warm-up steps are over")
        key = f"{name}/{preset}"
        target, source = self._target(entry, here, key, calibrated.targets, default.target_val_loss)
        if require_targets and not target > 0:
            raise doc.fail(here, f"workload {name}/{preset} has no reachable target ({target}; a cross-entropy "
                                 f"never reaches 0): run `step7bench calibrate --suite {doc.path}` or set "
                                 "target_val_loss")
        return WorkloadEntry(name=name, preset=preset, task=workload.task, budget=budget,
                             target_val_loss=target, target_source=source,
                             data_seed=doc.get(entry, here, "data_seed", "non_negative_int", 0),
                             calibration_margin=self._margin(entry, here, None),
                             calibration=calibrated.records.get(key, {}), tuned=calibrated.tuned.get(key, {}),
                             tuning=calibrated.tunings.get(key, ()))

    def _target(self, entry: dict[str, Any], here: KeyPath, key: str, targets: Mapping[str, float],
                preset_default: float) -> tuple[float, str]:
        if "target_val_loss" in entry:
            value = self.doc.get(entry, here, "target_val_loss", "positive_number")
            return float(value), "suite"
        if key in targets:
            return targets[key], "targets file"
        return preset_default, "preset default"


@dataclass(frozen=True)
class Calibration:
    """What a targets file holds, by `workload/preset`: each target, the record of how it was set,
    and each technique's tuned settings."""

    targets: Mapping[str, float] = field(default_factory=dict)
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tuned: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    tunings: Mapping[str, tuple[Mapping[str, Any], ...]] = field(default_factory=dict)


def load_calibration(path: Path) -> Calibration:
    """Read a targets file written by `calibrate` ([[target]] and [[tuning]] tables)."""
    doc = Document(path)
    doc.check_keys(doc.values, (), ("target", "tuning"))
    targets: dict[str, float] = {}
    records: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(doc.get(doc.values, (), "target", "table_list", [])):
        here = ("target", index)
        doc.check_keys(entry, here, TARGET_RECORD_KEYS, required=("workload", "preset", "target_val_loss"))
        key = f"{doc.get(entry, here, 'workload', 'str')}/{doc.get(entry, here, 'preset', 'str')}"
        targets[key] = float(doc.get(entry, here, "target_val_loss", "positive_number"))
        records[key] = dict(entry)
    tuned: dict[str, dict[str, dict[str, Any]]] = {}
    tunings: dict[str, tuple[Mapping[str, Any], ...]] = {}
    for index, entry in enumerate(doc.get(doc.values, (), "tuning", "table_list", [])):
        here = ("tuning", index)
        doc.check_keys(entry, here, TUNING_RECORD_KEYS, required=("workload", "preset", "technique", "winner"))
        key = f"{doc.get(entry, here, 'workload', 'str')}/{doc.get(entry, here, 'preset', 'str')}"
        tuned.setdefault(key, {})[doc.get(entry, here, "technique", "str")] = dict(doc.get(entry, here, "winner",
                                                                                         "table"))
        tunings[key] = (*tunings.get(key, ()), dict(entry))
    return Calibration(targets, records, tuned, tunings)


TARGET_RECORD_KEYS = ("workload", "preset", "target_val_loss", "method", "median_best_val_loss", "margin",
                      "calibration_seeds", "best_val_losses", "statuses", "max_steps", "max_seconds",
                      "hardware_class", "git_commit", "calibrated_at", "check_rule", "reach_rate",
                      "baseline_steps_to_target", "weak_reference")
"""What a targets file records for each target: the value and how it was set."""

TUNING_RECORD_KEYS = ("workload", "preset", "technique", "metric", "winner", "grid", "seeds", "tuning_cost")
"""What a targets file records for each tuned technique: the winning settings, the grid tried and
each point's result, the calibration seeds, and what the tuning itself cost."""


def _hash(suite: Path, targets: Path | None, overrides: tuple[str, ...] = ()) -> str:
    """SHA-256 of the suite file, its targets file and the overrides: what the trials were defined by."""
    digest = hashlib.sha256(suite.read_bytes())
    if targets is not None and targets.is_file():
        digest.update(targets.read_bytes())
    for override in overrides:
        digest.update(override.encode())
    return digest.hexdigest()
