"""The engine's fill, stop and signal rules on small hand-built candles, and chunked runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.trading.engine import Candles, EngineParams, EngineState, run

HOUR = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR


def candles(rows: list[tuple[float, float, float, float]], *, entry_long=(), exit_long=(),
            entry_short=(), exit_short=()) -> Candles:
    """Candles from (open, high, low, close) rows; signals given as lists of row indices."""
    n = len(rows)
    array = np.array(rows, dtype=np.float64)

    def flags(indices) -> np.ndarray:
        out = np.zeros(n, dtype=np.bool_)
        out[list(indices)] = True
        return out

    return Candles(ts=T0 + np.arange(n, dtype=np.int64) * HOUR, open=array[:, 0].copy(),
                   high=array[:, 1].copy(), low=array[:, 2].copy(), close=array[:, 3].copy(),
                   entry_long=flags(entry_long), exit_long=flags(exit_long),
                   entry_short=flags(entry_short), exit_short=flags(exit_short))


FLAT = (100.0, 101.0, 99.0, 100.0)


def test_signal_fills_at_next_open_with_slippage_and_fee() -> None:
    data = candles([FLAT, (102, 103, 101, 102), (104, 105, 103, 104), (110, 111, 109, 110)],
                   entry_long=[0], exit_long=[1])
    params = EngineParams(fee=0.001, slippage=0.01)
    result = run(data, params, EngineState.initial(1000.0))
    assert result.trades.height == 1
    trade = result.trades.row(0, named=True)
    buy = 102 * 1.01
    units = 1000.0 / (buy * 1.001)
    sell = 104 * 0.99
    assert trade["side"] == "long"
    assert trade["entry_ts"] == T0 + HOUR and trade["exit_ts"] == T0 + 2 * HOUR
    assert trade["entry_price"] == pytest.approx(buy) and trade["exit_price"] == pytest.approx(sell)
    assert trade["size"] == pytest.approx(units)
    fees = units * buy * 0.001 + units * sell * 0.001
    assert trade["fees"] == pytest.approx(fees)
    assert trade["pnl"] == pytest.approx(units * (sell - buy) - fees)
    assert trade["reason"] == "signal"
    # All in, fees included: the cash after the buy is zero, never negative.
    assert result.equity[0] == 1000.0
    assert result.equity[1] == pytest.approx(units * 102)
    assert result.equity[3] == pytest.approx(1000.0 + trade["pnl"])
    assert result.state.cash == pytest.approx(1000.0 + trade["pnl"])
    assert list(result.position) == [0.0, pytest.approx(units), 0.0, 0.0]


def test_signal_on_last_candle_is_not_filled() -> None:
    data = candles([FLAT, FLAT, FLAT], entry_long=[2])
    result = run(data, EngineParams(), EngineState.initial(1000.0))
    assert result.trades.height == 0
    assert list(result.position) == [0.0, 0.0, 0.0]
    assert result.state.pending_entry == 1  # filled at the next candle's open when it comes


def test_open_position_at_the_end_stays_open_marked_at_close() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (100, 121, 99, 120)], entry_long=[0])
    result = run(data, EngineParams(fee=0.01), EngineState.initial(1000.0))
    assert result.trades.height == 0
    units = 1000.0 / (100 * 1.01)
    assert result.state.position == pytest.approx(units)
    assert result.equity[-1] == pytest.approx(units * 120)  # no exit fee charged


def test_stop_loss_triggers_intrabar_at_the_stop_price() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (100, 100.5, 94, 96), FLAT], entry_long=[0])
    result = run(data, EngineParams(stop_loss=0.05), EngineState.initial(1000.0))
    trade = result.trades.row(0, named=True)
    assert trade["reason"] == "stop_loss"
    assert trade["exit_price"] == pytest.approx(95.0)
    assert trade["exit_ts"] == T0 + 2 * HOUR  # the open time of the candle it triggered in
    assert trade["exit_bar"] == 2


def test_gap_through_the_stop_fills_at_the_open() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (90, 92, 88, 91)], entry_long=[0])
    trade = run(data, EngineParams(stop_loss=0.05), EngineState.initial(1000.0)).trades.row(
        0, named=True)
    assert trade["reason"] == "stop_loss" and trade["exit_price"] == 90.0


def test_stop_and_target_in_one_candle_assumes_the_stop() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (100, 120, 80, 100)], entry_long=[0])
    params = EngineParams(stop_loss=0.05, take_profit=0.1)
    trade = run(data, params, EngineState.initial(1000.0)).trades.row(0, named=True)
    assert trade["reason"] == "stop_loss" and trade["exit_price"] == pytest.approx(95.0)


def test_take_profit_at_the_target_or_a_better_open() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (100, 111, 99, 105)], entry_long=[0])
    params = EngineParams(stop_loss=0.05, take_profit=0.1)
    trade = run(data, params, EngineState.initial(1000.0)).trades.row(0, named=True)
    assert trade["reason"] == "take_profit" and trade["exit_price"] == pytest.approx(110.0)
    gap = candles([FLAT, (100, 101, 99, 100), (115, 116, 114, 115)], entry_long=[0])
    trade = run(gap, params, EngineState.initial(1000.0)).trades.row(0, named=True)
    assert trade["reason"] == "take_profit" and trade["exit_price"] == 115.0


def test_stop_can_trigger_in_the_entry_candle() -> None:
    # Entered at the open of candle 1; its low (after the open) reaches the stop.
    data = candles([FLAT, (100, 100.5, 90, 92), FLAT], entry_long=[0])
    trade = run(data, EngineParams(stop_loss=0.05), EngineState.initial(1000.0)).trades.row(
        0, named=True)
    assert trade["entry_ts"] == trade["exit_ts"] == T0 + HOUR
    assert trade["exit_price"] == pytest.approx(95.0)


def test_trailing_stop_follows_previous_highs_not_the_current_one() -> None:
    rows = [FLAT,
            (100, 110, 100, 108),  # entry at 100; high 110 raises the stop to 99 for candle 2
            (108, 120, 100, 101),  # low 100 > 99: holds (its own high 120 is not used yet)
            (101, 102, 95, 96)]    # stop now 120 * 0.9 = 108: gapped, fills at the open 101
    data = candles(rows, entry_long=[0])
    result = run(data, EngineParams(trailing_stop=0.1), EngineState.initial(1000.0))
    trade = result.trades.row(0, named=True)
    assert trade["reason"] == "trailing_stop"
    assert trade["exit_bar"] == 3 and trade["exit_price"] == 101.0
    # Without a gap the trailing stop fills at its level.
    rows[3] = (112, 113, 100, 101)
    trade = run(candles(rows, entry_long=[0]), EngineParams(trailing_stop=0.1),
                EngineState.initial(1000.0)).trades.row(0, named=True)
    assert trade["exit_price"] == pytest.approx(108.0)


def test_short_trade_profit_fees_and_stop_from_highs() -> None:
    data = candles([FLAT, (100, 101, 95, 96), (96, 97, 89, 90), (90, 91, 89, 90)],
                   entry_short=[0], exit_short=[2])
    params = EngineParams(fee=0.001, allow_short=True)
    result = run(data, params, EngineState.initial(1000.0))
    trade = result.trades.row(0, named=True)
    units = 1000.0 / (100 * 1.001)
    assert trade["side"] == "short" and trade["size"] == pytest.approx(units)
    fees = units * 100 * 0.001 + units * 90 * 0.001
    assert trade["pnl"] == pytest.approx(units * (100 - 90) - fees)
    assert result.state.cash == pytest.approx(1000.0 + trade["pnl"])
    assert result.position[1] == pytest.approx(-units)
    assert result.equity[1] == pytest.approx(1000.0 + units * (100 - 96) - units * 100 * 0.001)
    stopped = candles([FLAT, (100, 104, 99, 103), FLAT], entry_short=[0])
    params = EngineParams(stop_loss=0.03, allow_short=True)
    trade = run(stopped, params, EngineState.initial(1000.0)).trades.row(0, named=True)
    assert trade["reason"] == "stop_loss" and trade["exit_price"] == pytest.approx(103.0)


def test_entry_short_is_ignored_without_allow_short() -> None:
    data = candles([FLAT, FLAT, FLAT], entry_short=[0])
    result = run(data, EngineParams(), EngineState.initial(1000.0))
    assert result.trades.height == 0 and result.state.position == 0.0


def test_opposite_entry_reverses_at_one_open() -> None:
    data = candles([FLAT, (100, 101, 99, 100), (110, 111, 109, 110), (120, 121, 119, 120)],
                   entry_long=[0], entry_short=[1])
    result = run(data, EngineParams(allow_short=True), EngineState.initial(1000.0))
    trade = result.trades.row(0, named=True)
    assert (trade["side"], trade["exit_ts"], trade["exit_price"]) == ("long", T0 + 2 * HOUR, 110)
    assert result.state.position == pytest.approx(-1100.0 / 110)
    assert result.state.entry_ts == T0 + 2 * HOUR


def test_entry_and_exit_together_do_nothing_when_flat() -> None:
    data = candles([FLAT, FLAT, FLAT], entry_long=[0], exit_long=[0])
    assert run(data, EngineParams(), EngineState.initial(1000.0)).trades.height == 0
    assert run(data, EngineParams(), EngineState.initial(1000.0)).state.pending_entry == 0


def test_size_fraction_and_size_quote() -> None:
    data = candles([FLAT, FLAT, FLAT], entry_long=[0])
    half = run(data, EngineParams(size_fraction=0.5), EngineState.initial(1000.0)).state
    assert half.position == pytest.approx(5.0) and half.cash == pytest.approx(500.0)
    quote = run(data, EngineParams(size_fraction=0.0, size_quote=300.0, fee=0.01),
                EngineState.initial(1000.0)).state
    assert quote.position == pytest.approx(300.0 / (100 * 1.01))
    assert quote.cash == pytest.approx(700.0)
    capped = run(data, EngineParams(size_fraction=0.0, size_quote=5000.0),
                 EngineState.initial(1000.0)).state
    assert capped.cash == pytest.approx(0.0, abs=1e-9)


def test_candles_must_be_newer_than_the_state() -> None:
    data = candles([FLAT, FLAT])
    state = run(data, EngineParams(), EngineState.initial(1000.0)).state
    with pytest.raises(ValueError, match="not newer"):
        run(data, EngineParams(), state)


def random_candles(n: int, seed: int) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, n)))
    return Candles(ts=T0 + np.arange(n, dtype=np.int64) * HOUR, open=open_, high=high, low=low,
                   close=close, entry_long=rng.random(n) < 0.05, exit_long=rng.random(n) < 0.05,
                   entry_short=rng.random(n) < 0.05, exit_short=rng.random(n) < 0.05)


@pytest.mark.parametrize("params", [
    EngineParams(fee=0.001, slippage=0.0005, allow_short=True),
    EngineParams(fee=0.001, slippage=0.0005, stop_loss=0.02, take_profit=0.04,
                 trailing_stop=0.015, allow_short=True),
    EngineParams(fee=0.002, size_fraction=0.0, size_quote=250.0, trailing_stop=0.01),
])
def test_chunked_runs_carry_the_state_and_match_one_run(params: EngineParams) -> None:
    data = random_candles(3000, seed=7)
    whole = run(data, params, EngineState.initial(1000.0))
    assert whole.trades.height > 50
    rng = np.random.default_rng(3)
    cuts = np.r_[0, np.sort(rng.choice(np.arange(1, len(data)), 40, replace=False)), len(data)]
    cuts = np.r_[cuts[:10], np.arange(cuts[10], cuts[10] + 30), cuts[11:]]  # single candles too
    cuts = np.unique(cuts)
    state = EngineState.initial(1000.0)
    trades, equity = [], []
    for start, stop in itertools.pairwise(cuts):
        part = run(data.slice(int(start), int(stop)), params, state)
        # Paper mode persists the state as JSON between candles: round-trip it here too.
        state = EngineState.from_json(part.state.to_json())
        trades.append(part.trades)
        equity.append(part.equity)
    import polars as pl

    assert pl.concat(trades).equals(whole.trades)
    assert np.array_equal(np.concatenate(equity), whole.equity)
    assert state == whole.state or (math.isnan(whole.state.entry_price)
                                    and state.to_json() == whole.state.to_json())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       density=st.sampled_from([0.002, 0.02, 0.2, 0.6]),
       allow_short=st.booleans(),
       stops=st.sampled_from([(0.0, 0.0, 0.0), (0.01, 0.0, 0.0), (0.0, 0.02, 0.0),
                              (0.0, 0.0, 0.01), (0.02, 0.03, 0.01)]))
def test_one_run_equals_candle_by_candle(seed: int, density: float, allow_short: bool,
                                         stops: tuple[float, float, float]) -> None:
    """A run over many candles skips the quiet ones (no order pending, no signal that could
    act); candle by candle nothing is skipped. Both must give the same books to the bit."""
    rng = np.random.default_rng(seed)
    n = 400
    data = random_candles(n, seed=seed % 1000)
    data = Candles(**{**{f: getattr(data, f) for f in ("ts", "open", "high", "low", "close")},
                      **{name: rng.random(n) < density for name in
                         ("entry_long", "exit_long", "entry_short", "exit_short")}})
    stop_loss, take_profit, trailing = stops
    params = EngineParams(fee=0.001, slippage=0.0002, stop_loss=stop_loss,
                          take_profit=take_profit, trailing_stop=trailing,
                          allow_short=allow_short)
    whole = run(data, params, EngineState.initial(1000.0))
    state = EngineState.initial(1000.0)
    equity, position, trades = [], [], []
    for i in range(n):
        part = run(data.slice(i, i + 1), params, state)
        state = part.state
        equity.append(part.equity)
        position.append(part.position)
        trades.append(part.trades)
    import polars as pl

    assert np.array_equal(np.concatenate(equity), whole.equity)
    assert np.array_equal(np.concatenate(position), whole.position)
    assert pl.concat(trades).equals(whole.trades)
    assert state.to_json() == whole.state.to_json()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.none() | st.booleans(), min_size=0, max_size=200), st.integers(0, 17))
def test_signal_columns_unpack_alike_with_or_without_pyarrow(values: list[bool | None],
                                                             offset: int) -> None:
    # A signal reaches the kernel as one byte a row: through arrow's bitmap when pyarrow is
    # loaded, else polars' to_numpy; a slice starts inside a byte of the bitmap.
    import sys

    import polars as pl
    import pyarrow  # loaded: the bitmap path

    from sfarm.trading.engine import _flags

    source = pl.DataFrame({"entry_long": pl.Series(values, dtype=pl.Boolean)}).slice(offset)
    expected = np.array([bool(value) for value in values[offset:]], dtype=np.bool_)
    through_arrow = _flags(source, "entry_long", source.height)
    del sys.modules["pyarrow"]
    try:
        through_polars = _flags(source, "entry_long", source.height)
    finally:
        sys.modules["pyarrow"] = pyarrow
    for flags in (through_arrow, through_polars):
        assert flags.dtype == np.bool_ and not flags.flags.writeable
        assert np.array_equal(flags, expected)
