"""Reading a TOML file with errors that point at the line: `FILE:LINE: what is wrong`.

`tomllib` gives values, not positions, so `key_lines` finds where each key is written by
following the table headers line by line. It knows plain `key = value` lines under
`[table]` and `[[array]]` headers, which is all the suite, targets and claims files use; a key
it cannot place (an inline table, a dotted key) is reported by its key path instead.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from step7bench.errors import UserError, did_you_mean

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")


def key_lines(text: str) -> dict[KeyPath, int]:
    """Line number (1-based) of every table header and `key = value` line, by key path.

    An array-of-tables entry gets its index: the second `[[workload]]`'s `preset` key is
    ``("workload", 1, "preset")``.
    """
    lines: dict[KeyPath, int] = {}
    array_counts: dict[tuple[str, ...], int] = {}
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = tuple(part.strip().strip("\"'") for part in header.group(2).split("."))
            if header.group(1) == "[[":
                index = array_counts.get(names, 0)
                array_counts[names] = index + 1
                table = (*names, index)
            else:
                table = names
            lines.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((*table, key.group(1).strip('"')), number)
    return lines


class Document:
    """One TOML file: its parsed values and a way to fail at a key's line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UserError(f"{path}: not UTF-8 text") from None
        try:
            self.values: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            position = _TOML_POSITION.search(message)
            where = f"{path}:{position.group(1)}" if position else str(path)
            raise UserError(f"{where}: invalid TOML: {_TOML_POSITION.sub('', message)}") from None
        self.text = text
        self._lines = key_lines(text)

    # -- failing ----------------------------------------------------------------------------
    def where(self, path: KeyPath) -> str:
        """`FILE:LINE` of the nearest written key on `path`, else `FILE: key.path`."""
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return f"{self.path}:{self._lines[path[:end]]}"
        return f"{self.path}: {dotted(path)}" if path else str(self.path)

    def fail(self, path: KeyPath, message: str) -> UserError:
        return UserError(f"{self.where(path)}: {message}")

    # -- typed access -------------------------------------------------------------------------
    def check_keys(self, table: dict[str, Any], path: KeyPath, allowed: Iterable[str],
                   required: Iterable[str] = ()) -> None:
        """Unknown keys and missing required keys are errors (a typo must not pass silently)."""
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                raise self.fail((*path, key), f"unknown key {dotted((*path, key))!r}{did_you_mean(key, allowed)} "
                                              f"(allowed here: {', '.join(allowed)})")
        for key in required:
            if key not in table:
                raise self.fail(path, f"missing required key {dotted((*path, key))!r}")

    def get(self, table: dict[str, Any], path: KeyPath, key: str, kind: str, default: Any = None) -> Any:
        """`table[key]` checked against `kind`: int, positive_int, non_negative_int, number,
        positive_number, str, str_list, table, table_list. Absent -> `default`."""
        if key not in table:
            return default
        value = table[key]
        problem = _type_problem(value, kind)
        if problem:
            raise self.fail((*path, key), f"{dotted((*path, key))} must be {problem}, got {_show(value)}")
        return value


def dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return f"a list {value!r}" if len(repr(value)) < 60 else "a list"
    return f"{type(value).__name__} {value!r}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


_CHECKS = {
    "int": (_is_int, "an integer"),
    "positive_int": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "non_negative_int": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "number": (_is_number, "a finite number"),
    "positive_number": (lambda v: _is_number(v) and v > 0, "a positive finite number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "str_list": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "number_list": (lambda v: isinstance(v, list) and all(_is_number(x) for x in v), "a list of numbers"),
    "int_list": (lambda v: isinstance(v, list) and all(_is_int(x) for x in v), "a list of integers"),
    "table": (lambda v: isinstance(v, dict), "a table"),
    "table_list": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
                   "a list of tables ([[...]])"),
}


def _type_problem(value: Any, kind: str) -> str | None:
    check, description = _CHECKS[kind]
    return None if check(value) else description
