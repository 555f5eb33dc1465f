"""Deterministic synthetic candles: a seeded random walk per market, any range computed on demand.

How the walk is built (all in log price, all from counter-based seeds, so any day is computable
without generating the days before it, except for one tiny array of daily levels):

* Daily levels: a mean-reverting (Ornstein-Uhlenbeck) walk around the market's anchor price,
  one step per UTC day from `ORIGIN_MS`, so prices stay plausible for years (BTC wanders roughly
  between 30 000 and 65 000).
* Minutes: each UTC day is a Brownian bridge of 1440 steps from that day's level to the next
  day's, drawn from a generator seeded by (seed, market, day). Minute candles get wicks and a
  volume from the same generator and are rounded to the market's tick and lot.
* Every other timeframe is computed by aggregating those 1m candles (open of the first, highest
  high, lowest low, close of the last, summed volume), so timeframes always agree exactly.

Availability: candles exist from `start_ms` up to the current minute. The current minute is
returned partially formed, as Binance does: its close moves linearly from open to its final
close over the minute and its wicks and volume grow with it, so a partial candle never leaves the
range of the final one. A consumer that stores closed candles only must drop a candle whose
open + timeframe is later than now. Maintenance gaps remove the 1m candles in a time range for
good; a larger candle covering part of a gap aggregates the minutes that exist.

Values are integers in ticks (prices) and lots (volumes) of the market; see `SimMarket.price`.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sfarm.sim.markets import SimMarket
from sfarm.timeframes import DAY_MS, MINUTE_MS, candle_open, timeframe_ms

ORIGIN_MS = 1_420_070_400_000  # 2015-01-01T00:00Z: day 0 of every daily walk
DEFAULT_START_MS = 1_704_067_200_000  # 2024-01-01T00:00Z
MINUTES_PER_DAY = DAY_MS // MINUTE_MS

# OU pull towards the anchor (half-life about 35 days): the stationary spread of the log price is
# daily_vol / sqrt(2 * 0.02) = 5 daily_vol, so BTC stays roughly within 30 000..65 000.
_REVERSION_PER_DAY = 0.02
_DAILY_CHUNK = 1024  # daily shocks are drawn in chunks of this many days
_WEEK_OFFSET_MS = 4 * DAY_MS  # 1w candles open on Monday; the epoch was a Thursday
_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class Candles:
    """Columnar candles: ts is the open time in ms; prices in ticks and volume in lots (int64)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, index: slice | np.ndarray) -> Candles:
        """The candles selected by a slice or an index/boolean array."""
        return Candles(*(column[index] for column in self.columns()))

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.ts, self.open, self.high, self.low, self.close, self.volume)

    @staticmethod
    def concat(parts: Sequence[Candles]) -> Candles:
        if not parts:
            return Candles(*(_EMPTY,) * 6)
        columns = zip(*(part.columns() for part in parts), strict=True)
        return Candles(*(np.concatenate(column) for column in columns))


def _stable_hash(text: str) -> int:
    # Python's hash() is salted per process; the walk must be the same in every process.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _grid_offset(timeframe: str) -> int:
    return _WEEK_OFFSET_MS if timeframe == "1w" else 0


def aggregate(candles: Candles, step_ms: int, offset_ms: int = 0) -> Candles:
    """Aggregate sorted candles into candles of `step_ms` on the grid shifted by `offset_ms`."""
    if len(candles) == 0:
        return candles
    keys = (candles.ts - offset_ms) // step_ms * step_ms + offset_ms
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(candles)] - 1
    return Candles(
        ts=keys[starts],
        open=candles.open[starts],
        high=np.maximum.reduceat(candles.high, starts),
        low=np.minimum.reduceat(candles.low, starts),
        close=candles.close[ends],
        volume=np.add.reduceat(candles.volume, starts),
    )


