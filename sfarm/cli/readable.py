"""Stored values as a person reads them: numbers with the decimals their column needs, times
in UTC, and a manifest's `extra` without the engines' internal state. Pure: values in, strings
out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import NoneType
from typing import TYPE_CHECKING, Any

from sfarm.data.layout import format_ts

if TYPE_CHECKING:
    import polars as pl

SIGNIFICANT = 6  # digits a number keeps (41,745.25; 19.1085; 0.0012345)
MIN_DECIMALS = 2
MAX_DECIMALS = 8
EXTRA_FACTS = 4  # plain facts shown per section of `extra`
FIRST_FOUR_DIGIT_YEAR_MS = -30_610_224_000_000  # 1000-01-01 00:00 UTC
END_FOUR_DIGIT_YEAR_MS = 253_402_300_800_000  # 10000-01-01 00:00 UTC


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


def format_column(values: Sequence[Any]) -> list[str]:
    """A column's cells: floats to a shared number of decimals, ints with thousands
    separators, anything else as it is ("" for a missing value)."""
    # The column's few types, not each of its values, decide (100,000 rows of `data show`).
    kinds = set(map(type, values))
    if any(issubclass(kind, float) for kind in kinds) and all(
            kind is NoneType or (issubclass(kind, int | float) and not issubclass(kind, bool))
            for kind in kinds):
        # format() writes an int as its float, and nan and inf as str() does
        spec = f",.{column_decimals(values)}f"
        return ["" if value is None else format(value, spec) for value in values]
    return ["" if value is None else f"{value:,}" if isinstance(value, int)
            and not isinstance(value, bool) else str(value) for value in values]


def format_times(ts: pl.Series) -> list[str]:
    """`format_ts` of each millisecond timestamp. polars writes the dates of years 1000 to
    9999 (where its `%Y` has format_ts's four digits) in ~0.05 s per 100,000 where format_ts
    takes ~1 s; format_ts writes the rest (null, far dates, a column not of Int64)."""
    import polars as pl  # only for a command that has read rows: not at every start

    if ts.dtype != pl.Int64:
        return [format_ts(value) for value in ts.to_list()]
    moments = pl.select(pl.when(ts.is_between(FIRST_FOUR_DIGIT_YEAR_MS, END_FOUR_DIGIT_YEAR_MS,
                                              closed="left"))
                        .then(ts).cast(pl.Datetime("ms"))).to_series()
    texts = pl.select(pl.when(moments.dt.second() == 0)
                      .then(moments.dt.strftime("%Y-%m-%d %H:%M"))
                      .otherwise(moments.dt.strftime("%Y-%m-%d %H:%M:%S"))).to_series()
    return [format_ts(value) if text is None else text
            for text, value in zip(texts.to_list(), ts.to_list(), strict=True)]


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
