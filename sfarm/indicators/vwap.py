"""Session VWAP, which TA-Lib lacks: the volume-weighted typical price since 00:00 UTC.

Per candle, typical price tp = (high + low + close) / 3; within a UTC day the VWAP after candle i
is sum(tp * volume) / sum(volume) over the day's candles up to i, summed in row order. While the
session's volume so far is 0 (no trade yet today), the VWAP is undefined and is NaN: we do not make
up a price.
"""

from __future__ import annotations

import numpy as np

DAY_MS = 86_400_000


def session_day(ts: np.ndarray) -> np.ndarray:
    """UTC day number of each candle-open timestamp (ms)."""
    return np.floor_divide(ts, DAY_MS)


def typical_volume(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                   volume: np.ndarray) -> np.ndarray:
    """tp * volume per candle, with the operation order the incremental update repeats."""
    return (high + low + close) / 3.0 * volume


def session_vwap(ts: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                 volume: np.ndarray) -> np.ndarray:
    """Session VWAP for candles sorted by ts; NaN while the session's volume is still 0."""
    import polars as pl  # only when computing: the registry (and every CLI start) needs none

    if len(ts) == 0:
        return np.empty(0, dtype=np.float64)
    # A segmented running sum: summing within each day (not a global cumsum minus an offset)
    # keeps full relative precision however long the history is.
    sums = pl.DataFrame(
        {"day": session_day(ts), "pv": typical_volume(high, low, close, volume), "v": volume}
    ).select(
        pl.col("pv").cum_sum().over("day").alias("pv"),
        pl.col("v").cum_sum().over("day").alias("v"),
    )
    pv = sums["pv"].to_numpy()
    v = sums["v"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pv / v
    out[v == 0] = np.nan
    return out


class VwapReplica:
    """Session VWAP one candle at a time, with the batch's arithmetic (for incremental updates).

    Duck-types `recurrences.Replica`; `replay_start` lets a fresh state start at the last session
    instead of the first candle, since earlier sessions do not matter.
    """

    inputs = ("ts", "high", "low", "close", "volume")
    n_outputs = 1

    def __init__(self) -> None:
        self.day = -1
        self.cum_pv = 0.0
        self.cum_v = 0.0

    def step(self, *values: float) -> tuple[float, ...]:
        ts, high, low, close, volume = values
        day = int(ts) // DAY_MS
        if day != self.day:
            self.day, self.cum_pv, self.cum_v = day, 0.0, 0.0
        self.cum_pv += (high + low + close) / 3.0 * volume
        self.cum_v += volume
        return (self.cum_pv / self.cum_v if self.cum_v != 0 else np.nan,)

    @staticmethod
    def replay_start(arrays: dict[str, np.ndarray]) -> int:
        ts = arrays["ts"]
        if len(ts) == 0:
            return 0
        last_day = int(ts[-1]) // DAY_MS
        return int(np.searchsorted(ts, last_day * DAY_MS, side="left"))

    def dump(self) -> dict[str, float | int]:
        return {"day": self.day, "cum_pv": self.cum_pv, "cum_v": self.cum_v}

    def load(self, data: dict[str, float | int]) -> None:
        self.day = int(data["day"])
        self.cum_pv = float(data["cum_pv"])
        self.cum_v = float(data["cum_v"])
