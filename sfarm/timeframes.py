"""Candle timeframes: the names sfarm accepts and their length in milliseconds."""

from __future__ import annotations

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

TIMEFRAME_MS: dict[str, int] = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "1w": 7 * DAY_MS,
}

TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MS)


class UnknownTimeframe(ValueError):
    """A timeframe name that sfarm does not know; the message quotes it, lists the accepted
    ones and names the near miss (`1H` -> `1h`)."""

    def __init__(self, name: object) -> None:
        message = f"unknown timeframe {name!r}; expected one of {' '.join(TIMEFRAMES)}"
        # `1H` is a near miss of `1h`; `1M` is not (ccxt writes a month as 1M).
        if isinstance(name, str) and name.strip().lower() in TIMEFRAME_MS \
                and not name.endswith("M"):
            message += f"; did you mean {name.strip().lower()!r}?"
        super().__init__(message)
        self.name = name


def check_timeframe(name: str) -> str:
    """`name` when sfarm knows it; else UnknownTimeframe (the one check of a timeframe's name:
    inventory tasks, command-line options, dataset ids)."""
    if not isinstance(name, str) or name not in TIMEFRAME_MS:
        raise UnknownTimeframe(name)
    return name


def timeframe_ms(name: str) -> int:
    """Length of one candle of `name` in milliseconds.

    >>> timeframe_ms("1h")
    3600000
    """
    try:
        return TIMEFRAME_MS[name]
    except KeyError:
        raise UnknownTimeframe(name) from None


# 1w candles open on Monday 00:00 UTC (as on Binance); the Unix epoch was a Thursday.
_WEEK_OFFSET_MS = 4 * DAY_MS


def candle_open(ts_ms: int, name: str) -> int:
    """Open time of the candle of timeframe `name` that contains `ts_ms`."""
    step = timeframe_ms(name)
    offset = _WEEK_OFFSET_MS if name == "1w" else 0
    return (ts_ms - offset) // step * step + offset
