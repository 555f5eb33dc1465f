"""The registry: every indicator sfarm knows, with its inputs, parameters, outputs and engine.

Defaults follow the charting conventions traders expect (Bollinger 20/2, Lane's stochastic
14/3/3, Lambert's CCI 20, Kaufman's KAMA 10), which differ from some TA-Lib defaults; the
arithmetic is TA-Lib's in every case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.indicators.definitions import IndicatorDef, Number, Param

if TYPE_CHECKING:
    import numpy as np

MAX_PERIOD = 100_000  # TA-Lib's own upper bound for every period
CLOSE = ("close",)
HL = ("high", "low")
HLC = ("high", "low", "close")
HLCV = ("high", "low", "close", "volume")


def _period(default: int, low: int = 2, name: str = "period", talib: str = "timeperiod",
            doc: str = "number of candles in the window") -> Param:
    return Param(name, int, default, low, MAX_PERIOD, doc, (talib,))


def _simple(name: str, title: str, inputs: tuple[str, ...], talib_name: str,
            params: tuple[Param, ...]) -> IndicatorDef:
    return IndicatorDef(name=name, title=title, inputs=inputs, params=params,
                        talib_name=talib_name)


def _macd_check(params: tuple[Number, ...]) -> str | None:
    fast, slow, _signal = params
    return None if fast < slow else f"fast ({fast}) must be less than slow ({slow})"


def _sar_check(params: tuple[Number, ...]) -> str | None:
    acceleration, maximum = params
    if acceleration > maximum:
        return f"acceleration ({acceleration}) must not exceed maximum ({maximum})"
    return None


def _session_vwap(arrays: tuple[np.ndarray, ...], _params: tuple[Number, ...]
                  ) -> tuple[np.ndarray, ...]:
    from sfarm.indicators.vwap import session_vwap  # numpy: when computing, not for the table

    return (session_vwap(*arrays),)


_DEFS: tuple[IndicatorDef, ...] = (
    _simple("sma", "Simple moving average", CLOSE, "SMA", (_period(20, 1),)),
    _simple("ema", "Exponential moving average (seeded with the SMA of the first period)",
            CLOSE, "EMA", (_period(20),)),
    _simple("wma", "Weighted moving average", CLOSE, "WMA", (_period(20, 1),)),
    _simple("dema", "Double exponential moving average", CLOSE, "DEMA", (_period(20),)),
    _simple("tema", "Triple exponential moving average", CLOSE, "TEMA", (_period(20),)),
    _simple("kama", "Kaufman adaptive moving average (fast 2, slow 30)", CLOSE, "KAMA",
            (_period(10, doc="efficiency-ratio window"),)),
    _simple("rsi", "Relative strength index (Wilder)", CLOSE, "RSI", (_period(14),)),
    IndicatorDef(
        name="macd", title="Moving average convergence/divergence: line, signal, histogram",
        inputs=CLOSE,
        params=(_period(12, 2, "fast", "fastperiod", "fast EMA period"),
                _period(26, 2, "slow", "slowperiod", "slow EMA period"),
                _period(9, 1, "signal", "signalperiod", "signal EMA period")),
        outputs=("macd", "signal", "hist"), main_output="macd", talib_name="MACD",
        check=_macd_check),
    IndicatorDef(
        name="bbands", title="Bollinger bands over an SMA: upper, middle, lower",
        inputs=CLOSE,
        params=(_period(20),
                Param("nbdev", float, 2.0, 0.0, 100.0, "band width in standard deviations",
                      ("nbdevup", "nbdevdn"))),
        outputs=("upper", "middle", "lower"), main_output=None, talib_name="BBANDS",
        fixed_talib_kwargs={"matype": 0}),
    _simple("atr", "Average true range (Wilder)", HLC, "ATR", (_period(14),)),
    _simple("natr", "Normalized average true range, percent of close", HLC, "NATR",
            (_period(14),)),
    _simple("trange", "True range", HLC, "TRANGE", ()),
    IndicatorDef(
        name="stoch", title="Slow stochastic oscillator (SMA smoothing): %K, %D",
        inputs=HLC,
        params=(_period(14, 1, "fastk", "fastk_period", "raw %K window"),
                _period(3, 1, "slowk", "slowk_period", "%K smoothing"),
                _period(3, 1, "slowd", "slowd_period", "%D smoothing")),
        outputs=("slowk", "slowd"), main_output=None, talib_name="STOCH",
        fixed_talib_kwargs={"slowk_matype": 0, "slowd_matype": 0}),
    IndicatorDef(
        name="stochrsi", title="Stochastic RSI (SMA %D): fast %K, fast %D",
        inputs=CLOSE,
        params=(_period(14, 2, "period", "timeperiod", "RSI period"),
                _period(14, 1, "fastk", "fastk_period", "stochastic window over the RSI"),
                _period(3, 1, "fastd", "fastd_period", "%D smoothing")),
        outputs=("fastk", "fastd"), main_output=None, talib_name="STOCHRSI",
        fixed_talib_kwargs={"fastd_matype": 0}),
    _simple("cci", "Commodity channel index", HLC, "CCI", (_period(20),)),
    _simple("adx", "Average directional index (Wilder)", HLC, "ADX", (_period(14),)),
    _simple("plus_di", "Plus directional indicator (Wilder)", HLC, "PLUS_DI", (_period(14),)),
    _simple("minus_di", "Minus directional indicator (Wilder)", HLC, "MINUS_DI",
            (_period(14),)),
    _simple("mfi", "Money flow index", HLCV, "MFI", (_period(14),)),
    _simple("obv", "On-balance volume", ("close", "volume"), "OBV", ()),
    _simple("roc", "Rate of change, percent", CLOSE, "ROC", (_period(10, 1),)),
    _simple("mom", "Momentum (close minus close n candles ago)", CLOSE, "MOM",
            (_period(10, 1),)),
    _simple("willr", "Williams' %R", HLC, "WILLR", (_period(14),)),
    IndicatorDef(
        name="aroon", title="Aroon: down, up", inputs=HL, params=(_period(14),),
        outputs=("down", "up"), main_output=None, talib_name="AROON"),
    IndicatorDef(
        name="sar", title="Parabolic SAR", inputs=HL,
        params=(Param("acceleration", float, 0.02, 0.0, 1.0, "acceleration factor step",
                      ("acceleration",)),
                Param("maximum", float, 0.2, 0.0, 1.0, "acceleration factor cap",
                      ("maximum",))),
        talib_name="SAR", check=_sar_check),
    IndicatorDef(
        name="vwap", title="Session VWAP: resets at 00:00 UTC; NaN until the session has volume",
        inputs=("ts", "high", "low", "close", "volume"), params=(),
        batch=_session_vwap, lookback=lambda _params: 0),
)

REGISTRY: dict[str, IndicatorDef] = {d.name: d for d in _DEFS}


def describe() -> str:
    """The registry as text for `--help` and docs: one line per indicator, spec syntax first."""
    width = max(len(d.signature()) for d in _DEFS)
    return "\n".join(f"{d.signature():<{width}}  {d.title}" for d in _DEFS)
