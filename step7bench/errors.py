"""Errors a user can cause. The CLI turns them into one line and exit code 2.

Imports only the standard library, so the command line's parser stays light.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's similarity ratio a choice must reach to be offered: 0.6 is difflib's own default,
# which catches one or two typed-wrong letters in names of this length ("digts", "curriculm")
# without offering an unrelated name.
SIMILARITY_CUTOFF = 0.6


class UserError(Exception):
    """Bad input from the user: a flag, a name, a file. Message says what and where."""


def suggestion(name: str, choices: Iterable[str]) -> str:
    """`did you mean 'x'?` for the choice closest to a mistyped `name`, or "" when none is close."""
    matches = difflib.get_close_matches(name, [str(choice) for choice in choices], n=1, cutoff=SIMILARITY_CUTOFF)
    return f"did you mean {matches[0]!r}?" if matches else ""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`suggestion` as a clause to append to a message: "; did you mean 'x'?" or ""."""
    hint = suggestion(name, choices)
    return f"; {hint}" if hint else ""


def unknown_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """One line: `unknown KIND 'name'; did you mean 'x'? (choose from a, b, c)`."""
    names = sorted(str(choice) for choice in choices)
    return f"unknown {kind} {name!r}{did_you_mean(name, names)} (choose from {', '.join(names)})"


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UserError:
    return UserError(unknown_message(kind, name, choices))
