"""Session VWAP, which TA-Lib lacks: the volume-weighted typical price since 00:00 UTC.

Per candle, typical price tp = (high + low + close) / 3; within a UTC day the VWAP after candle i
is sum(tp * volume) / sum(volume) over the day's candles up to i, summed in row order. While the
session's volume so far is 0 (no trade yet today), the VWAP is undefined and is NaN: we do not make
up a price.
"""

from __future__ import annotations

import numpy as np
import polars as pl

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


def continue_vwap(day: int, cum_pv: float, cum_v: float, ts: np.ndarray, high: np.ndarray,
                  low: np.ndarray, close: np.ndarray,
                  volume: np.ndarray) -> tuple[np.ndarray, int, float, float]:
    """Continue a session VWAP from the running sums of the last session seen.

    Returns the new values and the running sums after the last new candle. The loop is in
    Python on purpose: it runs over the new candles only (k small), in the batch's order.
    """
    out = np.empty(len(ts), dtype=np.float64)
    pv_all = typical_volume(high, low, close, volume)
    days = session_day(ts)
    for i in range(len(ts)):
        d = int(days[i])
        if d != day:
            day, cum_pv, cum_v = d, 0.0, 0.0
        cum_pv += float(pv_all[i])
        cum_v += float(volume[i])
        out[i] = cum_pv / cum_v if cum_v != 0 else np.nan
    return out, day, cum_pv, cum_v
