"""The miner's pure rules: start and end of a fetch, page decisions, gaps, live-edge wake times."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.mining.windows import (
    OffGridCandle,
    closed_end,
    decide_page,
    expected_candles,
    fetch_end,
    first_open,
    is_closed,
    merge_gaps,
    next_wake,
    resume_open,
)
from sfarm.timeframes import DAY_MS, HOUR_MS, MINUTE_MS

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, a Monday


def rows(*opens: int) -> list[list[float]]:
    return [[ts, 1.0, 2.0, 0.5, 1.5, 10.0] for ts in opens]


def test_first_open_rounds_up_to_the_grid() -> None:
    assert first_open(T0, "1h") == T0
    assert first_open(T0 + 1, "1h") == T0 + HOUR_MS
    assert first_open(T0 + 59 * MINUTE_MS, "1h") == T0 + HOUR_MS
    # 1w candles open on Monday 00:00 UTC.
    assert first_open(T0 + DAY_MS, "1w") == T0 + 7 * DAY_MS


def test_resume_continues_after_the_last_stored_candle_whatever_since_says() -> None:
    assert resume_open(T0, "1m", None) == T0
    assert resume_open(T0, "1m", T0 + 10 * MINUTE_MS) == T0 + 11 * MINUTE_MS
    # since moved past the stored data: continuing avoids a hole between the two runs.
    assert resume_open(T0 + DAY_MS, "1m", T0) == T0 + MINUTE_MS


def test_closed_candles_only() -> None:
    now = T0 + 5 * MINUTE_MS + 30_000  # 00:05:30
    assert closed_end(now, "1m") == T0 + 5 * MINUTE_MS  # 00:04 is the last closed one
    assert is_closed(T0 + 4 * MINUTE_MS, "1m", now)
    assert not is_closed(T0 + 5 * MINUTE_MS, "1m", now)
    assert is_closed(T0 + 4 * MINUTE_MS, "1m", T0 + 5 * MINUTE_MS)  # closes exactly at now
    assert closed_end(now, "1h") == T0  # the 00:00 hour is still open


def test_fetch_end_is_the_earlier_of_until_and_the_live_edge() -> None:
    now = T0 + DAY_MS
    assert fetch_end(now, "1h", None) == now
    assert fetch_end(now, "1h", T0 + 3 * HOUR_MS) == T0 + 3 * HOUR_MS
    assert fetch_end(now, "1h", T0 + 3 * HOUR_MS + 1) == T0 + 4 * HOUR_MS  # opens < until
    assert fetch_end(now, "1h", now + DAY_MS) == now
    assert expected_candles(T0, T0 + DAY_MS, "1h") == 24
    assert expected_candles(T0 + DAY_MS, T0, "1h") == 0


def test_full_page_keeps_everything_and_continues() -> None:
    page = rows(*(T0 + i * MINUTE_MS for i in range(5)))
    decision = decide_page(page, T0, T0 + DAY_MS, "1m", has_history=True)
    assert [r[0] for r in decision.rows] == [r[0] for r in page]
    assert decision.gaps == []
    assert decision.next_open == T0 + 5 * MINUTE_MS
    assert not decision.exhausted
    assert decision.last_ts == T0 + 4 * MINUTE_MS


def test_partial_candle_and_candles_past_until_are_dropped() -> None:
    end = T0 + 3 * MINUTE_MS
    decision = decide_page(rows(T0, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS, end), T0, end, "1m",
                           has_history=True)
    assert [r[0] for r in decision.rows] == [T0, T0 + MINUTE_MS, T0 + 2 * MINUTE_MS]
    assert decision.exhausted and decision.next_open == end


def test_holes_inside_a_page_are_gaps_too() -> None:
    decision = decide_page(rows(T0, T0 + 3 * MINUTE_MS, T0 + 4 * MINUTE_MS), T0, T0 + DAY_MS,
                           "1m", has_history=False)
    assert decision.gaps == [(T0 + MINUTE_MS, T0 + 3 * MINUTE_MS)]


def test_candles_before_the_expected_one_and_duplicates_are_dropped() -> None:
    page = rows(T0 - MINUTE_MS, T0, T0, T0 + MINUTE_MS)
    decision = decide_page(page, T0, T0 + DAY_MS, "1m", has_history=True)
    assert [r[0] for r in decision.rows] == [T0, T0 + MINUTE_MS]


def test_a_later_first_candle_is_an_exchange_gap_once_there_is_history() -> None:
    later = T0 + 6 * HOUR_MS
    decision = decide_page(rows(later, later + MINUTE_MS), T0, T0 + DAY_MS, "1m",
                           has_history=True)
    assert decision.gaps == [(T0, later)]
    assert decision.next_open == later + 2 * MINUTE_MS
    fresh = decide_page(rows(later), T0, T0 + DAY_MS, "1m", has_history=False)
    assert fresh.gaps == []  # a fresh dataset simply starts where the market's data starts


def test_a_gap_is_only_proven_by_a_closed_candle_after_it() -> None:
    # Only the partial candle came back: maybe the exchange publishes late; do not skip ahead.
    end = T0 + 5 * MINUTE_MS
    decision = decide_page(rows(end), T0, end, "1m", has_history=True)
    assert decision.rows == [] and decision.gaps == []
    assert decision.exhausted and decision.next_open == T0


def test_empty_page_is_exhausted() -> None:
    decision = decide_page([], T0, T0 + DAY_MS, "1m", has_history=True)
    assert decision.exhausted and decision.next_open == T0 and decision.last_ts is None


def test_off_grid_candle_is_refused() -> None:
    with pytest.raises(OffGridCandle):
        decide_page(rows(T0 + 1000), T0, T0 + DAY_MS, "1m", has_history=True)


@settings(max_examples=60, deadline=None)
@given(present=st.sets(st.integers(0, 200)), page_size=st.integers(1, 50))
def test_paging_through_any_holes_stores_every_candle_and_records_every_hole(
        present: set[int], page_size: int) -> None:
    """Simulate ccxt pagination (first `page_size` candles from `since`) over a series with
    arbitrary holes: everything present is kept once, and every hole after the first candle is
    recorded as a gap."""
    series = sorted(T0 + i * MINUTE_MS for i in present)
    end = T0 + 201 * MINUTE_MS
    expected, stored, gaps, requests = T0, [], [], 0
    while True:
        page = rows(*[ts for ts in series if ts >= expected][:page_size])
        requests += 1
        decision = decide_page(page, expected, end, "1m", has_history=bool(stored))
        stored += [int(r[0]) for r in decision.rows]
        gaps += decision.gaps
        expected = decision.next_open
        if decision.exhausted:
            break
    assert stored == series
    assert requests <= len(series) // page_size + 2
    holes = [(a + MINUTE_MS, b) for a, b in pairwise(series) if b - a > MINUTE_MS]
    assert merge_gaps(gaps) == [list(h) for h in holes]


def test_merge_gaps_joins_overlapping_and_touching_ranges() -> None:
    assert merge_gaps([]) == []
    assert merge_gaps([[5, 7], [1, 3], [3, 4], [6, 9], [20, 21]]) == [[1, 4], [5, 9], [20, 21]]
    assert merge_gaps([(1, 10), (2, 3)]) == [[1, 10]]


def test_next_wake_is_right_after_the_next_close() -> None:
    delay = 1_500
    # 00:05:30: the 00:05 candle closes at 00:06:00, fetch at 00:06:01.5.
    assert next_wake(T0 + 330_000, "1m", delay) == T0 + 6 * MINUTE_MS + delay
    # 00:06:00.5: the 00:05 candle closed but its delay is not over yet: wake at 00:06:01.5.
    assert next_wake(T0 + 6 * MINUTE_MS + 500, "1m", delay) == T0 + 6 * MINUTE_MS + delay
    # Exactly at the wake time, the next one is a candle later.
    assert next_wake(T0 + 6 * MINUTE_MS + delay, "1m", delay) == T0 + 7 * MINUTE_MS + delay
    assert next_wake(T0 + 10 * MINUTE_MS, "1h", delay) == T0 + HOUR_MS + delay
    assert next_wake(T0 + DAY_MS, "1w", 0) == T0 + 7 * DAY_MS


def test_next_wake_polls_with_growing_intervals_while_behind() -> None:
    now = T0 + 10 * MINUTE_MS
    assert next_wake(now, "1h", 0, caught_up=False, idle_polls=0) == now + 5_000
    assert next_wake(now, "1h", 0, caught_up=False, idle_polls=2) == now + 20_000
    # Never later than the next candle close.
    assert next_wake(now, "1h", 0, caught_up=False, idle_polls=30) == T0 + HOUR_MS
    assert next_wake(now, "1m", 0, caught_up=False, idle_polls=5) == T0 + 11 * MINUTE_MS
