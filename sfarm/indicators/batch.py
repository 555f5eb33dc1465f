"""Batch computation: a polars candle frame plus specs -> the frame with indicator columns.

Only the columns an indicator reads are converted to numpy, once per call and without a copy
when the column is already a chunk of Float64 without nulls; TA-Lib's outputs become polars
columns directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import polars as pl
import talib

from sfarm.indicators.spec import IndicatorSpec, parse_spec


def input_array(series: pl.Series) -> np.ndarray:
    """A contiguous numpy view of a candle column: float64 for prices/volume, int64 for ts.

    Zero-copy for a single-chunk Float64 (or Int64 ts) column without nulls; otherwise one
    conversion. Nulls become NaN, which TA-Lib treats as a missing value like any NaN.
    """
    if series.name == "ts":
        return np.ascontiguousarray(series.cast(pl.Int64).to_numpy(allow_copy=True))
    if series.dtype != pl.Float64:
        series = series.cast(pl.Float64)
    if series.null_count():
        series = series.fill_null(float("nan"))
    return np.ascontiguousarray(series.to_numpy(allow_copy=True), dtype=np.float64)


def compute_arrays(spec: IndicatorSpec, arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Run one indicator's batch engine on numpy inputs (keyed by input name)."""
    definition = spec.definition
    inputs = tuple(arrays[name] for name in definition.inputs)
    if definition.batch is not None:
        return definition.batch(inputs, spec.params)
    assert definition.talib_name is not None
    function = getattr(talib, definition.talib_name)
    result = function(*inputs, **definition.talib_kwargs(spec.params))
    return result if isinstance(result, tuple) else (result,)


def compute(frame: pl.DataFrame, specs: Iterable[str | IndicatorSpec]) -> pl.DataFrame:
    """Return `frame` with the columns of every spec added (Float64; NaN where TA-Lib has none).

    Example:
        >>> out = compute(candles, ["rsi(14)", "macd(12,26,9)"])
        >>> out.columns[-4:]
        ['rsi_14', 'macd_12_26_9', 'macd_signal_12_26_9', 'macd_hist_12_26_9']
    """
    parsed = [parse_spec(s) for s in specs]
    missing = sorted({name for s in parsed for name in s.inputs} - set(frame.columns))
    if missing:
        raise ValueError(f"compute: frame lacks column(s) {', '.join(missing)} "
                         f"needed by {', '.join(s.text for s in parsed)}")
    arrays: dict[str, np.ndarray] = {}
    new_columns: list[pl.Series] = []
    for spec in parsed:
        for name in spec.inputs:
            if name not in arrays:
                arrays[name] = input_array(frame.get_column(name))
        outputs = compute_arrays(spec, arrays)
        # float64 arrays become Float64 columns without a copy; NaN stays NaN (not null).
        new_columns.extend(pl.Series(column, values)
                           for column, values in zip(spec.columns, outputs, strict=True))
    if not new_columns:
        return frame
    if set(frame.columns).isdisjoint(s.name for s in new_columns):
        return frame.hstack(new_columns)  # no expression engine: just adds the columns
    return frame.with_columns(new_columns)  # recomputing a column replaces it
