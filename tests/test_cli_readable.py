"""Stored values as `sfarm data show` prints them (sfarm.cli.readable)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sfarm.cli.readable import column_decimals, extra_summary, format_column


def test_prices_keep_cents_and_small_values_their_digits() -> None:
    assert format_column([41654.16, 41708.5, 41501.8]) == ["41,654.16", "41,708.50", "41,501.80"]
    assert format_column([19.1085, 3.98636]) == ["19.1085", "3.9864"]
    assert format_column([0.00012345, 0.0001]) == ["0.00012345", "0.00010000"]
    assert format_column([10000.0, 0.0, None]) == ["10,000", "0", ""]
    assert format_column([1796212020000, 7]) == ["1,796,212,020,000", "7"]
    assert format_column([True, False, None]) == ["True", "False", ""]
    assert format_column([float("nan"), 1.5]) == ["nan", "1.50000"]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12,
                          max_value=1e12) | st.none(), min_size=1, max_size=20))
def test_a_column_has_one_number_of_decimals_and_keeps_each_value(
        values: list[float | None]) -> None:
    cells = format_column(values)
    decimals = column_decimals(values)
    assert len(cells) == len(values)
    for cell, value in zip(cells, values, strict=True):
        if value is None:
            assert cell == ""
            continue
        written = cell.replace(",", "")
        assert len(written.partition(".")[2]) == decimals
        assert math.isclose(float(written), value, abs_tol=10 ** -decimals)


def test_extra_shows_facts_not_an_engine_state() -> None:
    extra = {"indicator": {"spec": "bbands(20,2)", "input": "candles/sim/BTC-USDT/1h",
                           "state": {"window": {"close": [1.0] * 200}}},
             "session": {"mode": "paper", "strategy": "rsi", "engine": {"cash": 1.0}},
             "backtest": [1, 2, 3], "note": "imported"}
    assert extra_summary(extra) == [
        "indicator: spec bbands(20,2), input candles/sim/BTC-USDT/1h",
        "session: mode paper, strategy rsi", "backtest", "note: imported"]
