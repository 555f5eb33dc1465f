"""Exceptions that the command line turns into a message and an exit status.

Exit status 2 is bad usage or bad input (the user must change something), 1 a run-time failure.
"""

from __future__ import annotations


class SfarmError(Exception):
    """Base of every error sfarm reports to a person; `str()` is the whole message."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(SfarmError):
    """Bad input: an invalid inventory, strategy, option or argument (exit status 2)."""

    exit_code = 2


class RunError(SfarmError):
    """Something failed at run time: a node unreachable, a step failed (exit status 1)."""

    exit_code = 1
