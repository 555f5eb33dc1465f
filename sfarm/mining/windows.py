"""Pure rules of mining: where a dataset (re)starts, which candles of a fetched page to keep,
which holes are the exchange's own (maintenance), and when the live edge next has a closed candle.

Everything here takes values (ms timestamps, timeframe names, raw ccxt rows) and returns values;
the fetch loop in `sfarm.mining.fetch` does the I/O. Timestamps are candle opens in ms, UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from sfarm.timeframes import candle_open, timeframe_ms

# A ccxt OHLCV row: [ts, open, high, low, close, volume] (values may be None on some exchanges).
Row = Sequence[float | int | None]


class OffGridCandle(ValueError):
    """The exchange returned a candle whose open is not on sfarm's grid for the timeframe."""

    def __init__(self, ts: int, timeframe: str) -> None:
        super().__init__(f"candle open {ts} is not on the {timeframe} grid")
        self.ts = ts
        self.timeframe = timeframe


def first_open(since_ms: int, timeframe: str) -> int:
    """The first candle open at or after `since_ms` (a candle that starts before `since` is not
    asked for: `since` means "from here on")."""
    opened = candle_open(since_ms, timeframe)
    return opened if opened == since_ms else opened + timeframe_ms(timeframe)


def resume_open(since_ms: int, timeframe: str, last_ts: int | None) -> int:
    """Where a run goes on forward: right after the last stored candle, else at `since`.

    A stored dataset always continues from its last candle, even when `since` moved later,
    so a dataset never gets a hole between two runs; holes before it (from `since` on) are
    found from the index and fetched first (`sfarm.data.find_holes`).
    """
    if last_ts is None:
        return first_open(since_ms, timeframe)
    return last_ts + timeframe_ms(timeframe)


def closed_end(now_ms: int, timeframe: str) -> int:
    """Exclusive bound on the opens of candles closed at `now_ms` (ts + tf <= now)."""
    return candle_open(now_ms, timeframe)


def fetch_end(now_ms: int, timeframe: str, until_ms: int | None) -> int:
    """Exclusive bound on the opens to store now: closed candles, opened before `until`."""
    end = closed_end(now_ms, timeframe)
    return end if until_ms is None else min(end, first_open(until_ms, timeframe))


def is_closed(ts: int, timeframe: str, now_ms: int) -> bool:
    return ts + timeframe_ms(timeframe) <= now_ms


def expected_candles(start: int, end: int, timeframe: str) -> int:
    """Candles on the grid in [start, end) (0 when end <= start)."""
    return max(0, (end - start) // timeframe_ms(timeframe))


@dataclass(frozen=True)
class PageDecision:
    """What to do with one fetched page."""

    rows: list[list[float]]  # candles to store: closed, in [expected, end), sorted, unique
    gaps: list[tuple[int, int]]  # [first missing open, next present open): exchange-side
    next_open: int  # the candle to ask for next
    exhausted: bool  # nothing more to store until another candle closes

    @property
    def last_ts(self) -> int | None:
        return int(self.rows[-1][0]) if self.rows else None


def decide_page(page: Iterable[Row], expected: int, end: int, timeframe: str, *,
                has_history: bool) -> PageDecision:
    """Keep the candles of `page` with expected <= ts < end, and read what the page says.

    * A page whose first kept candle opens after `expected` proves the exchange has nothing in
      between (ccxt asks for candles from `since` on): a gap, recorded when the dataset already
      has candles before it. A fresh dataset simply starts at its first candle (the market may
      have been listed after `since`). Holes between the candles of a page are gaps too.
    * A short page is fine: the next request starts right after its last candle.
    * No kept candle means nothing more is available yet; the gap, if any, stays unproven until
      a closed candle after it arrives (an exchange may publish a minute late).
    """
    step = timeframe_ms(timeframe)
    by_ts: dict[int, list[float]] = {}
    for row in page:
        ts = int(row[0])  # type: ignore[arg-type]
        if ts < expected or ts >= end or ts in by_ts:
            continue
        if candle_open(ts, timeframe) != ts:
            raise OffGridCandle(ts, timeframe)
        by_ts[ts] = [ts, *row[1:6]]  # type: ignore[list-item]
    if not by_ts:
        return PageDecision([], [], expected, True)
    opens = sorted(by_ts)
    chain = [expected - step, *opens] if has_history else opens
    gaps = [(before + step, after) for before, after in pairwise(chain)
            if after - before > step]
    next_open = opens[-1] + step
    return PageDecision([by_ts[ts] for ts in opens], gaps, next_open, next_open >= end)


def merge_gaps(gaps: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sorted, disjoint [start, end) ranges covering the same opens (touching ranges joined)."""
    merged: list[list[int]] = []
    for start, stop in sorted((int(a), int(b)) for a, b in gaps):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return merged


def next_wake(now_ms: int, timeframe: str, delay_ms: int, *, caught_up: bool = True,
              idle_polls: int = 0, poll_ms: int = 5_000) -> int:
    """When the live follower fetches next.

    Caught up: right after the current candle closes, plus `delay_ms` (exchanges publish a
    closed candle a moment after its close). Behind (the last fetch brought nothing although a
    candle should have closed, e.g. an exchange lagging or in maintenance): poll again after
    `poll_ms`, doubling with every idle poll, never later than the next candle close.
    """
    # The first close whose wake time (close + delay) is still ahead of now.
    close = candle_open(now_ms - delay_ms, timeframe) + timeframe_ms(timeframe) + delay_ms
    if caught_up:
        return close
    backoff: int = poll_ms << min(idle_polls, 16)
    return min(now_ms + backoff, close)
