"""Pure data checks shared by `verify`, `append`, `import_csv` and the miner: the range of ts
the store keeps, timeframe grid, OHLC sanity (the one definition of a bad candle), gaps between
consecutive candles and which of them the exchange itself never filled."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import polars as pl

from sfarm.data.layout import format_ts
from sfarm.timeframes import candle_open, timeframe_ms

OHLCV = ("open", "high", "low", "close", "volume")

# The ts (ms since the epoch, UTC) the store keeps: [FIRST_TS, END_TS).
# The trading engine takes ts -1 for "no candle processed yet": none before the epoch.
FIRST_TS: Final = 0  # 1970-01-01 00:00 UTC
# Partition keys are dates with 4-digit years; the year 9999's partition would end in 10000.
END_TS: Final = 253_370_764_800_000  # 9999-01-01 00:00 UTC, not included
TS_RANGE: Final = f"from {format_ts(FIRST_TS)} up to, not including, {format_ts(END_TS)} UTC"


def out_of_range_expr(column: str = "ts") -> pl.Expr:
    """True where the ts is outside [FIRST_TS, END_TS): a row the store refuses."""
    return ~pl.col(column).is_between(FIRST_TS, END_TS, closed="left")


def within_range(first: int, last: int) -> bool:
    """Whether ts from `first` to `last` all lie in [FIRST_TS, END_TS)."""
    return first >= FIRST_TS and last < END_TS


def out_of_range(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The values of `ts` outside [FIRST_TS, END_TS), in their order."""
    return ts[(ts < FIRST_TS) | (ts >= END_TS)]


def grid_offset(timeframe: str) -> int:
    """Where the grid starts modulo the candle length: 0, or Monday 00:00 UTC for 1w."""
    return candle_open(0, timeframe) % timeframe_ms(timeframe)


def off_grid_expr(timeframe: str, column: str = "ts") -> pl.Expr:
    """True where the ts is not a candle open of `timeframe`."""
    step = timeframe_ms(timeframe)
    return (pl.col(column) - grid_offset(timeframe)) % step != 0


def off_grid(ts: pl.Series, timeframe: str) -> pl.Series:
    """The values of `ts` that are not candle opens of `timeframe`."""
    return ts.to_frame("ts").filter(off_grid_expr(timeframe))["ts"]


PRICES = ("open", "high", "low", "close")
MISSING = "a missing open, high, low, close or volume"


def candle_rules() -> list[tuple[str, pl.Expr]]:
    """(what is wrong, expression true on a bad candle) for every OHLC sanity rule.

    The one definition of a bad candle: `verify` flags stored ones, `import_csv` refuses a file
    with any, and the miner refuses to store those an exchange serves. A candle with a missing,
    NaN or infinite value is named for that alone: comparing such values says nothing more.
    """
    return [(MISSING, _missing()), *value_rules()]


def _missing() -> pl.Expr:
    return pl.any_horizontal(pl.col(name).is_null() for name in OHLCV)


def value_rules() -> list[tuple[str, pl.Expr]]:
    """`candle_rules` but the missing-value one (a CSV import names the missing column)."""
    o, h, low, c, v = (pl.col(name) for name in OHLCV)
    not_a_number = pl.any_horizontal(pl.col(name).is_nan() for name in OHLCV).fill_null(False)
    infinite = pl.any_horizontal(pl.col(name).is_infinite() for name in OHLCV).fill_null(False)
    # Relations are judged on complete, finite candles only (NaN sorts above every number).
    # A high below its low always breaks one of the two rules around open and close.
    judged = ~(_missing() | not_a_number | infinite)
    return [
        ("NaN in open, high, low, close or volume", not_a_number),
        ("infinity in open, high, low, close or volume", infinite),
        ("a price of zero or below", judged & pl.any_horizontal(pl.col(n) <= 0 for n in PRICES)),
        ("low above open or close", judged & (low > pl.min_horizontal(o, c))),
        ("high below open or close", judged & (h < pl.max_horizontal(o, c))),
        ("negative volume", judged & (v < 0)),
    ]


def bad_candle_expr() -> pl.Expr:
    """True on a candle that breaks any of `candle_rules`."""
    return pl.any_horizontal(bad for _, bad in candle_rules())


def candle_faults(frame: pl.DataFrame) -> list[tuple[str, int, int]]:
    """(what is wrong, how many candles, the first one's ts) for every rule `frame` breaks."""
    faults = []
    for what, bad in candle_rules():
        offenders = frame.filter(bad)["ts"]
        if offenders.len():
            faults.append((what, offenders.len(), int(offenders[0])))
    return faults


def candle_problems(frame: pl.DataFrame, where: str) -> list[str]:
    """One line per broken rule: how many candles break it and the first one's ts."""
    return [f"{where}: {count} candles with {what}, first at {format_ts(first)}"
            for what, count, first in candle_faults(frame)]


def find_gaps(ts: pl.Series, step: int) -> list[tuple[int, int]]:
    """Missing candles as [first missing open, next present open) ranges; `ts` sorted."""
    frame = ts.to_frame("ts").with_columns(previous=pl.col("ts").shift(1))
    holes = frame.filter(pl.col("ts") - pl.col("previous") > step)
    return [(prev + step, nxt) for nxt, prev in holes.select("ts", "previous").iter_rows()]


def missing_candles(gap: tuple[int, int], step: int) -> int:
    return (gap[1] - gap[0]) // step


def unexplained_gaps(gaps: Iterable[tuple[int, int]], recorded: Sequence[Sequence[int]],
                     step: int) -> list[tuple[int, int]]:
    """The parts of `gaps` no recorded exchange-side gap covers.

    A recorded gap [a, b] (inclusive, any alignment) excuses every missing candle whose open is
    in it, so a miner may record [first missing, last missing], [last present, next present] or
    a half-open range alike.
    """
    spans = sorted((min(a, b), max(a, b)) for a, b in recorded)
    left: list[tuple[int, int]] = []
    for start, end in gaps:
        pieces = [(start, end - step)]  # closed ranges of missing opens
        for low, high in spans:
            if high < start or low > end:
                continue
            pieces = [piece for lo, hi in pieces for piece in _cut(lo, hi, low, high, step)]
        left.extend((lo, hi + step) for lo, hi in pieces)
    return left


def _cut(lo: int, hi: int, low: int, high: int, step: int) -> list[tuple[int, int]]:
    """Grid points lo..hi (closed) minus the interval [low, high]."""
    if high < lo or low > hi:
        return [(lo, hi)]
    kept = []
    if low > lo:
        kept.append((lo, lo + (low - lo - 1) // step * step))
    if high < hi:
        kept.append((lo + ((high - lo) // step + 1) * step, hi))
    return kept


def parse_recorded_gaps(value: object) -> tuple[list[tuple[int, int]], list[str]]:
    """`extra["exchange_gaps"]` as pairs of ints, plus a note for every entry that is not one."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        return [], [f'extra["exchange_gaps"] is not a list: {value!r}']
    pairs, notes = [], []
    for item in value:
        if (isinstance(item, list | tuple) and len(item) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in item)):
            pairs.append((int(item[0]), int(item[1])))
        else:
            notes.append(f'extra["exchange_gaps"] entry is not [start_ts, end_ts]: {item!r}')
    return pairs, notes
