"""Text given in a file that sfarm shows or passes on as it is: no control characters."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def check_printable(value: str) -> str:
    """Refuse control characters (a NUL, a newline, an escape): a path or a command with one
    fails later, far from the line that gave it; a name with one reaches a terminal raw."""
    bad = next((char for char in value if ord(char) < 32 or ord(char) == 127), None)
    if bad is not None:
        raise ValueError(f"control character {bad!r} in {value!r}")
    return value


Printable = Annotated[str, AfterValidator(check_printable)]
