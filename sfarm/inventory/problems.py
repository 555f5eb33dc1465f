"""Problems found in an inventory, and the error that carries them to the person.

A problem names the key path, what was expected and, for near-miss names, a suggestion; the
loader adds the file and line. The CLI prints them all at once (exit status 2), so one run of
`sfarm validate` shows everything to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from sfarm.errors import UsageError
from sfarm.inventory.source import KeyPath, format_key_path


@dataclass(frozen=True)
class Problem:
    path: KeyPath
    message: str
    hint: str | None = None
    file: Path | None = None
    line: int | None = None

    def located(self, file: Path, line: int | None) -> Problem:
        return replace(self, file=self.file or file, line=self.line or line)

    def render(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        text = f"{where}{format_key_path(self.path)}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class InventoryError(UsageError):
    """An invalid inventory: every problem found, each with file, line and key path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = "\n  ".join(problem.render() for problem in problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"invalid inventory, {count} {noun}:\n  {lines}")


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` is a near miss of, if any."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """`did you mean 'mine-majors'?` for a near miss, else None."""
    match = closest(name, candidates)
    return f"did you mean {match!r}?" if match else None


def known_names(kind: str, candidates: Iterable[str]) -> str:
    names = sorted(candidates)
    if not names:
        return f"no {kind} defined"
    return f"known {kind}: {', '.join(names)}"
