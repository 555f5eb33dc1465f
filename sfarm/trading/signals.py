"""Evaluate a strategy's conditions over a candle frame, vectorized, into four boolean columns.

Indicator columns hold NaN during their warm-up (TA-Lib's convention); polars orders NaN above
every number, so `NaN > 30` would be true. NaN is turned into null first and a null condition
counts as false: no signal until every column the condition reads has a value.
"""

from __future__ import annotations

import polars as pl

from sfarm.errors import UsageError
from sfarm.trading.expressions import evaluate
from sfarm.trading.strategy import SIGNALS, Strategy


def compute_signals(frame: pl.DataFrame, strategy: Strategy) -> pl.DataFrame:
    """A frame of `frame.height` rows with Boolean columns entry_long, exit_long, entry_short,
    exit_short (never null). `frame` is sorted by ts and holds the columns the strategy reads."""
    if strategy.class_path is not None:
        return _class_signals(_nan_to_null(frame), strategy)
    computed = evaluate(strategy.expressions, frame)
    never = pl.repeat(False, frame.height, eager=True)
    return pl.DataFrame([computed.get_column(name) if name in computed.columns
                         else never.alias(name) for name in SIGNALS])


def _nan_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    floats = [name for name, dtype in frame.schema.items() if dtype.is_float()]
    if not floats:
        return frame
    return frame.with_columns(pl.col(floats).fill_nan(None))


def _class_signals(frame: pl.DataFrame, strategy: Strategy) -> pl.DataFrame:
    cls = strategy.load_class()
    try:
        instance = cls(**strategy.params)
        produced = instance.signals(frame)
    except Exception as error:  # user code: name it, keep the cause for the traceback
        raise UsageError(f"strategy {strategy.name!r}: {strategy.class_path} failed: "
                         f"{type(error).__name__}: {error}") from error
    if not isinstance(produced, pl.DataFrame) or produced.height != frame.height:
        raise UsageError(f"strategy {strategy.name!r}: {strategy.class_path}.signals() must "
                         f"return a polars DataFrame of {frame.height} rows")
    columns = []
    for name in SIGNALS:
        if name not in produced.columns:
            columns.append(pl.repeat(False, frame.height, eager=True).alias(name))
            continue
        column = produced.get_column(name)
        if column.dtype != pl.Boolean:
            raise UsageError(f"strategy {strategy.name!r}: column {name} from "
                             f"{strategy.class_path}.signals() is {column.dtype}, not Boolean")
        columns.append(column.fill_null(False))
    return pl.DataFrame(columns)
