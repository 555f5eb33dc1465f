"""Live and backtest take the same stop decisions on the same candles.

A live session checks each polled price with `sfarm.trading.stops.polled_stop`; a backtest runs
the kernel over whole candles. Polling each candle's prices in the order the kernel assumes
(the adverse extreme first, "assume the worse", then the favourable one), a live position
leaves on the same candles, for the same reasons, and carries the same best price as the
backtest's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.trading.engine import Candles, EngineParams, EngineState, run
from sfarm.trading.stops import polled_stop

MINUTE = 60_000


def random_candles(seed: int, n: int) -> Candles:
    """A random walk with gaps between candles; every candle's signals say "be long"."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
    never = np.zeros(n, dtype=np.bool_)
    return Candles(ts=np.arange(n, dtype=np.int64) * MINUTE, open=open_, high=high, low=low,
                   close=close, entry_long=np.ones(n, dtype=np.bool_), exit_long=never,
                   entry_short=never, exit_short=never)


def live_exits(candles: Candles, params: EngineParams) -> tuple[list[tuple[int, str]], float]:
    """Enter at each open after a candle closed flat (the signals always say long), then poll
    the candle's low and high; the stop exits and the final best price since entry."""
    engine: EngineState | None = None
    exits = []
    for i in range(1, len(candles)):  # the first candle's signal fills at the second's open
        if engine is None:
            price = float(candles.open[i])
            engine = EngineState(cash=0.0, position=1.0, entry_price=price, extreme=price)
        for price in (float(candles.low[i]), float(candles.high[i])):
            engine, reason, _ = polled_stop(engine, params, price)
            if reason is not None:
                exits.append((int(candles.ts[i]), reason))
                engine = None
                break
    return exits, engine.extreme if engine is not None else float("nan")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       stop_loss=st.sampled_from([0.0, 0.005, 0.01, 0.03]),
       trailing_stop=st.sampled_from([0.0, 0.004, 0.01, 0.02]))
def test_live_polls_stop_out_where_the_backtest_does(seed: int, stop_loss: float,
                                                     trailing_stop: float) -> None:
    candles = random_candles(seed, 400)
    params = EngineParams(stop_loss=stop_loss, trailing_stop=trailing_stop)
    backtest = run(candles, params, EngineState.initial(1000.0))
    expected = [(int(t), str(r)) for t, r in
                zip(backtest.trades["exit_ts"], backtest.trades["reason"], strict=True)]
    exits, extreme = live_exits(candles, params)
    assert exits == expected
    if backtest.state.position > 0 and params.has_stops:  # (without, nothing tracks it)
        assert extreme == backtest.state.extreme


def test_the_comparison_sees_many_stops_of_both_kinds() -> None:
    """Not vacuous: on one walk both rules trigger, many times, and still agree."""
    candles = random_candles(1, 400)
    params = EngineParams(stop_loss=0.01, trailing_stop=0.01)
    exits, _ = live_exits(candles, params)
    assert len(exits) > 100 and {reason for _, reason in exits} == {"stop_loss",
                                                                    "trailing_stop"}
    backtest = run(candles, params, EngineState.initial(1000.0))
    assert exits == list(zip(backtest.trades["exit_ts"].to_list(),
                             backtest.trades["reason"].to_list(), strict=True))


def test_a_polled_price_at_the_stop_exits_and_one_above_raises_the_trail() -> None:
    params = EngineParams(stop_loss=0.05, trailing_stop=0.08)
    held = EngineState(cash=0.0, position=1.0, entry_price=100.0, extreme=110.0)
    assert polled_stop(held, params, 101.2).reason == "trailing_stop"  # 110 x 0.92
    assert polled_stop(held, params, 101.3).reason is None
    higher = polled_stop(held, params, 120.0)
    assert higher.reason is None and higher.engine.extreme == 120.0
    loss_only = EngineParams(stop_loss=0.05)
    assert polled_stop(held, loss_only, 95.0).reason == "stop_loss"
    assert polled_stop(held, EngineParams(), 1.0).reason is None  # no stop at all
