"""Integer flags: a count that must be positive is refused at 0, never clamped."""

from __future__ import annotations

import argparse

import pytest

from step7bench.cli import main, non_negative_int, positive_int


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_report_refuses_a_count_below_one_in_one_line(tmp_path, capsys, value):
    assert main(["report", "--results", str(tmp_path), "--downstream-tasks", value]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--downstream-tasks" in error and "positive integer" in error


@pytest.mark.parametrize("value", ["0", "1", "1.5", "many"])
def test_report_refuses_a_confidence_outside_zero_and_one(tmp_path, capsys, value):
    assert main(["report", "--results", str(tmp_path), "--confidence", value]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--confidence" in error


def test_positive_and_non_negative_integers():
    assert positive_int("1") == 1 and non_negative_int("0") == 0
    for parse, text in ((positive_int, "0"), (non_negative_int, "-1"), (positive_int, "1.5")):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a"):
            parse(text)
