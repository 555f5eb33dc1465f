"""Step-by-step replicas of TA-Lib's infinite-memory indicators, for incremental updates.

Each class consumes one candle at a time from the first candle of a series and returns what
TA-Lib's batch function returns at that index (NaN during the warm-up). The arithmetic repeats
TA-Lib's C code operation for operation (seeding included; default compatibility mode, no
unstable period), so a replica continued from a saved state gives bit-for-bit the values of a
batch run over the whole series. All state is plain attributes (floats, ints, lists): `dump()` and
`load()` turn it into JSON-ready dicts.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

NAN = math.nan


def _is_zero(value: float) -> bool:
    # The TA-Lib build sfarm pins compares with exact zero (older releases used +-1e-8).
    return value == 0.0


def _true_range(high: float, low: float, prev_close: float) -> float:
    greatest = high - low
    val2 = abs(prev_close - high)
    if val2 > greatest:
        greatest = val2
    val3 = abs(prev_close - low)
    if val3 > greatest:
        greatest = val3
    return greatest


class Replica:
    """Base: subclasses set `inputs`/`outputs` and implement `step`."""

    inputs: ClassVar[tuple[str, ...]] = ("close",)
    n_outputs: ClassVar[int] = 1
    _deques: ClassVar[dict[str, int | None]] = {}  # attribute -> maxlen, restored as deques

    def step(self, *values: float) -> tuple[float, ...]:
        raise NotImplementedError

    def dump(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, deque) else v) for k, v in vars(self).items()}

    def load(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key in self._deques:
                value = deque(value, maxlen=getattr(self, key).maxlen)
            setattr(self, key, value)


class Ema(Replica):
    """TA_INT_EMA: seeded with the mean of the first `period` inputs (summed from 0.0)."""

    def __init__(self, period: int, k: float | None = None) -> None:
        self.period = period
        self.k = 2.0 / (period + 1) if k is None else k
        self.count = 0
        self.total = 0.0
        self.value = NAN

    def push(self, x: float) -> float:
        if self.count < self.period:
            self.total += x
            self.count += 1
            if self.count == self.period:
                self.value = self.total / self.period
                return self.value
            return NAN
        self.value = (x - self.value) * self.k + self.value
        return self.value

    def step(self, *values: float) -> tuple[float, ...]:
        return (self.push(values[0]),)


class _Chain(Replica):
    """EMAs fed one into the next (DEMA, TEMA); sub-states are dumped as nested dicts."""

    depth: ClassVar[int] = 2

    def __init__(self, period: int) -> None:
        self.emas = [Ema(period) for _ in range(self.depth)]

    def levels(self, x: float) -> list[float] | None:
        values = []
        for ema in self.emas:
            x = ema.push(x)
            if math.isnan(x):
                return None
            values.append(x)
        return values

    def dump(self) -> dict[str, Any]:
        return {"emas": [e.dump() for e in self.emas]}

    def load(self, data: dict[str, Any]) -> None:
        for ema, sub in zip(self.emas, data["emas"], strict=True):
            ema.load(sub)


class Dema(_Chain):
    depth = 2

    def step(self, *values: float) -> tuple[float, ...]:
        levels = self.levels(values[0])
        if levels is None:
            return (NAN,)
        return ((2.0 * levels[0]) - levels[1],)


class Tema(_Chain):
    depth = 3

    def step(self, *values: float) -> tuple[float, ...]:
        levels = self.levels(values[0])
        if levels is None:
            return (NAN,)
        e1, e2, e3 = levels
        return (e3 + ((3.0 * e1) - (3.0 * e2)),)


class Macd(Replica):
    """TA_MACD: fast/slow seeds end on the same bar; the signal EMA is seeded by a mean."""

    n_outputs = 3

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.fast_p, self.slow_p, self.signal_p = fast, slow, signal
        self.fast_k = 2.0 / (fast + 1)
        self.slow_k = 2.0 / (slow + 1)
        self.signal_k = 2.0 / (signal + 1)
        self.count = 0
        self.fast = 0.0
        self.slow = 0.0
        self.signal = 0.0
        self.signal_count = 0

    def step(self, *values: float) -> tuple[float, ...]:
        x = values[0]
        index = self.count
        self.count += 1
        if index < self.slow_p:
            if index >= self.slow_p - self.fast_p:
                self.fast += x
            self.slow += x
            if index < self.slow_p - 1:
                return (NAN, NAN, NAN)
            self.slow = self.slow / self.slow_p
            self.fast = self.fast / self.fast_p
        else:
            self.fast = (x - self.fast) * self.fast_k + self.fast
            self.slow = (x - self.slow) * self.slow_k + self.slow
        macd = self.fast - self.slow
        if self.signal_count < self.signal_p:
            self.signal += macd
            self.signal_count += 1
            if self.signal_count < self.signal_p:
                return (NAN, NAN, NAN)
            self.signal = self.signal / self.signal_p
        else:
            self.signal = (macd - self.signal) * self.signal_k + self.signal
        return (macd, self.signal, macd - self.signal)


class Kama(Replica):
    """TA_KAMA: efficiency ratio over `period` with a running sum of absolute changes."""

    _deques: ClassVar[dict[str, int | None]] = {"window": None}
    _CONST_MAX = 2.0 / (30.0 + 1.0)
    _CONST_DIFF = 2.0 / (2.0 + 1.0) - _CONST_MAX

    def __init__(self, period: int) -> None:
        self.period = period
        self.window: deque[float] = deque(maxlen=period + 1)  # last period+1 closes
        self.count = 0
        self.sum_roc1 = 0.0
        self.trailing = 0.0
        self.kama = NAN

    def _smooth(self, x: float, period_roc: float) -> float:
        if self.sum_roc1 <= period_roc or _is_zero(self.sum_roc1):
            er = 1.0
        else:
            er = abs(period_roc / self.sum_roc1)
        sc = (er * self._CONST_DIFF) + self._CONST_MAX
        sc *= sc
        self.kama = ((x - self.kama) * sc) + self.kama
        return self.kama

    def step(self, *values: float) -> tuple[float, ...]:
        x = values[0]
        index = self.count
        self.count += 1
        window = self.window
        p = self.period
        if index < p:
            window.append(x)
            return (NAN,)
        if index == p:
            window.append(x)
            seq = list(window)
            total = 0.0
            for j in range(p):
                total += abs(seq[j] - seq[j + 1])
            self.sum_roc1 = total
            self.kama = seq[p - 1]
            self.trailing = seq[0]
            return (self._smooth(x, x - seq[0]),)
        trailing_new = window[1]  # x[index - p]
        previous = window[-1]
        window.append(x)
        period_roc = x - trailing_new
        self.sum_roc1 -= abs(self.trailing - trailing_new)
        self.sum_roc1 += abs(x - previous)
        self.trailing = trailing_new
        return (self._smooth(x, period_roc),)


class Rsi(Replica):
    """TA_RSI (Wilder): 100 * gain / (gain + loss), 0 when both are ~0."""

    def __init__(self, period: int) -> None:
        self.period = period
        # The TA-Lib build multiplies by a reciprocal where the C source divides.
        self.inv_period = 1.0 / period
        self.p_minus_1 = float(period - 1)
        self.count = 0
        self.prev = 0.0
        self.gain = 0.0
        self.loss = 0.0

    def push(self, x: float) -> float:
        index = self.count
        self.count += 1
        p = self.period
        if index == 0:
            self.prev = x
            return NAN
        diff = x - self.prev
        self.prev = x
        gain_inc = diff if diff > 0.0 else 0.0
        loss_inc = gain_inc - diff
        if index <= p:  # seed: plain sums of the first p changes
            self.gain += gain_inc
            self.loss += loss_inc
            if index < p:
                return NAN
            self.gain *= self.inv_period
            self.loss *= self.inv_period
            total = self.loss + self.gain
            return (self.gain / total) * 100.0 if total > 0.0 else 0.0
        self.gain = (self.gain * self.p_minus_1 + gain_inc) * self.inv_period
        self.loss = (loss_inc + self.loss * self.p_minus_1) * self.inv_period
        total = self.loss + self.gain
        return (self.gain / total) * 100.0 if total > 0.0 else 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        return (self.push(values[0]),)


class Atr(Replica):
    """TA_ATR (Wilder smoothing of the true range); NATR divides by the close."""

    inputs = ("high", "low", "close")
    normalized: ClassVar[bool] = False

    def __init__(self, period: int) -> None:
        self.period = period
        self.count = 0
        self.prev_close = 0.0
        self.atr = 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        high, low, close = values
        index = self.count
        self.count += 1
        p = self.period
        if index == 0:
            self.prev_close = close
            return (NAN,)
        tr = _true_range(high, low, self.prev_close)
        self.prev_close = close
        if index < p:
            self.atr += tr
            return (NAN,)
        if index == p:
            self.atr += tr
            self.atr = self.atr / p
        else:
            self.atr *= p - 1
            self.atr += tr
            self.atr /= p
        return (self._out(close),)

    def _out(self, close: float) -> float:
        if not self.normalized:
            return self.atr
        return (self.atr / close) * 100.0 if not _is_zero(close) else 0.0


class Natr(Atr):
    normalized = True


class Obv(Replica):
    """TA_OBV: starts at the first volume, then adds or subtracts each volume."""

    inputs = ("close", "volume")

    def __init__(self) -> None:
        self.count = 0
        self.obv = 0.0
        self.prev = 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        close, volume = values
        if self.count == 0:
            self.obv = volume
            self.prev = close
        self.count += 1
        if close > self.prev:
            self.obv += volume
        elif close < self.prev:
            self.obv -= volume
        self.prev = close
        return (self.obv,)


class StochRsi(Replica):
    """TA_STOCHRSI: STOCHF (fast %K over the RSI, SMA %D with TA-Lib's running sum)."""

    n_outputs = 2
    _deques: ClassVar[dict[str, int | None]] = {"rsis": None, "fastks": None}

    def __init__(self, period: int, fastk: int, fastd: int) -> None:
        self.rsi = Rsi(period)
        self.fastk_p = fastk
        self.fastd_p = fastd
        self.rsis: deque[float] = deque(maxlen=fastk)
        self.fastks: deque[float] = deque(maxlen=fastd)
        self.total = 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        rsi = self.rsi.push(values[0])
        if math.isnan(rsi):
            return (NAN, NAN)
        self.rsis.append(rsi)
        if len(self.rsis) < self.fastk_p:
            return (NAN, NAN)
        highest = max(self.rsis)
        lowest = min(self.rsis)
        span = highest - lowest
        # STOCHF treats a range within 1e-14 of the levels' magnitude as flat.
        flat = abs(span) <= (abs(highest) + abs(lowest)) * 1e-14
        fastk = 0.0 if flat else (rsi - lowest) / span * 100.0
        # TA_INT_SMA: add the new value, emit, then drop the trailing one.
        if len(self.fastks) < self.fastd_p - 1:
            self.fastks.append(fastk)
            self.total += fastk
            return (NAN, NAN)
        self.total += fastk
        emitted = self.total
        self.fastks.append(fastk)
        self.total -= self.fastks[0]
        return (fastk, emitted / self.fastd_p)

    def dump(self) -> dict[str, Any]:
        data = super().dump()
        data["rsi"] = self.rsi.dump()
        return data

    def load(self, data: dict[str, Any]) -> None:
        data = dict(data)
        self.rsi.load(data.pop("rsi"))
        super().load(data)
