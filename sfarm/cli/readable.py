"""Stored values as a person reads them: numbers with the decimals their column needs, and a
manifest's `extra` without the engines' internal state. Pure: values in, strings out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

SIGNIFICANT = 6  # digits a number keeps (41,745.25; 19.1085; 0.0012345)
MIN_DECIMALS = 2
MAX_DECIMALS = 8
EXTRA_FACTS = 4  # plain facts shown per section of `extra`


def column_decimals(values: Sequence[float | None]) -> int:
    """The decimals that give the column's largest value SIGNIFICANT digits (at least two;
    none for a column of whole numbers), the same for every row so the points line up."""
    finite = [abs(value) for value in values if value is not None and math.isfinite(value)]
    largest = max(finite, default=0.0)
    if all(value == int(value) for value in finite):
        return 0
    integer_digits = math.floor(math.log10(largest)) + 1
    # Cents at least: a price of 41,654.16 keeps them though it has 7 digits.
    return max(MIN_DECIMALS, min(MAX_DECIMALS, SIGNIFICANT - integer_digits))


def format_number(value: float | int | None, decimals: int) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.{decimals}f}" if isinstance(value, float) else f"{value:,}"


def format_column(values: Sequence[Any]) -> list[str]:
    """A column's cells: floats to a shared number of decimals, ints with thousands
    separators, anything else as it is ("" for a missing value)."""
    if any(isinstance(value, float) for value in values) and all(
            value is None or (isinstance(value, int | float) and not isinstance(value, bool))
            for value in values):
        decimals = column_decimals(values)
        return [format_number(None if value is None else float(value), decimals)
                for value in values]
    return ["" if value is None else f"{value:,}" if isinstance(value, int)
            and not isinstance(value, bool) else str(value) for value in values]


def extra_summary(extra: Mapping[str, Any]) -> list[str]:
    """One line per section of a manifest's `extra`: its plain facts (text, numbers, flags),
    not the nested state an engine resumes from (`--json` has all of it)."""
    lines = []
    for section, content in extra.items():
        if isinstance(content, Mapping):
            facts = [f"{key} {value}" for key, value in content.items()
                     if isinstance(value, str | int | float | bool)][:EXTRA_FACTS]
            lines.append(f"{section}: {', '.join(facts)}" if facts else section)
        elif isinstance(content, str | int | float | bool):
            lines.append(f"{section}: {content}")
        else:
            lines.append(section)
    return lines
