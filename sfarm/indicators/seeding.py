"""Fast start: a recurrence's state at the end of a long history, read from TA-Lib's outputs.

Replaying a replica over 1e7 candles in Python takes tens of seconds; TA-Lib already computed the
recurrence in C. For most indicators its last values are the state (EMA, ATR, OBV, MACD's
signal), and the hidden parts come from other TA-Lib functions with the same arithmetic: the
EMAs inside DEMA/TEMA/MACD from EMA, Wilder's smoothed DMs from PLUS_DM/MINUS_DM, RSI's averaged
gains and losses from ATR fed with the gains (its true range is then the gain). The few values
TA-Lib keeps only as running sums (KAMA's volatility, STOCHRSI's %D total, the directional TR)
are recomputed from the last window or inverted from an output, so continuing from such a state
agrees with a full run to ~1e-15 relative. SAR resets at each reversal, so its state is rebuilt
at the last reversal (found from its outputs) and replayed from there; STOCHRSI replays its RSI,
which must be exact to the bit. When none of this applies (short histories, an ambiguous SAR
side), the caller replays the whole history instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from sfarm.indicators import directional as dm
from sfarm.indicators import recurrences as rec
from sfarm.indicators.ta import talib

Arrays = dict[str, np.ndarray]
Outputs = tuple[np.ndarray, ...]


def _ema(replica: rec.Ema, series: np.ndarray) -> np.ndarray | None:
    values = talib.EMA(series, timeperiod=replica.period)
    if not len(values) or np.isnan(values[-1]):
        return None
    replica.value = float(values[-1])
    replica.count = replica.period
    return values


def _seed_ema(replica: rec.Ema, arrays: Arrays, outputs: Outputs) -> bool:
    return _ema(replica, arrays["close"]) is not None


def _seed_chain(replica: rec._Chain, arrays: Arrays, outputs: Outputs) -> bool:
    series = arrays["close"]
    for ema in replica.emas:
        series = _ema(ema, series)  # type: ignore[assignment]
        if series is None:
            return False
    return True


def _seed_macd(replica: rec.Macd, arrays: Arrays, outputs: Outputs) -> bool:
    close = arrays["close"]
    signal = outputs[1]
    if not len(signal) or np.isnan(signal[-1]):
        return False
    skip = replica.slow_p - replica.fast_p  # MACD's fast seed window ends with the slow one
    replica.slow = float(talib.EMA(close, timeperiod=replica.slow_p)[-1])
    replica.fast = float(talib.EMA(close[skip:], timeperiod=replica.fast_p)[-1])
    replica.signal = float(signal[-1])
    replica.count = len(close)
    replica.signal_count = replica.signal_p
    return True


def _wilder_average(values: np.ndarray, period: int) -> float:
    """Wilder's average as RSI computes it, via ATR: with low = close = 0 the TR is the value."""
    zeros = np.zeros_like(values)
    return float(talib.ATR(values, zeros, zeros, timeperiod=period)[-1])


def _seed_rsi(replica: rec.Rsi, arrays: Arrays, outputs: Outputs) -> bool:
    close = arrays["close"]
    if len(close) <= replica.period:
        return False
    diff = np.diff(close, prepend=close[0])
    gains = np.where(diff > 0.0, diff, 0.0)
    losses = gains - diff  # RSI's own expression: 0 - diff for a fall, diff - diff for a rise
    replica.gain = _wilder_average(gains, replica.period)
    replica.loss = _wilder_average(losses, replica.period)
    replica.prev = float(close[-1])
    replica.count = len(close)
    return True


def _seed_stochrsi(replica: rec.StochRsi, arrays: Arrays, outputs: Outputs) -> bool:
    fastk = outputs[0]
    if not len(fastk) or np.isnan(fastk[-1]):
        return False
    # %K divides by the RSI's range, which an ulp of RSI can swing when the range is nearly
    # flat: the RSI state must be TA-Lib's to the bit, so replay the RSI (only it, ~1 us a row).
    rsi = replica.rsi
    push = rsi.push
    for value in arrays["close"].tolist():
        push(value)
    rsis = talib.RSI(arrays["close"], timeperiod=rsi.period)
    replica.rsis = deque(rsis[-replica.fastk_p:].tolist(), maxlen=replica.fastk_p)
    replica.fastks = deque(fastk[-replica.fastd_p:].tolist(), maxlen=replica.fastd_p)
    total = 0.0  # TA-Lib's running %D sum, rebuilt from its last terms
    for value in list(replica.fastks)[1:]:
        total += value
    replica.total = total
    return True


def _direction(out: float, high: float, low: float) -> bool | None:
    """SAR's side at a candle from its output: long below the low, short above the high."""
    long_side, short_side = bool(out <= low), bool(out >= high)
    return None if long_side == short_side else long_side


