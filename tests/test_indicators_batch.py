"""Batch computation (sfarm.indicators.compute) agrees with TA-Lib called directly.

The expected values come from TA-Lib functions called here with explicit keyword arguments, not
through sfarm's registry, so a wrong input order, parameter mapping or output column is caught.
VWAP (sfarm's own) is checked against a plain loop over calendar days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import talib

from sfarm.indicators import REGISTRY, compute, parse_spec
from tests.fixtures.series import random_walk, real_series

Arrays = dict[str, np.ndarray]

# spec -> TA-Lib call on the raw arrays, outputs in the spec's column order.
EXPECTED: dict[str, Callable[[Arrays], list[np.ndarray]]] = {
    "sma(20)": lambda a: [talib.SMA(a["close"], timeperiod=20)],
    "ema(20)": lambda a: [talib.EMA(a["close"], timeperiod=20)],
    "wma(9)": lambda a: [talib.WMA(a["close"], timeperiod=9)],
    "dema(10)": lambda a: [talib.DEMA(a["close"], timeperiod=10)],
    "tema(8)": lambda a: [talib.TEMA(a["close"], timeperiod=8)],
    "kama(10)": lambda a: [talib.KAMA(a["close"], timeperiod=10)],
    "rsi(14)": lambda a: [talib.RSI(a["close"], timeperiod=14)],
    "macd(12,26,9)": lambda a: list(talib.MACD(a["close"], fastperiod=12, slowperiod=26,
                                               signalperiod=9)),
    "bbands(20,2)": lambda a: list(talib.BBANDS(a["close"], timeperiod=20, nbdevup=2.0,
                                                nbdevdn=2.0, matype=0)),
    "bbands(10,1.5)": lambda a: list(talib.BBANDS(a["close"], timeperiod=10, nbdevup=1.5,
                                                  nbdevdn=1.5, matype=0)),
    "atr(14)": lambda a: [talib.ATR(a["high"], a["low"], a["close"], timeperiod=14)],
    "natr(14)": lambda a: [talib.NATR(a["high"], a["low"], a["close"], timeperiod=14)],
    "trange": lambda a: [talib.TRANGE(a["high"], a["low"], a["close"])],
    "stoch(14,3,3)": lambda a: list(talib.STOCH(a["high"], a["low"], a["close"],
                                                fastk_period=14, slowk_period=3, slowk_matype=0,
                                                slowd_period=3, slowd_matype=0)),
    "stochrsi(14,14,3)": lambda a: list(talib.STOCHRSI(a["close"], timeperiod=14,
                                                       fastk_period=14, fastd_period=3,
                                                       fastd_matype=0)),
    "cci(20)": lambda a: [talib.CCI(a["high"], a["low"], a["close"], timeperiod=20)],
    "adx(14)": lambda a: [talib.ADX(a["high"], a["low"], a["close"], timeperiod=14)],
    "plus_di(14)": lambda a: [talib.PLUS_DI(a["high"], a["low"], a["close"], timeperiod=14)],
    "minus_di(14)": lambda a: [talib.MINUS_DI(a["high"], a["low"], a["close"], timeperiod=14)],
    "mfi(14)": lambda a: [talib.MFI(a["high"], a["low"], a["close"], a["volume"],
                                    timeperiod=14)],
    "obv": lambda a: [talib.OBV(a["close"], a["volume"])],
    "roc(10)": lambda a: [talib.ROC(a["close"], timeperiod=10)],
    "mom(10)": lambda a: [talib.MOM(a["close"], timeperiod=10)],
    "willr(14)": lambda a: [talib.WILLR(a["high"], a["low"], a["close"], timeperiod=14)],
    "aroon(14)": lambda a: list(talib.AROON(a["high"], a["low"], timeperiod=14)),
    "sar(0.02,0.2)": lambda a: [talib.SAR(a["high"], a["low"], acceleration=0.02,
                                          maximum=0.2)],
}


def arrays_of(frame: pl.DataFrame) -> Arrays:
    return {c: frame[c].to_numpy().astype(np.float64) for c in ("high", "low", "close", "volume")}


def assert_same(got: np.ndarray, want: np.ndarray, label: str) -> None:
    """NaN exactly where TA-Lib has NaN; 1e-9 relative elsewhere (batch is in fact bit-equal)."""
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{label}: NaN positions differ"
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-9, atol=0, err_msg=label)


FRAMES = {
    **{f"walk{n}": (lambda n=n: random_walk(n, seed=n)) for n in (0, 1, 5, 13, 33, 300, 2500)},
    "flat": lambda: random_walk(1200, seed=7, flat=True),
    "gaps": lambda: random_walk(1200, seed=8, gaps=True),
    "flat_gaps": lambda: random_walk(900, seed=9, flat=True, gaps=True),
    "BTCUSD": lambda: real_series("BTCUSD"),
    "GOOG": lambda: real_series("GOOG"),
    "EURUSD": lambda: real_series("EURUSD"),
}


@pytest.mark.parametrize("frame_name", list(FRAMES))
def test_every_indicator_matches_talib(frame_name: str) -> None:
    frame = FRAMES[frame_name]()
    out = compute(frame, list(EXPECTED))
    arrays = arrays_of(frame)
    for text, expected in EXPECTED.items():
        spec = parse_spec(text)
        for column, want in zip(spec.columns, expected(arrays), strict=True):
            assert out[column].dtype == pl.Float64
            assert out[column].null_count() == 0  # NaN, never null
            assert_same(out[column].to_numpy(), want, f"{frame_name} {column}")
        if len(frame) > spec.warmup:
            assert not np.isnan(out[spec.columns[0]].to_numpy()[spec.warmup])


def test_expected_table_covers_the_registry() -> None:
    covered = {parse_spec(text).name for text in EXPECTED} | {"vwap"}
    assert covered == set(REGISTRY)


def test_compute_keeps_the_frame_and_adds_columns_in_order() -> None:
    frame = random_walk(200, seed=1)
    out = compute(frame, ["macd", "rsi"])
    assert out.columns == [*frame.columns, "macd_12_26_9", "macd_signal_12_26_9",
                           "macd_hist_12_26_9", "rsi_14"]
    assert out.select(frame.columns).equals(frame)
    assert compute(frame, []).equals(frame)


def test_integer_and_null_inputs_are_converted() -> None:
    frame = random_walk(100, seed=2).with_columns(
        (pl.col("volume") * 100).cast(pl.Int64).alias("volume"))
    out = compute(frame, ["obv", "sma(5)"])
    want = talib.OBV(frame["close"].to_numpy(), frame["volume"].cast(pl.Float64).to_numpy())
    assert_same(out["obv"].to_numpy(), want, "obv on int volume")
    holed = frame.with_columns(pl.when(pl.int_range(pl.len()) == 50).then(None)
                               .otherwise(pl.col("close")).alias("close"))
    sma = compute(holed, ["sma(5)"])["sma_5"].to_numpy()
    assert np.isnan(sma[50:55]).all()  # a null input is a missing value, as NaN is for TA-Lib


def test_missing_input_column_is_a_clear_error() -> None:
    frame = random_walk(50, seed=3).drop("volume")
    with pytest.raises(ValueError, match="volume"):
        compute(frame, ["obv"])


def _vwap_loop(frame: pl.DataFrame) -> list[float]:
    """Session VWAP the plain way: restart the sums whenever the UTC date changes."""
    values: list[float] = []
    day = None
    pv = vol = 0.0
    for row in frame.iter_rows(named=True):
        date = dt.datetime.fromtimestamp(row["ts"] / 1000, tz=dt.UTC).date()
        if date != day:
            day, pv, vol = date, 0.0, 0.0
        typical = (row["high"] + row["low"] + row["close"]) / 3
        pv += typical * row["volume"]
        vol += row["volume"]
        values.append(pv / vol if vol > 0 else float("nan"))
    return values


@pytest.mark.parametrize("frame_name", ["walk300", "gaps", "flat_gaps", "EURUSD", "GOOG"])
def test_vwap_matches_a_plain_loop(frame_name: str) -> None:
    frame = FRAMES[frame_name]()
    got = compute(frame, ["vwap"])["vwap"].to_numpy()
    assert_same(got, np.array(_vwap_loop(frame), dtype=np.float64), f"vwap {frame_name}")


def test_vwap_resets_at_utc_midnight_and_is_nan_before_volume() -> None:
    hour = 3_600_000
    start = 1_700_006_400_000  # 2023-11-15 00:00 UTC
    ts = start - 2 * hour + np.arange(5, dtype=np.int64) * hour  # 22:00, 23:00, 00:00, ...
    frame = pl.DataFrame({"ts": ts, "high": [2.0, 4, 6, 8, 10], "low": [2.0, 4, 6, 8, 10],
                          "close": [2.0, 4, 6, 8, 10], "volume": [1.0, 1, 0, 3, 1]})
    got = compute(frame, ["vwap"])["vwap"].to_numpy()
    np.testing.assert_allclose(got[:2], [2.0, 3.0])
    assert np.isnan(got[2])  # new session, no volume yet
    np.testing.assert_allclose(got[3:], [8.0, (24 + 10) / 4])
