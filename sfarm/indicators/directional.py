"""Step replicas of TA-Lib's directional-movement family (PLUS_DI, MINUS_DI, ADX) and SAR.

Same contract as `recurrences.py`: one candle at a time from the first candle, TA-Lib's exact
arithmetic (Wilder sums `x - x/p + v`, TA_IS_ZERO guards), state as plain attributes.
"""

from __future__ import annotations

from typing import ClassVar

from sfarm.indicators.recurrences import NAN, Replica, _is_zero, _true_range


class _Directional(Replica):
    """Shared +DM/-DM/TR bookkeeping; subclasses turn the sums into their output."""

    inputs = ("high", "low", "close")
    lookback_extra: ClassVar[int] = 0

    def __init__(self, period: int) -> None:
        self.period = period
        self.count = 0
        self.prev_high = 0.0
        self.prev_low = 0.0
        self.prev_close = 0.0
        self.plus_dm = 0.0
        self.minus_dm = 0.0
        self.tr = 0.0

    def _advance(self, high: float, low: float, close: float) -> int:
        """Update the sums with one candle; return the candle's index."""
        index = self.count
        self.count += 1
        if index == 0:
            self.prev_high, self.prev_low, self.prev_close = high, low, close
            return index
        p = self.period
        diff_p = high - self.prev_high
        self.prev_high = high
        diff_m = self.prev_low - low
        self.prev_low = low
        plus = diff_p if (diff_p > 0 and diff_p > diff_m) else None
        minus = diff_m if (diff_m > 0 and diff_p < diff_m) else None
        tr = _true_range(high, low, self.prev_close)
        self.prev_close = close
        if index < p:  # seed: plain sums of the first p-1 one-period values
            if plus is not None:
                self.plus_dm += plus
            if minus is not None:
                self.minus_dm += minus
            self.tr += tr
            return index
        self.plus_dm = (self.plus_dm - self.plus_dm / p + plus if plus is not None
                        else self.plus_dm - self.plus_dm / p)
        self.minus_dm = (self.minus_dm - self.minus_dm / p + minus if minus is not None
                         else self.minus_dm - self.minus_dm / p)
        self.tr = self.tr - self.tr / p + tr
        return index


class PlusDi(_Directional):
    def step(self, *values: float) -> tuple[float, ...]:
        if self._advance(*values) < self.period:
            return (NAN,)
        return ((100.0 * (self.plus_dm / self.tr)) if not _is_zero(self.tr) else 0.0,)


class MinusDi(_Directional):
    def step(self, *values: float) -> tuple[float, ...]:
        if self._advance(*values) < self.period:
            return (NAN,)
        return ((100.0 * (self.minus_dm / self.tr)) if not _is_zero(self.tr) else 0.0,)


class Adx(_Directional):
    """TA_ADX: DX summed over the first `period` DI values, then Wilder-averaged."""

    def __init__(self, period: int) -> None:
        super().__init__(period)
        self.sum_dx = 0.0
        self.adx = 0.0

    def _dx(self) -> float | None:
        if _is_zero(self.tr):
            return None
        minus_di = 100.0 * (self.minus_dm / self.tr)
        plus_di = 100.0 * (self.plus_dm / self.tr)
        total = minus_di + plus_di
        if _is_zero(total):
            return None
        return 100.0 * (abs(minus_di - plus_di) / total)

    def step(self, *values: float) -> tuple[float, ...]:
        index = self._advance(*values)
        p = self.period
        if index < p:
            return (NAN,)
        dx = self._dx()
        if index < 2 * p - 1:
            if dx is not None:
                self.sum_dx += dx
            return (NAN,)
        if index == 2 * p - 1:
            if dx is not None:
                self.sum_dx += dx
            self.adx = self.sum_dx / p
            return (self.adx,)
        if dx is not None:
            self.adx = ((self.adx * (p - 1)) + dx) / p
        return (self.adx,)


class Sar(Replica):
    """TA_SAR: direction from the first two candles' -DM, then Wilder's stop-and-reverse."""

    inputs = ("high", "low")

    def __init__(self, acceleration: float, maximum: float) -> None:
        self.acceleration = min(acceleration, maximum)
        self.maximum = maximum
        self.count = 0
        self.is_long = True
        self.af = self.acceleration
        self.ep = 0.0
        self.sar = 0.0
        self.new_high = 0.0
        self.new_low = 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        high, low = values
        index = self.count
        self.count += 1
        if index == 0:
            self.new_high, self.new_low = high, low
            return (NAN,)
        if index == 1:
            diff_p = high - self.new_high
            diff_m = self.new_low - low
            self.is_long = not (diff_m > 0 and diff_p < diff_m)
            if self.is_long:
                self.ep, self.sar = high, self.new_low
            else:
                self.ep, self.sar = low, self.new_high
            self.new_low, self.new_high = low, high
        prev_low, prev_high = self.new_low, self.new_high
        self.new_low, self.new_high = low, high
        return (self._stop_and_reverse(prev_high, prev_low, high, low),)

    def _stop_and_reverse(self, prev_high: float, prev_low: float, high: float,
                          low: float) -> float:
        acc, maximum = self.acceleration, self.maximum
        if self.is_long:
            if low <= self.sar:
                self.is_long = False
                sar = self._cap_up(self.ep, prev_high, high)
                out = sar
                self.af = acc
                self.ep = low
                sar = sar + self.af * (self.ep - sar)
                self.sar = self._cap_up(sar, prev_high, high)
                return out
            out = self.sar
            if high > self.ep:
                self.ep = high
                self.af += acc
                if self.af > maximum:
                    self.af = maximum
            sar = self.sar + self.af * (self.ep - self.sar)
            self.sar = self._cap_down(sar, prev_low, low)
            return out
        if high >= self.sar:
            self.is_long = True
            sar = self._cap_down(self.ep, prev_low, low)
            out = sar
            self.af = acc
            self.ep = high
            sar = sar + self.af * (self.ep - sar)
            self.sar = self._cap_down(sar, prev_low, low)
            return out
        out = self.sar
        if low < self.ep:
            self.ep = low
            self.af += acc
            if self.af > maximum:
                self.af = maximum
        sar = self.sar + self.af * (self.ep - self.sar)
        self.sar = self._cap_up(sar, prev_high, high)
        return out

    @staticmethod
    def _cap_up(sar: float, prev_high: float, high: float) -> float:
        # A short's stop is never below the last two highs.
        if sar < prev_high:
            sar = prev_high
        if sar < high:
            sar = high
        return sar

    @staticmethod
    def _cap_down(sar: float, prev_low: float, low: float) -> float:
        # A long's stop is never above the last two lows.
        if sar > prev_low:
            sar = prev_low
        if sar > low:
            sar = low
        return sar
