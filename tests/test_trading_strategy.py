"""Strategy files: the model, expression errors with file:line, columns, class strategies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm.errors import UsageError
from sfarm.trading.signals import compute_signals
from sfarm.trading.strategy import load_strategy, parse_strategy

DATA = Path(__file__).parent / "data" / "strategies"
TEMPLATE = Path(__file__).parent.parent / "templates" / "strategy.toml"

RSI = """\
[strategy]
name = "rsi-revert"
indicators = ["rsi(14)", "sma(200)"]
entry_long = "rsi_14 < 30 AND close > sma_200"
exit_long = "rsi_14 > 55"
stop_loss = 0.03
take_profit = 0.06
trailing_stop = 0.02
size = 1.0
fee = 0.001
slippage = 0.0005
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strategy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        load_strategy(write(tmp_path, text))
    return caught.value


def test_spec_example_loads(tmp_path: Path) -> None:
    strategy = load_strategy(write(tmp_path, RSI))
    assert strategy.name == "rsi-revert"
    assert strategy.indicators == ["rsi(14)", "sma(200)"]
    assert strategy.required_columns() == {"rsi_14", "close", "sma_200"}
    assert strategy.available_columns() >= {"ts", "open", "high", "low", "close", "volume",
                                             "rsi_14", "sma_200"}
    assert (strategy.stop_loss, strategy.take_profit, strategy.trailing_stop) == (0.03, 0.06, 0.02)
    assert strategy.size_fraction == 1.0 and not strategy.allows_short


def test_template_is_a_valid_strategy() -> None:
    strategy = load_strategy(TEMPLATE)
    assert strategy.entry_long and strategy.indicators


def test_bad_expression_syntax_names_file_line_key_and_expression(tmp_path: Path) -> None:
    error = error_of(tmp_path, RSI.replace('"rsi_14 > 55"', '"rsi_14 > > 55"'))
    assert error.message.startswith(f"{tmp_path / 'strategy.toml'}:5: strategy.exit_long:")
    assert "'rsi_14 > > 55'" in error.message


def test_unknown_column_suggests_the_closest(tmp_path: Path) -> None:
    error = error_of(tmp_path, RSI.replace('"rsi_14 > 55"', '"rsi_41 > 55"'))
    assert ":5: strategy.exit_long: unknown column 'rsi_41'" in error.message
    assert "did you mean 'rsi_14'?" in error.message
    assert "'rsi_41 > 55'" in error.message
    assert "sma_200" in (error.hint or "")


def test_check_columns_against_what_a_root_holds(tmp_path: Path) -> None:
    strategy = load_strategy(write(tmp_path, RSI))
    strategy.check_columns({"ts", "close", "rsi_14", "sma_200"})
    with pytest.raises(UsageError, match=r"unknown column 'sma_200'.*did you mean 'sma_20'"):
        strategy.check_columns({"ts", "close", "rsi_14", "sma_20"})


def test_condition_that_is_not_boolean(tmp_path: Path) -> None:
    error = error_of(tmp_path, RSI.replace('"rsi_14 > 55"', '"rsi_14 + 55"'))
    assert "strategy.exit_long" in error.message and "true/false" in error.message


@pytest.mark.parametrize("replace, expected", [
    (("stop_loss = 0.03", "stop_loss = 1.5"), (":6: strategy.stop_loss: expected less than 1 "
                                              "(got 1.5)")),
    (("size = 1.0", "size = 0"), ":9: strategy.size: expected greater than 0 (got 0)"),
    (('name = "rsi-revert"', 'name = ""'),
     ":2: strategy.name: expected at least 1 character (got '')"),
    (("fee = 0.001", "fee = true"), ":10: strategy.fee: expected a valid number (got true)"),
    (("slippage = 0.0005", "slippage = -0.1"), ":11: strategy.slippage:"),
    (("fee = 0.001", "fees = 0.001"), ":10: strategy.fees: unknown key; did you mean 'fee'?"),
    (("size = 1.0", "size = 1.0\nsize_quote = 100.0"), "size_quote"),
    (('indicators = ["rsi(14)", "sma(200)"]', 'indicators = ["rsi(14)", "smaa(200)"]'),
     ":3: strategy.indicators: unknown indicator 'smaa'"),
    (('name = "rsi-revert"\n', ""), "strategy.name: required key is missing"),
])
def test_bad_values_name_line_and_key(tmp_path: Path, replace: tuple[str, str],
                                      expected: str) -> None:
    error = error_of(tmp_path, RSI.replace(*replace))
    assert expected in error.message


def test_toml_syntax_error_has_the_line(tmp_path: Path) -> None:
    error = error_of(tmp_path, RSI.replace('fee = 0.001', 'fee = = 0.001'))
    assert error.message.startswith(f"{tmp_path / 'strategy.toml'}:10: invalid TOML")


