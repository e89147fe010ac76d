"""Errors a user can cause. The CLI turns them into one line and exit code 2."""


class UserError(Exception):
    """Bad input from the user: a flag, a name, a file. Message says what and where."""
