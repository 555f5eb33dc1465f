"""The stop rule between candles, for live trading: the kernel's own rule (`exit_levels`,
`protective_exit` in `sfarm.trading.kernel`) applied to one polled price, so a live session and
a backtest decide a stop the same way.

Only the stops: a live take profit rests on the exchange as a limit order.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

from sfarm.trading.engine import EngineParams, EngineState
from sfarm.trading.kernel import REASONS, exit_levels, protective_exit

LONG = 1.0  # live trading is spot: long positions only


class StopCheck(NamedTuple):
    engine: EngineState  # with its best price since entry raised to the price, if no exit
    reason: str | None  # "stop_loss" or "trailing_stop" when the price crossed it, else None
    stop: float  # the stop's level (-inf when the strategy has neither)


def polled_stop(engine: EngineState, params: EngineParams, price: float) -> StopCheck:
    """Check a long position against its stop loss and trailing stop at `price`.

    A price is treated as a candle that opens, trades and closes at it: the kernel's first
    check, the open against the stop, decides.
    """
    stop, stop_reason, _ = exit_levels(LONG, engine.entry_price, engine.extreme,
                                       params.stop_loss, 0.0, params.trailing_stop)
    exit_at, reason = protective_exit(LONG, price, price, price, stop, stop_reason, math.inf)
    if math.isnan(exit_at):
        return StopCheck(replace(engine, extreme=max(engine.extreme, price)), None, stop)
    return StopCheck(engine, REASONS[int(reason)], stop)
