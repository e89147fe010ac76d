"""The parser itself: --version, bare `step7bench`, help texts on every verb and option, "did you
mean", and that building it imports nothing heavy."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata

import pytest

from step7bench.cli import VERBS, build_parser, main, suggestion

HEAVY_MODULES = ("torch", "scipy", "pandas", "numpy", "matplotlib", "sklearn")


def _verb_parsers(parser: argparse.ArgumentParser, prefix: str = "step7bench"):
    """(command, parser) for every verb and sub-verb (`baseline save`), depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _verb_parsers(sub, f"{prefix} {name}")


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"step7bench {metadata.version('step7bench')}"


def test_bare_command_prints_usage_and_one_line_per_verb_and_exits_2(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: step7bench")
    lines = err.splitlines()
    for command, sub in _verb_parsers(build_parser()):
        if command.count(" ") == 1:  # a top-level verb
            name = command.split()[1]
            listed = [line for line in lines if line.strip().startswith(f"{name} ")]
            assert listed, f"{name} is not listed with its summary on one line"


def test_every_verb_has_a_description_and_an_example_and_every_option_a_help():
    verbs = list(_verb_parsers(build_parser()))
    assert len(verbs) == len(VERBS) + 1  # `baseline save`
    for command, parser in verbs:
        assert parser.description and parser.description.strip(), f"{command} has no description"
        assert parser.epilog and "example:\n  step7bench" in parser.epilog, f"{command} has no example"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help.strip(), f"{command} {action.option_strings or action.dest}: no help"


def test_calibrate_seeds_have_their_own_help():
    helps = {command: {a.dest: a.help for a in parser._actions} for command, parser in _verb_parsers(build_parser())}
    assert helps["step7bench calibrate"]["seeds"] != helps["step7bench run"]["seeds"]
    assert "calibration seeds" in helps["step7bench calibrate"]["seeds"]


@pytest.mark.parametrize("verb", ["run", "trial", "calibrate", "report", "gate", "baseline", "compare", "export",
                                  "merge", "list"])
def test_every_verb_answers_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: step7bench {verb}") and "example:" in out


def test_suggestion_offers_the_closest_name_or_nothing():
    assert suggestion("digts", ["grammar-lm", "code-lm", "digits"]) == "did you mean 'digits'?"
    assert suggestion("curriculm", ["curriculum", "curriculum_random", "transfer"]) == "did you mean 'curriculum'?"
    assert suggestion("imagenet", ["grammar-lm", "code-lm", "digits"]) == ""
    assert suggestion("anything", []) == ""


@pytest.mark.parametrize("argv, hint", [
    (["rn"], "did you mean 'run'?"),
    (["comapre"], "did you mean 'compare'?"),
    (["trial", "--workload", "digits", "--preset", "smal"], "did you mean 'small'?"),
    (["export", "--results", "r", "--format", "jsn"], "did you mean 'json'?"),
    (["trial", "--workload", "digts"], "did you mean 'digits'?"),
    (["trial", "--workload", "digits", "--technique", "curriculm"], "did you mean 'curriculum'?"),
])
def test_a_mistyped_name_gets_a_did_you_mean_in_one_line(capsys, argv, hint):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error:") and hint in err


# Run in a fresh interpreter: the test process has long imported torch and pandas.
_IMPORT_PROBE = """
import contextlib, io, json, sys
from step7bench.cli import VERBS, build_parser, main
build_parser()
for argv in (["--help"], *([verb if verb != "listing" else "list", "--help"] for verb in VERBS), []):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})))
"""


def test_building_the_parser_and_help_import_nothing_heavy():
    probe = _IMPORT_PROBE.format(heavy=set(HEAVY_MODULES))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
