"""The condition language (sfarm.trading.condition_grammar) against polars: every condition
it accepts compiles, gives true/false and never reads later candles; everything else is refused
before polars sees it (polars' SQL would otherwise run table functions such as read_csv), a
value of the wrong kind too (a strategy is checked without polars: what it accepts must run)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sfarm.trading.condition_grammar import parse_condition
from sfarm.trading.condition_tokens import ConditionError
from sfarm.trading.conditions import ExpressionError, check_conditions
from sfarm.trading.expressions import compile_expression, evaluate

COLUMNS = ("ts", "open", "high", "low", "close", "volume", "rsi_14", "sma_20")
ROWS, CUT = 80, 50

columns = st.sampled_from(COLUMNS[1:]).flatmap(  # names are case-sensitive, keywords not
    lambda name: st.sampled_from([name, f'"{name}"']))
numbers = st.one_of(st.integers(0, 10_000).map(str),
                    st.floats(0, 1e4, allow_nan=False).map(lambda x: f"{x:.4g}".replace("+", "")))
lags = st.tuples(columns, st.integers(1, 5), st.booleans()).map(
    lambda lag: f"LAG({lag[0]}{', ' + str(lag[1]) if lag[2] else ''}) OVER (ORDER BY ts)")
values = st.recursive(
    st.one_of(columns, numbers, lags),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%"]), inner)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda value: f"ABS({value})"),
        inner.map(lambda value: f"COALESCE({value})"),
        st.tuples(st.one_of(columns, lags), st.lists(inner, min_size=1, max_size=2)).map(
            lambda t: f"COALESCE({', '.join([t[0], *t[1]])})"),  # a column first: see below
        inner.map(lambda value: f"-({value})")),
    max_leaves=6)
predicates = st.one_of(
    st.tuples(values, st.sampled_from(["<", "<=", ">", ">=", "=", "<>", "!="]), values)
    .map(" ".join),
    st.tuples(values, st.booleans(), values, values).map(
        lambda t: f"{t[0]} {'NOT ' if t[1] else ''}BETWEEN {t[2]} AND {t[3]}"),
    st.tuples(values, st.booleans()).map(
        lambda t: f"{t[0]} IS {'NOT ' if t[1] else ''}NULL"),
    st.sampled_from(["TRUE", "false"]))
conditions = st.recursive(
    predicates,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "or"]), inner).map(" ".join),
        inner.map(lambda c: f"NOT {c}"),
        inner.map(lambda c: f"({c})")),
    max_leaves=4)


def _frame(seed: int, later: float = 1.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    frame = {name: rng.uniform(0, 100, ROWS) for name in COLUMNS[1:]}
    frame["rsi_14"][:5] = np.nan  # an indicator's warm-up
    for values in frame.values():
        values[CUT:] *= later
    return pl.DataFrame({"ts": np.arange(ROWS, dtype=np.int64) * 60_000, **frame})


@settings(max_examples=150, deadline=None)
@given(conditions)
@example("-(0) < (0.5 / 0)")  # a literal with a point was a Decimal: division by zero raised
def test_every_condition_of_the_language_compiles_and_never_reads_later_candles(
        text: str) -> None:
    expression = compile_expression(text)  # true/false
    check_conditions({"x": expression.condition}, set(COLUMNS))  # known columns
    full = evaluate({"x": expression}, _frame(3))["x"].head(CUT)
    for later in (1e9, -1e9, 0.0):
        assert evaluate({"x": expression}, _frame(3, later))["x"].head(CUT).equals(full), text
    assert evaluate({"x": expression}, _frame(3).head(CUT))["x"].equals(full), text


# Values of both kinds anywhere, each composite in parentheses (so precedence never refuses it):
# the language must refuse a mixture polars would fail on or read as something else.
any_numbers = st.one_of(numbers, st.integers(0, 10**25).map(str), st.sampled_from(
    ["1.", ".5", "1e400", "2.5E-3", "0", "9223372036854775808"]))
mixed = st.recursive(
    st.one_of(columns, any_numbers, lags, st.sampled_from(["TRUE", "FALSE", '"ts"', "ts"])),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "=",
                                          "<>", "!=", "AND", "OR"]), inner)
        .map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["NOT ", "-", "+", "ABS"]), inner)
        .map(lambda t: f"({t[0]}({t[1]}))"),
        st.lists(inner, min_size=1, max_size=3).map(lambda vs: f"COALESCE({', '.join(vs)})"),
        st.tuples(inner, st.booleans(), inner, inner).map(
            lambda t: f"({t[0]} {'NOT ' if t[1] else ''}BETWEEN {t[2]} AND {t[3]})"),
        st.tuples(inner, st.booleans()).map(
            lambda t: f"({t[0]} IS {'NOT ' if t[1] else ''}NULL)")),
    max_leaves=8)


@settings(max_examples=400, deadline=None)
@given(mixed)
@example("(ABS((close > 1)) > 0)")  # polars types it, then fails when it runs
@example("(NOT (close))")  # polars takes it, as `close <> 0`
@example("((close > 1) = 1)")
@example("(9223372036854775808 > ts)")
def test_what_the_language_accepts_polars_evaluates_to_true_false(text: str) -> None:
    try:
        expression = compile_expression(text)
    except ExpressionError as error:  # a value of the wrong kind; never polars' parser
        assert any(why in str(error) for why in ("cannot be evaluated", "gives a number",
                                                 "COALESCE's first value")), error
        return
    values = evaluate({"x": expression}, _frame(3))["x"]
    assert values.dtype == pl.Boolean and values.len() == ROWS, text


@pytest.mark.parametrize(("text", "says"), [
    ("rsi_14 + 55", "gives a number, not a true/false condition"),
    ("ABS(close > 1) > 0", "ABS takes a number, not true/false at column 5"),
    ("NOT close", "NOT takes true/false, not a number at column 5"),
    ("close AND rsi_14 < 30", "AND takes true/false, not a number at column 1"),
    ("(close > open) = 1", "= compares true/false with a number at column 16"),
    ("COALESCE(close > 1, 0)", "COALESCE takes values of one kind, not true/false and a "
                               "number at column 21"),
    ("close BETWEEN TRUE AND 2", "BETWEEN takes a number, not true/false at column 15"),
    ("-(close > 1) < 0", "the sign - takes a number, not true/false at column 2"),
    ("TRUE + 1 > 0", "+ takes a number, not true/false at column 1"),
])
def test_a_value_of_the_wrong_kind_is_refused_with_where(text: str, says: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert says in str(caught.value), str(caught.value)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["close", "rsi_14", '"ts"', "AND", "or", "NOT", "LAG", "OVER",
                              "ORDER", "BY", "ts", "(", ")", ",", "1", "2.5", "-", "<", ">=",
                              "=", "BETWEEN", "IS", "NULL", "abs", "coalesce", "'x'", "--",
                              ";", "SELECT", "read_csv", ".", "*"]),
             max_size=14).map(" ".join)))
def test_any_text_is_refused_cleanly_or_compiles(text: str) -> None:
    try:
        condition = parse_condition(text)
    except ConditionError as error:
        assert 1 <= error.column <= len(text) + 1
        return
    pl.sql_expr(condition.polars_text)  # what the language accepts, polars parses


@pytest.mark.parametrize("text", [
    "close IN (SELECT c FROM read_csv('/etc/hostname'))",
    "read_csv('http://127.0.0.1:9/x') IS NULL",
    "close > 'abc'",
    "close > (SELECT 1)",
    "close > 1; SELECT 1",
    "close > AVG(close)",
    "LEAD(close) OVER (ORDER BY ts) > close",
    "LAG(close, -1) OVER (ORDER BY ts) > close",
    "LAG(close) OVER (ORDER BY ts DESC) > close",
    "LAG(close) OVER (PARTITION BY ts ORDER BY ts) > close",
    "a.b > 1",
    "close > 1 close",
    "close > 1 -- AND rsi_14 < 30",
    "NOT",
    "0 <= COALESCE(0, open)",  # polars 2.1 gives one row for it, not one per candle
])
def test_what_is_not_a_condition_is_refused_with_where(text: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text)
    assert "is not a condition" in str(caught.value) and "at column" in str(caught.value)


@pytest.mark.parametrize(("text", "expected"), [
    # a doji (high = low, close = open): its body ratio is 0/0, no value, so not above 0.5
    ("(close - open) / (high - low) > 0.5", [False, True, False]),
    ("(close - open) / (high - low) <= 0.5", [False, False, False]),
    ("NOT (close - open) / (high - low) > 0.5", [False, False, False]),
    ("(close - open) / (high - low) IS NULL", [True, False, True]),
    ("COALESCE((close - open) / (high - low), 0) = 0", [True, False, True]),
    ("0 / 0 = 0 / 0", [False, False, False]),
    ("close % 0 > 1", [False, False, False]),
    ("(high - low) / 0 > 1", [False, True, False]),  # 1/0 is inf, a value
])
def test_an_arithmetic_without_a_value_is_no_value(text: str, expected: list[bool]) -> None:
    """0/0 (and inf - inf, x % 0) is NaN, which polars orders above every number; like an
    indicator's NaN it is no value, so a comparison with it is false."""
    frame = pl.DataFrame({"ts": [0, 60_000, 120_000], "open": [2.0, 1.0, 3.0],
                          "high": [2.0, 3.0, 3.0], "low": [2.0, 1.0, 3.0],
                          "close": [2.0, 2.9, 3.0], "volume": [1.0, 1.0, 1.0]})
    assert evaluate({"x": compile_expression(text)}, frame)["x"].to_list() == expected


def test_conditions_comparing_a_number_to_an_older_candle() -> None:
    """Found by the property above: polars' default engine dropped a row of
    `0 < LAG(close, 2) OVER (ORDER BY ts)` when every condition had that shape."""
    frame = _frame(4)
    expressions = {"entry": compile_expression("0 < LAG(close, 2) OVER (ORDER BY ts)"),
                   "exit": compile_expression("90 < LAG(close, 3) OVER (ORDER BY ts)")}
    signals = evaluate(expressions, frame)
    assert signals.height == frame.height
    close = frame["close"].to_numpy()
    assert signals["entry"].to_list() == [False, False] + [True] * (ROWS - 2)
    assert signals["exit"].to_list() == [False] * 3 + list(close[:-3] > 90)
