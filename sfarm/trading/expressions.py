"""Signal expressions: SQL-style boolean conditions over candle and indicator columns.

Text such as ``rsi_14 < 30 AND close > sma_200`` is parsed by polars' SQL expression parser
(`pl.sql_expr`) into a vectorized polars expression; nothing is ever passed to Python's `eval`.
The previous candle's value is written ``LAG(col) OVER (ORDER BY ts)``; since candle frames are
sorted by ts, that exact form is rewritten to a plain shifted column before parsing (a window
over the whole frame costs ~10x more). A condition must not read later candles: checked on
probe data (`check_expression`), which catches LEAD, descending orders and whole-column
aggregates such as ``AVG(close)``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

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
    """Parse `text` into a polars expression; raise ExpressionError when it is not SQL."""
    if not text.strip():
        raise ExpressionError("empty expression")
    lags: dict[str, Lag] = {}

    def placeholder(match: re.Match[str]) -> str:
        column, periods = match.group(1), int(match.group(2) or 1)
        name = f"__lag{periods}__{column}"
        lags[name] = Lag(name, column, periods)
        return name

    try:
        expr = pl.sql_expr(_LAG.sub(placeholder, text))
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
    return _evaluation(expressions, frame).collect()


def _evaluation(expressions: Mapping[str, SignalExpression], frame: pl.DataFrame) -> pl.LazyFrame:
    read = sorted(set().union(*(e.columns for e in expressions.values())) & set(frame.columns))
    floats = [name for name in read if frame.schema[name].is_float()]
    query = frame.lazy().select(read)
    if floats:
        query = query.with_columns(pl.col(floats).fill_nan(None))
    lags = lag_columns(list(expressions.values()))
    if lags:
        query = query.with_columns(lags)
    return query.select([e.expr.fill_null(False).alias(name)
                         for name, e in expressions.items()])


def unknown_columns(expression: SignalExpression, available: set[str]) -> list[str]:
    return sorted(expression.columns - available)


def suggest(name: str, available: set[str]) -> str | None:
    """The closest available column name, for a "did you mean" hint."""
    matches = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_expressions(expressions: Mapping[str, SignalExpression], available: set[str]) -> None:
    """Raise ExpressionError, its `key` naming the expression, for the first one that reads a
    column that does not exist, does not give true/false, or reads later candles. Columns are
    typed as the engine sees them: ts Int64, the rest Float64.

    All expressions are probed in the same few evaluations (each costs ~0.5 ms of polars
    planning, and loading a strategy runs them all); one at a time only to name a culprit."""
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
    for key in _reading_later_candles(expressions, probe):
        raise ExpressionError(
            f"expression {expressions[key].text!r} reads later candles (look-ahead): a condition "
            "on a candle may only use that candle and earlier ones",
            hint="earlier candles are `LAG(col) OVER (ORDER BY ts)`; for aggregates such as "
                 "AVG(close) or MAX(high) over a window use an indicator (sma(20), max(20))",
            key=key)


def _dtypes(expressions: Mapping[str, SignalExpression],
            probe: pl.DataFrame) -> dict[str, pl.DataType]:
    schema = probe.lazy().with_columns(lag_columns(list(expressions.values()))).select(
        expression.expr.alias(key) for key, expression in expressions.items()).collect_schema()
    return dict(schema)


def _reading_later_candles(expressions: Mapping[str, SignalExpression],
                           probe: pl.DataFrame) -> list[str]:
    """The keys of the expressions whose value on a candle changes when later candles are added
    or changed."""
    cut = 40
    later = pl.int_range(pl.len()) >= cut
    probes = [probe, probe.head(cut)]
    for factor in (1e9, -1e9):  # later candles far above, then far below
        probes.append(probe.with_columns(
            pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c))
            for c in probe.columns if c != "ts"))
    full, *variants = (result.head(cut) for result in pl.collect_all(
        [_evaluation(expressions, frame) for frame in probes]))
    return [key for key in expressions
            if not all(variant.get_column(key).equals(full.get_column(key))
                       for variant in variants)]


def _probe_frame(available: set[str], *, rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({name: (np.arange(rows, dtype=np.int64) * 60_000 if name == "ts"
                                else rng.uniform(0, 100, rows))
                         for name in sorted(available, key=_column_order)})


def _column_order(name: str) -> tuple[int, str]:
    return (CANDLE_COLUMNS.index(name), "") if name in CANDLE_COLUMNS else (len(CANDLE_COLUMNS),
                                                                            name)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
