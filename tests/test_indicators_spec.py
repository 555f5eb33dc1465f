"""The spec language, the registry and column naming (sfarm.indicators.spec / registry)."""

from __future__ import annotations

import pytest

from sfarm.errors import UsageError
from sfarm.indicators import REGISTRY, IndicatorSpec, IndicatorSpecError, describe, parse_spec


@pytest.mark.parametrize(
    ("text", "name", "params", "key"),
    [
        ("rsi(14)", "rsi", (14,), "rsi_14"),
        ("rsi", "rsi", (14,), "rsi_14"),
        ("rsi()", "rsi", (14,), "rsi_14"),
        ("  RSI ( 7 ) ", "rsi", (7,), "rsi_7"),
        ("macd(12,26,9)", "macd", (12, 26, 9), "macd_12_26_9"),
        ("macd(8)", "macd", (8, 26, 9), "macd_8_26_9"),
        ("bbands(20,2)", "bbands", (20, 2.0), "bbands_20_2"),
        ("bbands(20, 2.5)", "bbands", (20, 2.5), "bbands_20_2p5"),
        ("bbands(nbdev=1.5)", "bbands", (20, 1.5), "bbands_20_1p5"),
        ("bbands(10, nbdev=3)", "bbands", (10, 3.0), "bbands_10_3"),
        ("sar", "sar", (0.02, 0.2), "sar_0p02_0p2"),
        ("sar(0.00001, 0.1)", "sar", (0.00001, 0.1), "sar_0p00001_0p1"),
        ("rsi(14.0)", "rsi", (14,), "rsi_14"),
        ("obv", "obv", (), "obv"),
        ("vwap()", "vwap", (), "vwap"),
        ("plus_di(10)", "plus_di", (10,), "plus_di_10"),
    ],
)
def test_parse_fills_defaults_types_and_key(text: str, name: str, params: tuple, key: str) -> None:
    spec = parse_spec(text)
    assert (spec.name, spec.params, spec.key) == (name, params, key)
    assert [type(p) for p in spec.params] == [p.kind for p in REGISTRY[name].params]
    assert parse_spec(spec.text) == spec  # the canonical text round-trips
    assert parse_spec(spec) is spec


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("macd(12,26,9)", ("macd_12_26_9", "macd_signal_12_26_9", "macd_hist_12_26_9")),
        ("bbands(20,2)", ("bbands_upper_20_2", "bbands_middle_20_2", "bbands_lower_20_2")),
        ("stoch(14,3,3)", ("stoch_slowk_14_3_3", "stoch_slowd_14_3_3")),
        ("stochrsi(14,14,3)", ("stochrsi_fastk_14_14_3", "stochrsi_fastd_14_14_3")),
        ("aroon(14)", ("aroon_down_14", "aroon_up_14")),
        ("rsi(14)", ("rsi_14",)),
        ("sma(20)", ("sma_20",)),
        ("atr(14)", ("atr_14",)),
        ("trange", ("trange",)),
    ],
)
def test_column_names(text: str, columns: tuple[str, ...]) -> None:
    assert parse_spec(text).columns == columns


@pytest.mark.parametrize(
    ("text", "inputs", "warmup"),
    [
        ("rsi(14)", ("close",), 14),
        ("sma(20)", ("close",), 19),
        ("macd(12,26,9)", ("close",), 33),
        ("atr(14)", ("high", "low", "close"), 14),
        ("mfi(14)", ("high", "low", "close", "volume"), 14),
        ("obv", ("close", "volume"), 0),
        ("sar", ("high", "low"), 1),
        ("vwap", ("ts", "high", "low", "close", "volume"), 0),
    ],
)
def test_inputs_and_warmup(text: str, inputs: tuple[str, ...], warmup: int) -> None:
    spec = parse_spec(text)
    assert spec.inputs == inputs
    assert spec.warmup == warmup


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("rsy(14)", ["unknown indicator 'rsy'", "did you mean 'rsi'"]),
        ("bband(20,2)", ["did you mean 'bbands'"]),
        ("zzzz", ["unknown indicator 'zzzz'"]),
        ("rsi(14, 3)", ["at most 1 argument", "got 2", "rsi(period=14)"]),
        ("obv(3)", ["takes no arguments"]),
        ("rsi(1)", ["period", "between 2 and 100000", "got 1"]),
        ("sma(100001)", ["period", "between 1 and 100000"]),
        ("bbands(20,-1)", ["nbdev", "between 0 and 100", "got -1"]),
        ("rsi(abc)", ["period must be a number", "'abc'"]),
        ("rsi(14.5)", ["whole number"]),
        ("rsi(inf)", ["finite"]),
        ("macd(26,12)", ["fast (26) must be less than slow (12)"]),
        ("sar(0.5,0.2)", ["acceleration", "maximum"]),
        ("bbands(nbdevv=2)", ["no parameter 'nbdevv'", "did you mean 'nbdev'"]),
        ("bbands(nbdev=2, 20)", ["positional argument after a keyword"]),
        ("rsi(14", ["bad indicator spec"]),
        ("", ["bad indicator spec"]),
    ],
)
def test_errors_are_user_ready(text: str, fragments: list[str]) -> None:
    with pytest.raises(IndicatorSpecError) as caught:
        parse_spec(text)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, UsageError)  # the CLI renders it with exit status 2


def test_every_indicator_parses_with_defaults_and_is_described() -> None:
    text = describe()
    for name, definition in REGISTRY.items():
        spec = parse_spec(name)
        assert isinstance(spec, IndicatorSpec)
        assert len(spec.columns) == len(definition.outputs)
        assert len(set(spec.columns)) == len(spec.columns)
        assert spec.warmup >= 0
        assert definition.signature() in text
    required = {"sma", "ema", "wma", "dema", "tema", "kama", "rsi", "macd", "bbands", "atr",
                "natr", "trange", "stoch", "stochrsi", "cci", "adx", "plus_di", "minus_di",
                "mfi", "obv", "roc", "mom", "willr", "aroon", "sar", "vwap"}
    assert required <= set(REGISTRY)


def test_keys_are_path_safe() -> None:
    for name in REGISTRY:
        for text in (name, f"{name}()"):
            key = parse_spec(text).key
            assert all(ch.isalnum() or ch == "_" for ch in key), key
