"""Batch computation: a polars candle frame plus specs -> the frame with indicator columns.

Only the columns an indicator reads are converted to numpy, once per call and without a copy
when the column is already a chunk of Float64 without nulls; TA-Lib's outputs become polars
columns directly (no copy either).

`compute` is also called on short frames and many times (backtests, the indicators task), so
its fixed cost matters next to TA-Lib's microseconds: everything that depends only on the spec
(parsing, the TA-Lib function and its keyword arguments, input and output names) is resolved
once per spec text into a `_Plan` and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import talib
from polars.exceptions import ColumnNotFoundError, DuplicateError

from sfarm.indicators.columns import FAST
from sfarm.indicators.spec import IndicatorSpec, parse_spec

_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)
_NUMERIC_KINDS = frozenset("biuf")  # numpy kinds that convert to float64 as numbers


@dataclass(frozen=True, slots=True)
class _Plan:
    """What computing one spec needs, resolved once: the engine bound to its parameters."""

    spec: IndicatorSpec
    inputs: tuple[str, ...]
    columns: tuple[str, ...]
    run: Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]


_PLANS: dict[str | IndicatorSpec, _Plan] = {}  # by spec text as given, or parsed spec
_MAX_PLANS = 4096  # specs in use are few; a caller generating endless spellings must not leak


def _plan(spec: str | IndicatorSpec) -> _Plan:
    plan = _PLANS.get(spec)
    if plan is None:
        plan = _make_plan(parse_spec(spec))  # raises IndicatorSpecError for a bad spec
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[spec] = plan
    return plan


def _make_plan(spec: IndicatorSpec) -> _Plan:
    definition = spec.definition
    if definition.batch is not None:
        batch, params = definition.batch, spec.params

        def run(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            return batch(inputs, params)
    else:
        assert definition.talib_name is not None
        function = getattr(talib, definition.talib_name)
        # talib's public functions wrap the C call to accept pandas/polars Series; inputs here
        # are already float64 numpy arrays, so call what the wrapper calls.
        function = getattr(function, "__wrapped__", function)
        kwargs = definition.talib_kwargs(spec.params)
        if len(definition.outputs) == 1:
            def run(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
                return (function(*inputs, **kwargs),)
        else:
            def run(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
                return function(*inputs, **kwargs)  # type: ignore[no-any-return]
    return _Plan(spec, definition.inputs, spec.columns, run)


def input_array(series: pl.Series) -> np.ndarray:
    """A contiguous numpy view of a candle column: float64 for prices/volume, int64 for ts.

    Zero-copy for a single-chunk Float64 (or Int64 ts) column without nulls; otherwise one
    conversion. Nulls become NaN, which TA-Lib treats as a missing value like any NaN.
    """
    if series.name == "ts":
        return np.ascontiguousarray(series.cast(pl.Int64).to_numpy(allow_copy=True))
    # polars gives float64 with NaN for nulls (Float64, or integers with nulls) and a
    # contiguous array for any number of chunks; only other dtypes still need converting.
    array = series.to_numpy()
    if array.dtype == _FLOAT64:
        return array
    if array.dtype.kind in _NUMERIC_KINDS:
        return array.astype(np.float64)
    return np.ascontiguousarray(series.cast(pl.Float64).to_numpy(), dtype=np.float64)


def _frame_input(frame: pl.DataFrame, name: str) -> np.ndarray:
    """`input_array(frame[name])` with the fewest calls for the common case: a Float64 column
    (an Int64 one for ts) without nulls."""
    array = FAST.array(frame, name)
    if array.dtype == (_INT64 if name == "ts" else _FLOAT64):
        return array
    return input_array(frame.get_column(name))


def compute_arrays(spec: str | IndicatorSpec,
                   arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Run one indicator's batch engine on numpy inputs (keyed by input name)."""
    plan = _plan(spec)
    return plan.run(tuple(arrays[name] for name in plan.inputs))


def compute(frame: pl.DataFrame, specs: Iterable[str | IndicatorSpec]) -> pl.DataFrame:
    """Return `frame` with the columns of every spec added (Float64; NaN where TA-Lib has none).

    Example:
        >>> out = compute(candles, ["rsi(14)", "macd(12,26,9)"])
        >>> out.columns[-4:]
        ['rsi_14', 'macd_12_26_9', 'macd_signal_12_26_9', 'macd_hist_12_26_9']
    """
    plans = [_plan(s) for s in specs]
    arrays: dict[str, np.ndarray] = {}
    names: list[str] = []
    outputs: list[np.ndarray] = []
    try:
        for plan in plans:
            for name in plan.inputs:
                if name not in arrays:
                    arrays[name] = _frame_input(frame, name)
            names.extend(plan.columns)
            outputs.extend(plan.run(tuple(arrays[name] for name in plan.inputs)))
    except ColumnNotFoundError:
        raise _missing_columns(frame, plans) from None
    if not names:
        return frame
    try:
        # float64 arrays become Float64 columns without a copy; NaN stays NaN (not null); no
        # expression engine: the columns are just added.
        return FAST.hstack(frame, names, outputs)
    except DuplicateError:  # recomputing a column replaces it
        return frame.with_columns(pl.Series(name, values, dtype=pl.Float64, nan_to_null=False)
                                  for name, values in zip(names, outputs, strict=True))


def _missing_columns(frame: pl.DataFrame, plans: list[_Plan]) -> ValueError:
    missing = sorted({name for plan in plans for name in plan.inputs} - set(frame.columns))
    return ValueError(f"compute: frame lacks column(s) {', '.join(missing)} "
                      f"needed by {', '.join(plan.spec.text for plan in plans)}")


__all__ = ["compute", "compute_arrays", "input_array"]
