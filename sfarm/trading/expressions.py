"""Signal expressions: SQL-style boolean conditions over candle and indicator columns.

Text such as ``rsi_14 < 30 AND close > sma_200`` is first checked against the condition language
(sfarm.trading.condition_grammar: columns, numbers, comparisons, AND/OR/NOT, arithmetic, ABS,
COALESCE and ``LAG(col[, n]) OVER (ORDER BY ts)``), then compiled by polars' SQL expression
parser (`pl.sql_expr`) into a vectorized polars expression; nothing is ever passed to Python's
`eval`, and nothing polars' SQL could do beyond that (subqueries, table functions that read
files or URLs, aggregates, other windows) reaches it. The language cannot read later candles:
the only look-back is LAG with a whole number of candles. Since candle frames are sorted by ts,
``LAG(col) OVER (ORDER BY ts)`` is rewritten to a plain shifted column before parsing (a window
over the whole frame costs ~10x more).
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from sfarm.trading.condition_grammar import LANGUAGE, ConditionSyntaxError, canonical_condition

#: Columns every strategy can use: the candle itself.
CANDLE_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")

_LAG = re.compile(r"\bLAG\s*\(\s*\"?([A-Za-z_][A-Za-z0-9_]*)\"?\s*(?:,\s*(\d+)\s*)?\)"
                  r"\s*OVER\s*\(\s*ORDER\s+BY\s+\"?ts\"?(?:\s+ASC)?\s*\)", re.IGNORECASE)


class ExpressionError(ValueError):
    """An expression that cannot be used; `str()` is a complete message for a person."""

    def __init__(self, message: str, *, hint: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        self.key = key  # which of the expressions checked together (check_expressions)


@dataclass(frozen=True)
class Lag:
    """A column shifted down by `periods` rows, named `name` inside the compiled expression."""

    name: str
    column: str
    periods: int


@dataclass(frozen=True)
class SignalExpression:
    """A compiled condition: its text, the polars expression, the columns it reads."""

    text: str
    expr: pl.Expr
    columns: frozenset[str]  # frame columns read, LAG arguments included
    lags: tuple[Lag, ...] = ()


def compile_expression(text: str) -> SignalExpression:
    """Parse `text` into a polars expression; raise ExpressionError when it is not a condition
    of the language (sfarm.trading.condition_grammar), before polars sees it."""
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        canonical = canonical_condition(text)
    except ConditionSyntaxError as error:
        raise ExpressionError(f"expression {text!r} is not a condition: {error}",
                              hint=f"a condition is made of {LANGUAGE}") from None
    lags: dict[str, Lag] = {}

    def placeholder(match: re.Match[str]) -> str:
        column, periods = match.group(1), int(match.group(2) or 1)
        name = f"__lag{periods}__{column}"
        lags[name] = Lag(name, column, periods)
        return name

    try:
        expr = pl.sql_expr(_LAG.sub(placeholder, canonical))
    except Exception as error:  # polars raises several SQL error types (syntax, interface)
        raise ExpressionError(f"cannot parse expression {text!r}: {_first_line(error)}",
                              hint="write SQL such as `rsi_14 < 30 AND close > sma_200`; "
                                   "the previous candle is `LAG(col) OVER (ORDER BY ts)`"
                              ) from None
    roots = set(expr.meta.root_names())
    columns = (roots - set(lags)) | {lag.column for lag in lags.values() if lag.name in roots}
    return SignalExpression(text=text, expr=expr, columns=frozenset(columns),
                            lags=tuple(lags.values()))


def lag_columns(expressions: list[SignalExpression]) -> list[pl.Expr]:
    """The shifted columns the expressions read (frame sorted by ts)."""
    lags = {lag.name: lag for expression in expressions for lag in expression.lags}
    return [pl.col(lag.column).shift(lag.periods).alias(lag.name) for lag in lags.values()]


def evaluate(expressions: dict[str, SignalExpression], frame: pl.DataFrame) -> pl.DataFrame:
    """One Boolean column per expression (null counts as false). `frame` is sorted by ts; its
    float NaN (indicator warm-up) is read as null, so a condition is false until it has values
    (polars orders NaN above every number: `NaN > 30` would be true)."""
    # polars' default engine (2.1) drops a row of `0 < col.shift(2)` when no other column is
    # selected beside it (a strategy whose conditions all compare a literal to a LAG of 2 or
    # more then failed with a ShapeError); the in-memory engine is right, and as fast here.
    return _evaluation(expressions, frame).collect(engine="in-memory")


def _evaluation(expressions: Mapping[str, SignalExpression], frame: pl.DataFrame) -> pl.LazyFrame:
    read = sorted(set().union(*(e.columns for e in expressions.values())) & set(frame.columns))
    floats = [name for name in read if frame.schema[name].is_float()]
    # ts kept when nothing else is read: a condition of literals (`TRUE`) is one row in a
    # select; beside a column (with_columns) it is one per candle.
    query = frame.lazy().select(read or ["ts"])
    if floats:
        query = query.with_columns(pl.col(floats).fill_nan(None))
    lags = lag_columns(list(expressions.values()))
    if lags:
        query = query.with_columns(lags)
    return query.with_columns([e.expr.fill_null(False).alias(name)
                               for name, e in expressions.items()]).select(list(expressions))


def unknown_columns(expression: SignalExpression, available: set[str]) -> list[str]:
    return sorted(expression.columns - available)


def suggest(name: str, available: set[str]) -> str | None:
    """The closest available column name, for a "did you mean" hint."""
    matches = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_expressions(expressions: Mapping[str, SignalExpression], available: set[str]) -> None:
    """Raise ExpressionError, its `key` naming the expression, for the first one that reads a
    column that does not exist or does not give true/false. Columns are typed as the engine
    sees them: ts Int64, the rest Float64.

    All expressions are typed in one polars plan (each costs ~0.5 ms of planning, and loading
    a strategy runs them all); one at a time only to name a culprit."""
    for key, expression in expressions.items():
        missing = unknown_columns(expression, available)
        if missing:
            name = missing[0]
            close = suggest(name, available)
            did_you_mean = f"; did you mean {close!r}?" if close else ""
            raise ExpressionError(
                f"unknown column {name!r} in expression {expression.text!r}{did_you_mean}",
                hint="columns available: " + ", ".join(sorted(available, key=_column_order)),
                key=key)
    if not expressions:
        return
    probe = _probe_frame(available, rows=64, seed=1)
    try:
        dtypes = _dtypes(expressions, probe)
    except Exception:  # type errors surface as several polars exception types
        for key, expression in expressions.items():
            try:
                _dtypes({key: expression}, probe)
            except Exception as error:
                raise ExpressionError(f"expression {expression.text!r} cannot be evaluated: "
                                      f"{_first_line(error)}", key=key) from None
        raise
    for key, dtype in dtypes.items():
        if dtype != pl.Boolean:
            raise ExpressionError(
                f"expression {expressions[key].text!r} gives {dtype}, not a true/false "
                "condition", hint="compare values, e.g. `close > sma_200`", key=key)


def _dtypes(expressions: Mapping[str, SignalExpression],
            probe: pl.DataFrame) -> dict[str, pl.DataType]:
    # Evaluated on the probe, not only typed: some refusals come at run time only
    # (`ABS(close > 1)`: polars types it, then cannot take the abs of a boolean).
    frame = probe.lazy().with_columns(lag_columns(list(expressions.values()))).select(
        expression.expr.alias(key) for key, expression in expressions.items()
    ).collect(engine="in-memory")
    return dict(frame.schema)


def _probe_frame(available: set[str], *, rows: int, seed: int) -> pl.DataFrame:
    # Python's random, not numpy's: checking a strategy (every inventory load) needs no numpy.
    rng = random.Random(seed)
    return pl.DataFrame({name: (pl.int_range(0, rows * 60_000, 60_000, eager=True)
                                if name == "ts" else [rng.uniform(0, 100) for _ in range(rows)])
                         for name in sorted(available, key=_column_order)})


def _column_order(name: str) -> tuple[int, str]:
    return (CANDLE_COLUMNS.index(name), "") if name in CANDLE_COLUMNS else (len(CANDLE_COLUMNS),
                                                                            name)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
