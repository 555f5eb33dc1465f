"""The emulator's synthetic candles: deterministic, aggregate-consistent, grid-aligned, live."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.sim.candles import Candles, CandleSource, aggregate, partial_minute
from sfarm.sim.markets import MARKETS, MARKETS_BY_SYMBOL
from sfarm.timeframes import DAY_MS, MINUTE_MS, TIMEFRAME_MS, TIMEFRAMES, candle_open

BTC = MARKETS_BY_SYMBOL["BTC/USDT"]
JAN_2024 = 1_704_067_200_000  # a Monday
LATER = 1_767_225_600_000  # 2026-01-01: "now" for tests that want closed candles only
SOURCE = CandleSource(seed=0)


def as_rows(candles: Candles) -> list[tuple[int, ...]]:
    return list(zip(*(c.tolist() for c in candles.columns()), strict=True))


def aggregate_by_hand(minutes: Candles, timeframe: str) -> list[tuple[int, ...]]:
    groups: dict[int, list[tuple[int, ...]]] = {}
    for row in as_rows(minutes):
        groups.setdefault(candle_open(row[0], timeframe), []).append(row)
    return [(ts, rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows), rows[-1][4],
             sum(r[5] for r in rows)) for ts, rows in sorted(groups.items())]


def test_same_seed_same_candles_in_any_order_of_questions() -> None:
    first = CandleSource(seed=7).candles(BTC, "5m", now_ms=LATER, since_ms=JAN_2024 + 3 * DAY_MS)
    other = CandleSource(seed=7)
    other.candles(BTC, "1d", now_ms=LATER, since_ms=JAN_2024, limit=30)  # warm other caches
    second = other.candles(BTC, "5m", now_ms=LATER, since_ms=JAN_2024 + 3 * DAY_MS)
    assert as_rows(first) == as_rows(second)
    different = CandleSource(seed=8).candles(BTC, "5m", now_ms=LATER,
                                             since_ms=JAN_2024 + 3 * DAY_MS)
    assert as_rows(first) != as_rows(different)


@settings(max_examples=40, deadline=None)
@given(
    market=st.sampled_from(MARKETS),
    timeframe=st.sampled_from([tf for tf in TIMEFRAMES if TIMEFRAME_MS[tf] <= DAY_MS]),
    day=st.integers(0, 700),
    minute=st.integers(0, 1439),
    count=st.integers(1, 40),
)
def test_every_timeframe_is_the_aggregation_of_its_minutes(
    market, timeframe: str, day: int, minute: int, count: int
) -> None:
    step = TIMEFRAME_MS[timeframe]
    first = candle_open(JAN_2024 + day * DAY_MS + minute * MINUTE_MS, timeframe)
    candles = SOURCE.candles(market, timeframe, now_ms=LATER, since_ms=first, limit=count)
    minutes = SOURCE.minutes(market, first, first + count * step, LATER)
    assert as_rows(candles) == aggregate_by_hand(minutes, timeframe)


@pytest.mark.parametrize("timeframe", ["1d", "1w"])
def test_daily_and_weekly_candles_aggregate_minutes_too(timeframe: str) -> None:
    first = JAN_2024 + 14 * DAY_MS
    candles = SOURCE.candles(BTC, timeframe, now_ms=LATER, since_ms=first, limit=3)
    minutes = SOURCE.minutes(BTC, first, first + 3 * TIMEFRAME_MS[timeframe], LATER)
    assert as_rows(candles) == aggregate_by_hand(minutes, timeframe)


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
def test_candles_sit_on_the_grid_without_holes_and_are_sane(timeframe: str) -> None:
    step = TIMEFRAME_MS[timeframe]
    candles = SOURCE.candles(BTC, timeframe, now_ms=LATER, since_ms=JAN_2024, limit=100)
    assert len(candles) == 100
    assert all(candle_open(ts, timeframe) == ts for ts in candles.ts.tolist())
    assert np.all(np.diff(candles.ts) == step)
    assert np.all(candles.low >= 1) and np.all(candles.volume >= 0)
    assert np.all(candles.low <= np.minimum(candles.open, candles.close))
    assert np.all(candles.high >= np.maximum(candles.open, candles.close))
    if timeframe == "1w":  # Monday 00:00 UTC, as on Binance
        assert all((ts // DAY_MS + 3) % 7 == 0 for ts in candles.ts.tolist())


def test_each_minute_opens_where_the_previous_closed_across_midnight() -> None:
    midnight = JAN_2024 + DAY_MS
    minutes = SOURCE.minutes(BTC, midnight - 5 * MINUTE_MS, midnight + 5 * MINUTE_MS, LATER)
    assert len(minutes) == 10
    assert np.all(minutes.open[1:] == minutes.close[:-1])


def test_prices_are_plausible_for_years() -> None:
    for market in MARKETS:
        days = SOURCE.candles(market, "1d", now_ms=LATER, since_ms=JAN_2024, limit=730)
        closes = [float(market.price(c)) for c in days.close.tolist()]
        assert max(closes) / min(closes) < 4, market.symbol
        if market.symbol == "BTC/USDT":
            assert min(closes) > 20_000 and max(closes) < 100_000


def test_history_starts_at_the_configured_start() -> None:
    source = CandleSource(seed=0, start_ms=JAN_2024 + 10 * DAY_MS)
    candles = source.candles(BTC, "1h", now_ms=LATER, since_ms=JAN_2024, limit=5)
    assert candles.ts[0] == JAN_2024 + 10 * DAY_MS
    # a 1w candle that straddles the start aggregates the minutes that exist (from the start)
    week = source.candles(BTC, "1w", now_ms=LATER, since_ms=JAN_2024, limit=1)
    assert week.ts[0] == JAN_2024 + 7 * DAY_MS
    minutes = source.minutes(BTC, JAN_2024 + 7 * DAY_MS, JAN_2024 + 14 * DAY_MS, LATER)
    assert minutes.ts[0] == JAN_2024 + 10 * DAY_MS
    assert as_rows(week) == aggregate_by_hand(minutes, "1w")


def test_live_edge_current_minute_is_partial_and_the_previous_is_closed() -> None:
    now = JAN_2024 + 100 * DAY_MS + 37 * MINUTE_MS + 25_000
    candles = SOURCE.candles(BTC, "1m", now_ms=now, limit=3)
    assert candles.ts.tolist() == [now - 25_000 - 2 * MINUTE_MS, now - 25_000 - MINUTE_MS,
                                   now - 25_000]
    final = SOURCE.candles(BTC, "1m", now_ms=LATER, since_ms=int(candles.ts[0]), limit=3)
    assert as_rows(candles)[:2] == as_rows(final)[:2]  # closed candles never change
    live, done = as_rows(candles)[2], as_rows(final)[2]
    assert live[1] == done[1]  # same open
    assert done[3] <= live[3] <= live[2] <= done[2] and live[5] <= done[5]
    hour = SOURCE.candles(BTC, "1h", now_ms=now, limit=1)
    assert int(hour.ts[0]) == candle_open(now, "1h") and int(hour.close[0]) == live[4]
    whole_hour = SOURCE.candles(BTC, "1h", now_ms=LATER, since_ms=int(hour.ts[0]), limit=1)
    assert int(hour.volume[0]) < int(whole_hour.volume[0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=6))
def test_a_partial_minute_only_grows_towards_the_final_candle(fractions: list[float]) -> None:
    minute = SOURCE.minutes(BTC, JAN_2024 + 5 * DAY_MS, JAN_2024 + 5 * DAY_MS + MINUTE_MS, LATER)
    views = [partial_minute(minute, f) for f in sorted(fractions)]
    for before, after in itertools.pairwise(views):
        assert after.high[0] >= before.high[0] and after.low[0] <= before.low[0]
        assert after.volume[0] >= before.volume[0]
    for view in views:
        assert minute.low[0] <= view.low[0] <= min(view.open[0], view.close[0])
        assert max(view.open[0], view.close[0]) <= view.high[0] <= minute.high[0]
    assert as_rows(partial_minute(minute, 1.0)) == as_rows(minute)


def test_maintenance_gap_removes_minutes_and_pages_skip_it() -> None:
    gap = (JAN_2024 + 2 * DAY_MS, JAN_2024 + 2 * DAY_MS + 6 * 3_600_000)
    source = CandleSource(seed=0, gaps=[gap])
    minutes = source.candles(BTC, "1m", now_ms=LATER, since_ms=gap[0] - 10 * MINUTE_MS, limit=1000)
    assert len(minutes) == 1000  # the page skips the gap instead of coming back short
    assert not np.any((minutes.ts >= gap[0]) & (minutes.ts < gap[1]))
    assert minutes.ts[10] == gap[1]
    hours = source.candles(BTC, "1h", now_ms=LATER, since_ms=gap[0] - 3_600_000, limit=8)
    assert hours.ts.tolist()[:2] == [gap[0] - 3_600_000, gap[1]]
    four = source.candles(BTC, "4h", now_ms=LATER, since_ms=gap[0], limit=2)
    assert four.ts.tolist() == [gap[0] + 4 * 3_600_000, gap[0] + 8 * 3_600_000]
    around = source.minutes(BTC, gap[0] + 4 * 3_600_000, gap[0] + 8 * 3_600_000, LATER)
    assert as_rows(four)[0] == aggregate_by_hand(around, "4h")[0]


def test_without_since_the_last_candles_up_to_until() -> None:
    until = JAN_2024 + 50 * DAY_MS
    candles = SOURCE.candles(BTC, "15m", now_ms=LATER, until_ms=until, limit=10)
    assert len(candles) == 10 and int(candles.ts[-1]) == until
    assert aggregate(SOURCE.minutes(BTC, int(candles.ts[0]), until + 15 * MINUTE_MS, LATER),
                     15 * MINUTE_MS).ts.tolist() == candles.ts.tolist()
