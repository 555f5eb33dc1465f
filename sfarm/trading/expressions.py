"""Signal expressions: SQL-style boolean conditions over candle and indicator columns.

Text such as ``rsi_14 < 30 AND close > sma_200`` is parsed by polars' SQL expression parser
(`pl.sql_expr`) into a vectorized polars expression; nothing is ever passed to Python's `eval`.
The previous candle's value is written ``LAG(col) OVER (ORDER BY ts)``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import polars as pl

#: Columns every strategy can use: the candle itself.
CANDLE_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")


class ExpressionError(ValueError):
    """An expression that cannot be used; `str()` is a complete message for a person."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class SignalExpression:
    """A compiled condition: its text, the polars expression and the columns it reads."""

    text: str
    expr: pl.Expr
    columns: frozenset[str]


def compile_expression(text: str) -> SignalExpression:
    """Parse `text` into a polars expression; raise ExpressionError when it is not SQL."""
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        expr = pl.sql_expr(text)
    except Exception as error:  # polars raises several SQL error types (syntax, interface)
        raise ExpressionError(f"cannot parse expression {text!r}: {_first_line(error)}",
                              hint="write SQL such as `rsi_14 < 30 AND close > sma_200`; "
                                   "the previous candle is `LAG(col) OVER (ORDER BY ts)`"
                              ) from None
    return SignalExpression(text=text, expr=expr, columns=frozenset(expr.meta.root_names()))


def unknown_columns(expression: SignalExpression, available: set[str]) -> list[str]:
    return sorted(expression.columns - available)


def suggest(name: str, available: set[str]) -> str | None:
    """The closest available column name, for a "did you mean" hint."""
    matches = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_expression(expression: SignalExpression, available: set[str]) -> None:
    """Raise ExpressionError if the expression reads a column that does not exist or does not
    produce booleans. Columns are typed as the engine sees them: ts Int64, the rest Float64."""
    missing = unknown_columns(expression, available)
    if missing:
        name = missing[0]
        close = suggest(name, available)
        did_you_mean = f"; did you mean {close!r}?" if close else ""
        raise ExpressionError(
            f"unknown column {name!r} in expression {expression.text!r}{did_you_mean}",
            hint="columns available: " + ", ".join(sorted(available, key=_column_order)))
    # Two real rows (not just a schema) so that type errors polars finds only at run time
    # (comparing a price with a string) surface here, at validation.
    probe = pl.DataFrame({name: pl.Series([0, 1], dtype=pl.Int64 if name == "ts" else pl.Float64)
                          for name in available})
    try:
        dtype = probe.select(expression.expr.alias("_")).schema["_"]
    except Exception as error:  # type errors surface as several polars exception types
        raise ExpressionError(
            f"expression {expression.text!r} cannot be evaluated: {_first_line(error)}") from None
    if dtype != pl.Boolean:
        raise ExpressionError(
            f"expression {expression.text!r} gives {dtype}, not a true/false condition",
            hint="compare values, e.g. `close > sma_200`")


def _column_order(name: str) -> tuple[int, str]:
    return (CANDLE_COLUMNS.index(name), "") if name in CANDLE_COLUMNS else (len(CANDLE_COLUMNS),
                                                                            name)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