def partial_minute(candle: Candles, fraction: float) -> Candles:
    """The 1m candle(s) as seen `fraction` (0..1) of the way through the minute."""
    top = np.maximum(candle.open, candle.close)
    bottom = np.minimum(candle.open, candle.close)
    close = candle.open + np.rint(fraction * (candle.close - candle.open)).astype(np.int64)
    upper_wick = np.floor(fraction * (candle.high - top)).astype(np.int64)
    lower_wick = np.floor(fraction * (bottom - candle.low)).astype(np.int64)
    return Candles(
        ts=candle.ts,
        open=candle.open,
        high=np.maximum(candle.open, close) + upper_wick,
        low=np.minimum(candle.open, close) - lower_wick,
        close=close,
        volume=np.floor(fraction * candle.volume).astype(np.int64),
    )


class CandleSource:
    """Candles of every emulated market for one seed, start and set of maintenance gaps.

    Thread-safe; caches the daily levels, recent minute blocks and daily summaries.
    """

    def __init__(
        self,
        seed: int = 0,
        start_ms: int = DEFAULT_START_MS,
        gaps: Sequence[tuple[int, int]] = (),
        *,
        minute_cache_days: int = 96,
    ) -> None:
        if start_ms < ORIGIN_MS:
            raise ValueError("the emulator's history starts on 2015-01-01")
        self.seed = int(seed)
        self.start_ms = candle_open(int(start_ms), "1m")
        self.gaps = tuple(sorted((int(a), int(b)) for a, b in gaps))
        self._lock = threading.Lock()
        self._levels: dict[str, np.ndarray] = {}
        self._minutes: OrderedDict[tuple[str, int], Candles] = OrderedDict()
        self._minute_cache_days = minute_cache_days
        self._days: dict[tuple[str, int, int], Candles] = {}
        self._intraday: OrderedDict[tuple[str, int, int], Candles] = OrderedDict()
        self._intraday_cache_entries = 1024

    # ---- the walk ------------------------------------------------------------------------------

    def _daily_levels(self, market: SimMarket, last_day: int) -> np.ndarray:
        """Log price at 00:00 UTC of days 0..last_day+1 (day 0 is ORIGIN_MS)."""
        with self._lock:
            levels = self._levels.get(market.symbol)
            if levels is not None and len(levels) > last_day + 1:
                return levels
        levels = levels if levels is not None else np.array([np.log(market.anchor_price)])
        anchor = np.log(market.anchor_price)
        values = list(levels)
        while len(values) <= last_day + 1:
            chunk = (len(values) - 1) // _DAILY_CHUNK
            rng = np.random.default_rng([self.seed, _stable_hash(market.symbol), 0, chunk])
            shocks = rng.standard_normal(_DAILY_CHUNK) * market.daily_vol
            level = values[-1]
            for shock in shocks[(len(values) - 1) % _DAILY_CHUNK:]:
                level = level + _REVERSION_PER_DAY * (anchor - level) + float(shock)
                values.append(level)
        result = np.array(values)
        with self._lock:
            self._levels[market.symbol] = result
        return result

    def _generate_day(self, market: SimMarket, day: int) -> Candles:
        levels = self._daily_levels(market, day)
        rng = np.random.default_rng([self.seed, _stable_hash(market.symbol), 1, day])
        # a calm or busy day: the day's minute volatility varies around daily_vol / sqrt(1440)
        day_vol = market.daily_vol * np.exp(0.25 * rng.standard_normal())
        step_vol = day_vol / np.sqrt(MINUTES_PER_DAY)
        walk = np.cumsum(rng.standard_normal(MINUTES_PER_DAY) * step_vol)
        k = np.arange(1, MINUTES_PER_DAY + 1) / MINUTES_PER_DAY
        log_price = np.empty(MINUTES_PER_DAY + 1)
        log_price[0] = levels[day]
        log_price[1:] = levels[day] + k * (levels[day + 1] - levels[day]) + walk - k * walk[-1]
        log_price[-1] = levels[day + 1]  # exact, so the next day opens where this one closes
        price = np.exp(log_price)
        wick_up = np.exp(np.abs(rng.standard_normal(MINUTES_PER_DAY)) * step_vol * 0.6)
        wick_down = np.exp(-np.abs(rng.standard_normal(MINUTES_PER_DAY)) * step_vol * 0.6)
        activity = 0.4 + 0.6 * np.abs(np.diff(log_price)) / step_vol
        volume = market.minute_volume * np.exp(0.6 * rng.standard_normal(MINUTES_PER_DAY) - 0.18)
        per_tick = 10.0 ** market.price_decimals
        ticks = np.maximum(np.rint(price * per_tick).astype(np.int64), 1)
        open_, close = ticks[:-1], ticks[1:]
        high = np.rint(np.maximum(price[:-1], price[1:]) * wick_up * per_tick).astype(np.int64)
        low = np.rint(np.minimum(price[:-1], price[1:]) * wick_down * per_tick).astype(np.int64)
        return Candles(
            ts=ORIGIN_MS + day * DAY_MS + np.arange(MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS,
            open=open_,
            high=np.maximum(high, np.maximum(open_, close)),
            low=np.maximum(np.minimum(low, np.minimum(open_, close)), 1),
            close=close,
            volume=np.rint(volume * activity * 10.0 ** market.amount_decimals).astype(np.int64),
        )

    def _day_minutes(self, market: SimMarket, day: int) -> Candles:
        """All 1440 generated minutes of a day, gaps and availability not applied."""
        key = (market.symbol, day)
        with self._lock:
            block = self._minutes.get(key)
            if block is not None:
                self._minutes.move_to_end(key)
                return block
        block = self._generate_day(market, day)
        with self._lock:
            self._minutes[key] = block
            while len(self._minutes) > self._minute_cache_days:
                self._minutes.popitem(last=False)
        return block

    # ---- availability --------------------------------------------------------------------------

    def _available(self, ts: np.ndarray, now_ms: int) -> np.ndarray:
        keep = (ts >= self.start_ms) & (ts <= now_ms)
        for first, end in self.gaps:
            keep &= (ts < first) | (ts >= end)
        return keep

    def minutes(self, market: SimMarket, first_ms: int, end_ms: int, now_ms: int) -> Candles:
        """Available 1m candles with open in [first_ms, end_ms); the current one partial."""
        first_ms = max(candle_open(first_ms, "1m"), self.start_ms)
        end_ms = min(end_ms, candle_open(now_ms, "1m") + MINUTE_MS)
        if end_ms <= first_ms:
            return Candles.concat([])
        first_day = (first_ms - ORIGIN_MS) // DAY_MS
        last_day = (end_ms - 1 - ORIGIN_MS) // DAY_MS
        parts = []
        for day in range(first_day, last_day + 1):
            block = self._day_minutes(market, day)
            lo = max(0, (first_ms - int(block.ts[0])) // MINUTE_MS)
            hi = min(MINUTES_PER_DAY, (end_ms - int(block.ts[0]) + MINUTE_MS - 1) // MINUTE_MS)
            parts.append(block.take(slice(lo, hi)))
        minutes = Candles.concat(parts)
        minutes = minutes.take(self._available(minutes.ts, now_ms))
        if len(minutes) and minutes.ts[-1] + MINUTE_MS > now_ms:
            fraction = (now_ms - int(minutes.ts[-1])) / MINUTE_MS
            current = partial_minute(minutes.take(slice(-1, None)), fraction)
            minutes = Candles.concat([minutes.take(slice(0, -1)), current])
        return minutes

    def _day_aggregate(self, market: SimMarket, day: int, step: int, now_ms: int) -> Candles:
        """Candles of `step` (a divisor of a day) inside `day`; cached once the day is over."""
        day_open = ORIGIN_MS + day * DAY_MS
        complete = day_open + DAY_MS <= now_ms
        key = (market.symbol, day, step)
        cache = self._days if step == DAY_MS else self._intraday
        if complete:
            with self._lock:
                cached = cache.get(key)
            if cached is not None:
                return cached
        result = aggregate(self.minutes(market, day_open, day_open + DAY_MS, now_ms), step)
        if complete:
            with self._lock:
                cache[key] = result
                if step != DAY_MS:  # daily rows are tiny; intraday ones are bounded (LRU)
                    self._intraday.move_to_end(key)
                    while len(self._intraday) > self._intraday_cache_entries:
                        self._intraday.popitem(last=False)
        return result

    # ---- the public question -------------------------------------------------------------------

    def window(
        self, market: SimMarket, timeframe: str, first_open: int, last_open: int, now_ms: int
    ) -> Candles:
        """Candles of `timeframe` with open time in [first_open, last_open] (grid-aligned)."""
        step = timeframe_ms(timeframe)
        if last_open < first_open:
            return Candles.concat([])
        if step == MINUTE_MS:
            return self.minutes(market, first_open, last_open + step, now_ms)
        first_day = max((first_open - ORIGIN_MS) // DAY_MS, (self.start_ms - ORIGIN_MS) // DAY_MS)
        last_day = min((last_open + step - 1 - ORIGIN_MS) // DAY_MS, (now_ms - ORIGIN_MS) // DAY_MS)
        per_day = min(step, DAY_MS)
        days = Candles.concat([self._day_aggregate(market, day, per_day, now_ms)
                               for day in range(first_day, last_day + 1)])
        if step >= DAY_MS:
            return aggregate(days, step, _grid_offset(timeframe))
        return days.take((days.ts >= first_open) & (days.ts <= last_open))

    def candles(
        self,
        market: SimMarket,
        timeframe: str,
        *,
        now_ms: int,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 500,
    ) -> Candles:
        """Binance's klines selection: open time in [since, until], at most `limit` rows.

        With `since` the first `limit` candles from it; otherwise the last `limit` up to `until`
        (default now), the still-open candle included.
        """
        step = timeframe_ms(timeframe)
        first_possible = candle_open(self.start_ms, timeframe)
        last_possible = candle_open(min(now_ms, until_ms if until_ms is not None else now_ms),
                                    timeframe)
        if since_ms is not None:
            first = candle_open(since_ms, timeframe)
            first = max(first if first == since_ms else first + step, first_possible)
            return self._scan_forward(market, timeframe, first, last_possible, now_ms, limit)
        return self._scan_backward(market, timeframe, first_possible, last_possible, now_ms, limit)

    def _scan_forward(
        self, market: SimMarket, timeframe: str, first: int, last: int, now_ms: int, limit: int
    ) -> Candles:
        # Gaps can leave a window short although candles exist after it: keep scanning.
        step = timeframe_ms(timeframe)
        parts: list[Candles] = []
        count = 0
        while first <= last and count < limit:
            window_last = min(last, first + (limit - count - 1) * step)
            part = self.window(market, timeframe, first, window_last, now_ms)
            parts.append(part)
            count += len(part)
            first = window_last + step
        return Candles.concat(parts)

    def _scan_backward(
        self, market: SimMarket, timeframe: str, first: int, last: int, now_ms: int, limit: int
    ) -> Candles:
        step = timeframe_ms(timeframe)
        parts: list[Candles] = []
        count = 0
        while last >= first and count < limit:
            window_first = max(first, last - (limit - count - 1) * step)
            part = self.window(market, timeframe, window_first, last, now_ms)
            parts.insert(0, part)
            count += len(part)
            last = window_first - step
        result = Candles.concat(parts)
        return result.take(slice(max(0, len(result) - limit), None))

    def last_price(self, market: SimMarket, now_ms: int) -> int:
        """The current price in ticks: the close of the (partial) current minute."""
        minute = candle_open(now_ms, "1m")
        minutes = self.minutes(market, minute - 10 * MINUTE_MS, minute + MINUTE_MS, now_ms)
        if len(minutes):
            return int(minutes.close[-1])
        # Inside a maintenance gap (or before start): the walk's price still exists.
        block = self._day_minutes(market, (minute - ORIGIN_MS) // DAY_MS)
        return int(block.open[(minute - int(block.ts[0])) // MINUTE_MS])