def test_needs_an_entry_and_not_both_class_and_expressions(tmp_path: Path) -> None:
    assert "entry_long or entry_short" in error_of(
        tmp_path, '[strategy]\nname = "x"\nexit_long = "close > 1"\n').message
    text = '[strategy]\nname = "x"\nclass = "m:C"\nentry_long = "close > 1"\n'
    assert "either class or expressions" in error_of(tmp_path, text).message


def test_short_allowed_only_with_entry_short() -> None:
    text = '[strategy]\nname = "x"\nentry_short = "close < open"\nexit_short = "close > open"\n'
    assert parse_strategy(text).allows_short


def test_nan_warmup_is_no_signal() -> None:
    # Polars orders NaN above every number: NaN > 1 must not become an entry.
    strategy = parse_strategy('[strategy]\nname = "x"\nindicators = ["sma(3)"]\n'
                              'entry_long = "sma_3 > 1"\n')
    frame = pl.DataFrame({"ts": [1, 2, 3], "open": [2.0] * 3, "high": [2.0] * 3,
                          "low": [2.0] * 3, "close": [2.0] * 3, "volume": [1.0] * 3,
                          "sma_3": [float("nan"), float("nan"), 2.0]})
    assert compute_signals(frame, strategy)["entry_long"].to_list() == [False, False, True]


@pytest.mark.parametrize(("entry", "exit_", "expected"), [
    ("TRUE", None, [True] * 3),
    ("1 < 2", "FALSE", [True] * 3),
    ("NOT TRUE", "close > 1", [False] * 3),
])
def test_a_condition_that_reads_no_column_holds_on_every_candle(
        entry: str, exit_: str | None, expected: list[bool]) -> None:
    # Was one row, not one per candle: the backtest crashed building the signals (ShapeError).
    exit_line = f'exit_long = "{exit_}"\n' if exit_ else ""
    strategy = parse_strategy(f'[strategy]\nname = "x"\nentry_long = "{entry}"\n{exit_line}')
    frame = pl.DataFrame({"ts": [1, 2, 3], "open": [2.0] * 3, "high": [2.0] * 3,
                          "low": [2.0] * 3, "close": [2.0] * 3, "volume": [1.0] * 3})
    signals = compute_signals(frame, strategy)
    assert signals.height == 3 and signals["entry_long"].to_list() == expected


def test_class_strategy_from_a_module_beside_the_file() -> None:
    strategy = load_strategy(DATA / "breakout.toml")
    assert strategy.class_path == "breakout:Breakout"
    assert "sma(5)" in strategy.all_indicators()
    frame = pl.DataFrame({"ts": [1, 2, 3, 4], "open": [1.0, 2, 3, 2], "high": [1.0, 2, 3, 2],
                          "low": [1.0, 2, 3, 2], "close": [1.0, 2, 3, 2], "volume": [1.0] * 4,
                          "sma_5": [float("nan")] * 4})
    signals = compute_signals(frame, strategy)
    assert signals["entry_long"].to_list() == [False, True, True, False]
    assert signals["exit_long"].to_list() == [False, False, False, True]
    assert signals["entry_short"].to_list() == [False] * 4


