"""Exceptions that the command line turns into a message and an exit status.

Exit status 2 is bad usage or bad input (the user must change something), 1 a run-time failure.
"""

from __future__ import annotations


class SfarmError(Exception):
    """Base of every error sfarm reports to a person; `str()` is the whole message."""

    exit_code = 1
    # Where the bad input is, when it is in a file: `--json` error documents carry them.
    file: str | None = None
    line: int | None = None

    def __init__(self, message: str, *, hint: str | None = None, file: object = None,
                 line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if file is not None:
            self.file = str(file)
        if line is not None:
            self.line = line


class UsageError(SfarmError):
    """Bad input: an invalid inventory, strategy, option or argument (exit status 2)."""

    exit_code = 2


class RunError(SfarmError):
    """Something failed at run time: a node unreachable, a step failed (exit status 1)."""

    exit_code = 1


class Interrupted(SfarmError):
    """The person pressed Ctrl-C (exit status 130, as a shell gives a process SIGINT ended)."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted")
