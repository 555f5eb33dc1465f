"""Signal expressions: a strategy's conditions compiled into vectorized polars expressions.

A condition has been read by the condition language (sfarm.trading.conditions,
sfarm.trading.condition_grammar: columns, numbers, comparisons, AND/OR/NOT, arithmetic, ABS,
COALESCE and ``LAG(col[, n]) OVER (ORDER BY ts)``, each value of the kind it needs); its text,
rebuilt from its tokens, is compiled here by polars' SQL expression parser (`pl.sql_expr`):
nothing is ever passed to Python's `eval`, and nothing polars' SQL could do beyond that
(subqueries, table functions that read files or URLs, aggregates, other windows) reaches it.
The language cannot read later candles: the only look-back is LAG with a whole number of
candles. Since candle frames are sorted by ts, each LAG is a plain shifted column (a window over
the whole frame costs ~10x more).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from sfarm.trading.condition_grammar import Condition, Lag
from sfarm.trading.conditions import ExpressionError, read_condition


@dataclass(frozen=True)
class SignalExpression:
    """A compiled condition: the condition and its polars expression."""

    condition: Condition
    expr: pl.Expr

    @property
    def columns(self) -> frozenset[str]:
        return self.condition.columns

    @property
    def lags(self) -> tuple[Lag, ...]:
        return self.condition.lags


def compile_expression(text: str) -> SignalExpression:
    """`text` read as a condition (ExpressionError when it is not one) and compiled."""
    return compile_condition(read_condition(text))


def compile_condition(condition: Condition) -> SignalExpression:
    """The polars expression of `condition`. The language accepts only what polars compiles
    and evaluates (a property test); an ExpressionError here would be a gap in that."""
    try:
        expr = pl.sql_expr(condition.polars_text)
    except Exception as error:  # polars raises several SQL error types (syntax, interface)
        raise ExpressionError(f"cannot parse expression {condition.text!r}: "
                              f"{_first_line(error)}",
                              hint="write SQL such as `rsi_14 < 30 AND close > sma_200`; "
                                   "the previous candle is `LAG(col) OVER (ORDER BY ts)`"
                              ) from None
    return SignalExpression(condition, expr)


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


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
