"""The compiled inner loop of the engine (numba): fills, stops and signals, one candle at a time.

Plain arrays in, arrays out, so numba compiles it once (cached on disk) and it runs at
tens of millions of candles per second. `sfarm.trading.engine` wraps it in typed objects; the
rules are in docs/trading.md. Order of events inside candle i: (1) pending exit, then pending
entry, at the open; (2) stop loss / take profit / trailing stop from high and low; (3) equity
and position at the close; (4) the signals of candle i become orders for candle i+1's open.
Then (5): with no order pending, the candles up to the next one whose signals could act or
whose prices reach a stop or target only move the books, and the loop runs through them on a
short path (most candles). tests/test_trading_engine.py checks that a run equals the same
candles one by one. `exit_levels` and `protective_exit` are the stop and target rule; live
trading applies them to each price it polls (`sfarm.trading.stops`).
"""

from __future__ import annotations

import numpy as np

from sfarm.trading.jit import jit

# Layout of the state vector (EngineState fields, in this order).
STATE_FIELDS = ("cash", "position", "entry_price", "entry_ts", "entry_bar", "entry_fee",
                "extreme", "pending_exit", "pending_entry", "last_ts", "bars")
# Layout of a trade row.
TRADE_FIELDS = ("side", "entry_ts", "exit_ts", "entry_price", "exit_price", "size", "pnl", "fees",
                "reason", "entry_bar", "exit_bar")
REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop")
SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP = 0, 1, 2, 3


@jit(cache=True, inline="always")
def _record(trades, count, side, entry_ts, exit_ts, entry_price, exit_price, size, entry_fee,
            exit_fee, reason, entry_bar, exit_bar):
    if count == trades.shape[0]:
        grown = np.empty((trades.shape[0] * 2, trades.shape[1]), dtype=np.float64)
        grown[:count] = trades[:count]
        trades = grown
    row = trades[count]
    row[0] = side
    row[1] = entry_ts
    row[2] = exit_ts
    row[3] = entry_price
    row[4] = exit_price
    row[5] = size
    row[6] = side * size * (exit_price - entry_price) - entry_fee - exit_fee
    row[7] = entry_fee + exit_fee
    row[8] = reason
    row[9] = entry_bar
    row[10] = exit_bar
    return trades, count + 1


@jit(cache=True, inline="always")
def exit_levels(side, entry_price, extreme, sl, tp, trail):
    """(stop, its reason, target) of a position of `side` (+1 long, -1 short); a level that is
    off is infinitely far. Prices are compared as side * price (a sign change is exact), so one
    rule serves both sides."""
    stop = -np.inf * side
    stop_reason = STOP_LOSS
    if sl > 0.0:
        stop = entry_price * (1.0 - side * sl)
    if trail > 0.0:
        trailing = extreme * (1.0 - side * trail)
        if side * trailing > side * stop:
            stop = trailing
            stop_reason = TRAILING_STOP
    target = entry_price * (1.0 + side * tp) if tp > 0.0 else np.inf * side
    return stop, stop_reason, target


@jit(cache=True, inline="always")
def protective_exit(side, o, adverse, favorable, stop, stop_reason, target):
    """(price, reason) at which a position leaves inside a candle by its stop or target;
    (NaN, SIGNAL) when it stays. The adverse extreme is a long's low and a short's high."""
    if side * o <= side * stop:  # gapped through the stop: the open is the first price there
        return o, stop_reason
    if side * o >= side * target:
        return o, TAKE_PROFIT
    if side * adverse <= side * stop:  # both may have traded: assume the worse, the stop
        return stop, stop_reason
    if side * favorable >= side * target:
        return target, TAKE_PROFIT
    return np.nan, SIGNAL