def _seed_sar(replica: dm.Sar, arrays: Arrays, outputs: Outputs) -> bool:
    """Rebuild SAR's state at its last reversal (where it resets) and replay from there."""
    high, low, sar = arrays["high"], arrays["low"], outputs[0]
    n = len(high)
    if n < 3:
        return False
    last = _direction(sar[-1], high[-1], low[-1])
    if last is None:
        return False
    r = n - 1
    while r > 1:
        before = _direction(sar[r - 1], high[r - 1], low[r - 1])
        if before is None:
            return False
        if before != last:
            break
        r -= 1
    if r <= 1:
        return False  # no reversal since the first candles: replay everything
    # State right after the reversal at candle r, as SAR computes it.
    acc = replica.acceleration
    out = float(sar[r])
    replica.is_long = last
    replica.af = acc
    if last:
        replica.ep = float(high[r])
        replica.sar = replica._cap_down(out + acc * (replica.ep - out), float(low[r - 1]),
                                        float(low[r]))
    else:
        replica.ep = float(low[r])
        replica.sar = replica._cap_up(out + acc * (replica.ep - out), float(high[r - 1]),
                                      float(high[r]))
    replica.new_high, replica.new_low = float(high[r]), float(low[r])
    replica.count = r + 1
    step = replica.step
    for h, lo in zip(high[r + 1:].tolist(), low[r + 1:].tolist(), strict=True):
        step(h, lo)
    return True


def _seed_atr(replica: rec.Atr, arrays: Arrays, outputs: Outputs) -> bool:
    high, low, close = arrays["high"], arrays["low"], arrays["close"]
    if len(close) <= replica.period:
        return False
    replica.atr = float(talib.ATR(high, low, close, timeperiod=replica.period)[-1])
    replica.prev_close = float(close[-1])
    replica.count = len(close)
    return True


def _seed_obv(replica: rec.Obv, arrays: Arrays, outputs: Outputs) -> bool:
    close = arrays["close"]
    if not len(close):
        return False
    replica.obv = float(outputs[0][-1])
    replica.prev = float(close[-1])
    replica.count = len(close)
    return True


def _seed_kama(replica: rec.Kama, arrays: Arrays, outputs: Outputs) -> bool:
    close = arrays["close"]
    p = replica.period
    if len(close) <= p:
        return False
    window = close[-(p + 1):].tolist()
    total = 0.0
    for j in range(p):
        total += abs(window[j + 1] - window[j])
    replica.window = deque(window, maxlen=p + 1)
    replica.sum_roc1 = total
    replica.trailing = float(close[-(p + 1)])
    replica.kama = float(outputs[0][-1])
    replica.count = len(close)
    return True


def _seed_directional(replica: dm._Directional, arrays: Arrays, outputs: Outputs) -> bool:
    high, low, close = arrays["high"], arrays["low"], arrays["close"]
    p = replica.period
    if len(close) <= 2 * p or np.isnan(outputs[0][-1]):
        return False
    plus_dm = float(talib.PLUS_DM(high, low, timeperiod=p)[-1])
    minus_dm = float(talib.MINUS_DM(high, low, timeperiod=p)[-1])
    # TA-Lib keeps the smoothed true range to itself; DI = 100 * DM / TR gives it back.
    tr = None
    for value, function in ((plus_dm, talib.PLUS_DI), (minus_dm, talib.MINUS_DI)):
        di = float(function(high, low, close, timeperiod=p)[-1])
        if value > 0.0 and di > 0.0:
            tr = 100.0 * value / di
            break
    if tr is None:
        return False
    replica.plus_dm, replica.minus_dm, replica.tr = plus_dm, minus_dm, tr
    replica.prev_high, replica.prev_low = float(high[-1]), float(low[-1])
    replica.prev_close = float(close[-1])
    replica.count = len(close)
    if isinstance(replica, dm.Adx):
        replica.adx = float(outputs[0][-1])
    return True


SEEDERS: dict[type, Callable[[Any, Arrays, Outputs], bool]] = {
    rec.Ema: _seed_ema, rec.Dema: _seed_chain, rec.Tema: _seed_chain, rec.Macd: _seed_macd,
    rec.Rsi: _seed_rsi, rec.StochRsi: _seed_stochrsi, rec.Atr: _seed_atr, rec.Natr: _seed_atr,
    rec.Obv: _seed_obv, rec.Kama: _seed_kama, dm.PlusDi: _seed_directional,
    dm.MinusDi: _seed_directional, dm.Adx: _seed_directional, dm.Sar: _seed_sar,
}

# Below this many candles a replay is cheap and exact: no need for the fast start.
MIN_ROWS = 2_000


def seed_from_outputs(replica: Any, arrays: Arrays, outputs: Outputs) -> bool:
    """Set `replica` to its state after `arrays`; False when the caller must replay instead."""
    seeder = SEEDERS.get(type(replica))
    if seeder is None or len(next(iter(arrays.values()))) < MIN_ROWS:
        return False
    return seeder(replica, arrays, outputs)
