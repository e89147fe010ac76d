"""Errors a user can cause. The CLI turns them into one line and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user: a flag, a name, a file. Message says what and where."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest of `choices` to a misspelt `name`, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """The one-line error for an unknown `kind` called `name`: the closest match, then the choices."""
    options = sorted(choices)
    return UserError(f"unknown {kind} {name!r}{did_you_mean(name, options)}; choose from {', '.join(options)}")