def test_class_whose_module_cannot_be_found(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[strategy]\nname = "x"\nclass = "nowhere_xyz:Thing"\n')
    assert ":3: strategy.class: cannot find module 'nowhere_xyz'" in error.message


@pytest.mark.parametrize(("condition", "why"), [
    ("LEAD(close) OVER (ORDER BY ts) > close", "function LEAD is not part of conditions"),
    ("LAG(close) OVER (ORDER BY ts DESC) > close", "found 'DESC' at column 30"),
    ("close > AVG(close)", "function AVG is not part of conditions"),
    ("high >= MAX(high)", "function MAX is not part of conditions"),
])
def test_conditions_that_would_read_later_candles_are_not_conditions(
        tmp_path: Path, condition: str, why: str) -> None:
    error = error_of(tmp_path, RSI.replace('"rsi_14 > 55"', f'"{condition}"'))
    assert ":5: strategy.exit_long:" in error.message
    assert "is not a condition: " in error.message and why in error.message
    assert error.hint is not None and "LAG(col[, n]) OVER (ORDER BY ts)" in error.hint


@pytest.mark.parametrize("condition", [
    "close IN (SELECT c FROM read_csv('{path}'))",
    "close > (SELECT MAX(c) FROM read_csv('{path}'))",
    "close > 0 OR EXISTS (SELECT * FROM read_csv('{path}'))",
])
def test_conditions_cannot_read_files(tmp_path: Path, condition: str) -> None:
    """polars' SQL parser runs table functions while it compiles: before the condition
    language, the first line of the file came back in the error message."""
    secret = tmp_path / "secret.csv"
    secret.write_text("c\nthe-secret-first-line\n")
    text = condition.format(path=secret)
    error = error_of(tmp_path, RSI.replace('"rsi_14 > 55"', f'"{text}"'))
    assert "is not a condition" in error.message
    assert "the-secret-first-line" not in error.message + (error.hint or "")


def test_lag_rewrite_matches_the_polars_window() -> None:
    from sfarm.trading.expressions import compile_expression, evaluate

    rng = np.random.default_rng(5)
    frame = pl.DataFrame({"ts": np.arange(200, dtype=np.int64), "close": rng.random(200),
                          "open": rng.random(200)})
    frame = frame.with_columns(pl.when(pl.col("ts") % 17 == 3).then(float("nan"))
                               .otherwise(pl.col("close")).alias("close"))
    text = ("close > LAG(close) OVER (ORDER BY ts) AND lag( open , 3 ) over (order by ts asc) "
            "< open")
    compiled = compile_expression(text)
    assert {lag.periods for lag in compiled.lags} == {1, 3}
    assert compiled.columns == {"close", "open"}
    ours = evaluate({"x": compiled}, frame)["x"]
    window = frame.with_columns(pl.col("close").fill_nan(None)).select(
        pl.sql_expr(text).fill_null(False).alias("x"))["x"]
    assert ours.equals(window) and ours.sum() > 10


def test_conditions_checked_together_still_name_the_one_at_fault(tmp_path: Path) -> None:
    # All conditions are probed in one evaluation; the error still names the key and its line.
    text = RSI.replace('exit_long = "rsi_14 > 55"\n',
                       'exit_long = "rsi_14 > 55"\nentry_short = "rsi_14 > 70"\n'
                       'exit_short = "rsi_14 + 1"\n')
    error = error_of(tmp_path, text)
    assert ":7: strategy.exit_short:" in error.message and "true/false" in error.message


SIDE_EFFECT_MODULE = """\
from pathlib import Path

import polars as pl

Path(__file__).with_name("imported").write_text("the module ran")


class Rising:
    indicators = ["sma(5)", "rsi(14)"]

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(entry_long=pl.col("close") > pl.col("sma_5"))
"""


def test_a_class_strategy_runs_only_when_a_task_uses_it(tmp_path: Path) -> None:
    """Loading (and so validating an inventory) finds the module without importing it: a
    class strategy is trusted code, run by what trades or backtests with it."""
    (tmp_path / "rising.py").write_text(SIDE_EFFECT_MODULE)
    strategy = load_strategy(write(tmp_path, '[strategy]\nname = "r"\nclass = "rising:Rising"\n'
                                             'indicators = ["sma(5)", "rsi(14)"]\n'))
    assert strategy.all_indicators() == ["sma(5)", "rsi(14)"]
    assert strategy.module_file() == tmp_path / "rising.py"
    assert not (tmp_path / "imported").exists()
    assert strategy.load_class().__name__ == "Rising"
    assert (tmp_path / "imported").exists()


def test_a_class_must_declare_in_its_file_the_indicators_it_reads(tmp_path: Path) -> None:
    (tmp_path / "rising.py").write_text(SIDE_EFFECT_MODULE)
    strategy = load_strategy(write(tmp_path, '[strategy]\nname = "r"\nclass = "rising:Rising"\n'
                                             'indicators = ["sma(5)"]\n'))
    with pytest.raises(UsageError) as caught:
        strategy.load_class()
    assert "strategy.indicators: rising:Rising reads ['rsi(14)']" in caught.value.message
    assert caught.value.hint == "add them: indicators = ['sma(5)', 'rsi(14)']"


def test_a_class_whose_indicators_are_not_a_list_is_named(tmp_path: Path) -> None:
    # A string was read letter by letter: "reads ['r', 's', 'i', ...]".
    module = SIDE_EFFECT_MODULE.replace('["sma(5)", "rsi(14)"]', '"rsi(14)"')
    (tmp_path / "rising.py").write_text(module)
    strategy = load_strategy(write(tmp_path, '[strategy]\nname = "r"\nclass = "rising:Rising"\n'
                                             'indicators = ["rsi(14)"]\n'))
    with pytest.raises(UsageError) as caught:
        strategy.load_class()
    assert "strategy.class: rising:Rising.indicators must be a list of indicator specs such " \
           "as [\"rsi(14)\"], not 'rsi(14)'" in caught.value.message


def test_a_name_with_a_control_character_is_refused(tmp_path: Path) -> None:
    error = error_of(tmp_path, RSI.replace('name = "rsi-revert"', 'name = "a\\u001b[31mb"'))
    assert ":2: strategy.name: control character '\\x1b' in 'a\\x1b[31mb'" in error.message