@jit(cache=True)
def simulate(ts, open_, high, low, close, entry_long, exit_long, entry_short, exit_short,
             params, state, equity_out, position_out):
    """Run the candles; update `state` in place, fill the outputs, return (trade rows, count)."""
    fee = params[0]
    slip = params[1]
    sl = params[2]
    tp = params[3]
    trail = params[4]
    size_fraction = params[5]
    size_quote = params[6]
    allow_short = params[7] > 0.0

    cash = state[0]
    pos = state[1]
    entry_price = state[2]
    entry_ts = state[3]
    entry_bar = state[4]
    entry_fee = state[5]
    extreme = state[6]
    pending_exit = state[7] > 0.0
    pending_entry = int(state[8])
    last_ts = state[9]
    bars = int(state[10])

    trades = np.empty((64, 11), dtype=np.float64)
    count = 0
    has_stops = sl > 0.0 or tp > 0.0 or trail > 0.0
    n = ts.shape[0]
    i = 0
    while i < n:
        bar = bars + i
        o = open_[i]
        # (1) orders decided at the previous close fill at this open: exit first, then entry.
        if pending_exit and pos != 0.0:
            side = 1.0 if pos > 0.0 else -1.0
            price = o * (1.0 - slip * side)
            units = abs(pos)
            exit_fee = units * price * fee
            cash += side * units * price - exit_fee
            trades, count = _record(trades, count, side, entry_ts, ts[i], entry_price, price,
                                    units, entry_fee, exit_fee, SIGNAL, entry_bar, bar)
            pos = 0.0
        pending_exit = False
        if pending_entry != 0 and pos == 0.0:
            side = float(pending_entry)
            price = o * (1.0 + slip * side)
            budget = cash * size_fraction if size_quote <= 0.0 else min(size_quote, cash)
            if budget > 0.0:
                units = budget / (price * (1.0 + fee))
                entry_fee = units * price * fee
                cash -= side * units * price + entry_fee
                pos = side * units
                entry_price = price
                entry_ts = ts[i]
                entry_bar = bar
                extreme = price
        pending_entry = 0

        # (2) protective exits inside the candle, from its open on (the entry candle included).
        if has_stops and pos != 0.0:
            side = 1.0 if pos > 0.0 else -1.0
            adverse, favorable = (low[i], high[i]) if pos > 0.0 else (high[i], low[i])
            stop, stop_reason, target = exit_levels(side, entry_price, extreme, sl, tp, trail)
            exit_at, reason = protective_exit(side, o, adverse, favorable, stop, stop_reason,
                                               target)
            if np.isnan(exit_at):
                if side * favorable > side * extreme:
                    extreme = favorable
            else:
                price = exit_at * (1.0 - slip * side)
                units = abs(pos)
                exit_fee = units * price * fee
                cash += side * units * price - exit_fee
                trades, count = _record(trades, count, side, entry_ts, ts[i], entry_price, price,
                                        units, entry_fee, exit_fee, reason, entry_bar, bar)
                pos = 0.0

        # (3) the books at the close.
        equity_out[i] = cash + pos * close[i]
        position_out[i] = pos

        # (4) this candle's signals become orders for the next open.
        go_long = entry_long[i] and not exit_long[i] and not (allow_short and entry_short[i])
        go_short = allow_short and entry_short[i] and not exit_short[i] and not entry_long[i]
        if pos > 0.0:
            if exit_long[i] or (allow_short and entry_short[i]):
                pending_exit = True
                if go_short:
                    pending_entry = -1
        elif pos < 0.0:
            if exit_short[i] or entry_long[i]:
                pending_exit = True
                if go_long:
                    pending_entry = 1
        elif go_long:
            pending_entry = 1
        elif go_short:
            pending_entry = -1
        i += 1

        # (5) with no order pending, the candles up to the next one that could do more than
        # move the books (a signal that acts, a stop or target reached) take a short path.
        if pending_exit or pending_entry != 0:
            continue
        # The signals that act in the current position: flat, entry_long, or entry_short where
        # shorts are allowed; long, exit_long, or entry_short where allowed; short, exit_short
        # or entry_long.
        if pos == 0.0:
            acting, acting_too, second_acts = entry_long, entry_short, allow_short
        elif pos > 0.0:
            acting, acting_too, second_acts = exit_long, entry_short, allow_short
        else:
            acting, acting_too, second_acts = exit_short, entry_long, True
        if pos == 0.0 or not has_stops:
            while i < n and not (acting[i] or (second_acts and acting_too[i])):
                equity_out[i] = cash + pos * close[i]
                position_out[i] = pos
                i += 1
            continue
        side = 1.0 if pos > 0.0 else -1.0
        adverse_prices, favorable_prices = (low, high) if pos > 0.0 else (high, low)
        stop, stop_reason, target = exit_levels(side, entry_price, extreme, sl, tp, trail)
        while i < n and not (acting[i] or (second_acts and acting_too[i])):
            favorable = favorable_prices[i]
            exit_at, reason = protective_exit(side, open_[i], adverse_prices[i], favorable,
                                               stop, stop_reason, target)
            if not np.isnan(exit_at):
                break  # the full steps above record the exit
            if side * favorable > side * extreme:
                extreme = favorable
                stop, stop_reason, target = exit_levels(side, entry_price, extreme, sl, tp, trail)
            equity_out[i] = cash + pos * close[i]
            position_out[i] = pos
            i += 1

    if n > 0:
        last_ts = ts[n - 1]
    state[0] = cash
    state[1] = pos
    state[2] = entry_price
    state[3] = entry_ts
    state[4] = entry_bar
    state[5] = entry_fee
    state[6] = extreme
    state[7] = 1.0 if pending_exit else 0.0
    state[8] = pending_entry
    state[9] = last_ts
    state[10] = bars + n
    return trades, count
