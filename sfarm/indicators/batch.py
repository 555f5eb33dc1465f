"""Batch computation: a polars candle frame plus specs -> the frame with indicator columns.

Only the columns an indicator reads are converted to numpy, once per call and without a copy
when the column is already a chunk of Float64 without nulls; TA-Lib's outputs become polars
columns without a copy either.

`compute` is also called on short frames and many times (backtests, the indicators task), and
on long ones it runs right after TA-Lib has streamed megabytes through the CPU caches, where
every Python-level step runs cold (1e6 candles: `pl.Series(name, array)` 17-80 us, a column to
numpy 20-30 us, `hstack` ~18 us, next to 220 us for TA-Lib's MOM). So:

* what depends only on the spec (parsing, the TA-Lib function and its keyword arguments, input
  and output names) is resolved once into a `_Plan` and kept;
* like the standard library keeping C accelerators beside pure Python (json, heapq), there are
  two implementations: `_compute_public` through polars' public API, and one made by
  `_direct_compute` through the calls of polars' compiled core the public API ends in
  (`PyDataFrame.get_column`, `PySeries.to_numpy`, `PySeries.new_f64`, `PyDataFrame.hstack`).
  Those are polars internals, so the direct one is `compute` only when they exist and, probed
  at import on frames with nulls, integers, Float32, several chunks and a taken column name, it
  returns exactly what the public one returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from polars.exceptions import ColumnNotFoundError, DuplicateError, PanicException, PolarsError

from sfarm.indicators.spec import IndicatorSpec, parse_spec
from sfarm.indicators.ta import talib

_FLOAT64 = np.dtype(np.float64)
_INT64 = np.dtype(np.int64)
_NUMERIC_KINDS = frozenset("biuf")  # numpy kinds that convert to float64 as numbers

Compute = Callable[[pl.DataFrame, Iterable[str | IndicatorSpec]], pl.DataFrame]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What computing one spec needs, resolved once: the engine bound to its parameters."""

    spec: IndicatorSpec
    inputs: tuple[str, ...]
    dtypes: tuple[np.dtype[Any], ...]  # of each input as numpy (int64 ts, float64 the others)
    columns: tuple[str, ...]
    # Input arrays -> one 1-d, C-contiguous float64 array per column (TA-Lib's always are).
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
    run: Callable[[tuple[np.ndarray, ...]], tuple[np.ndarray, ...]]
    if definition.batch is not None:
        batch, params = definition.batch, spec.params

        def run(inputs: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            return tuple(np.ascontiguousarray(out, dtype=np.float64)
                         for out in batch(inputs, params))
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
                return function(*inputs, **kwargs)
    dtypes = tuple(_INT64 if name == "ts" else _FLOAT64 for name in definition.inputs)
    return _Plan(spec, definition.inputs, dtypes, spec.columns, run)


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


def compute_arrays(spec: str | IndicatorSpec,
                   arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Run one indicator's batch engine on numpy inputs (keyed by input name)."""
    plan = _plan(spec)
    return plan.run(tuple(arrays[name] for name in plan.inputs))


def _compute_public(frame: pl.DataFrame,
                    specs: Iterable[str | IndicatorSpec]) -> pl.DataFrame:
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
                    arrays[name] = input_array(frame.get_column(name))
            names.extend(plan.columns)
            outputs.extend(plan.run(tuple(arrays[name] for name in plan.inputs)))
    except ColumnNotFoundError:
        raise _missing_columns(frame, plans) from None
    return _add_columns(frame, names, outputs)


def _add_columns(frame: pl.DataFrame, names: list[str],
                 outputs: list[np.ndarray]) -> pl.DataFrame:
    if not names:
        return frame
    # float64 arrays become Float64 columns without a copy; NaN stays NaN (not null).
    columns = [pl.Series(name, values, dtype=pl.Float64, nan_to_null=False)
               for name, values in zip(names, outputs, strict=True)]
    try:
        return frame.hstack(columns)  # no expression engine: just adds the columns
    except DuplicateError:
        return frame.with_columns(columns)  # recomputing a column replaces it


def _direct_compute(new_f64: Callable[[str, np.ndarray, bool], Any],
                    wrap_frame: Callable[[Any], pl.DataFrame]) -> Compute:
    """`_compute_public` through polars' core calls, in plain loops (every call counts cold)."""

    def compute(frame: pl.DataFrame, specs: Iterable[str | IndicatorSpec]) -> pl.DataFrame:
        table = frame._df
        plans: list[_Plan] = []
        arrays: dict[str, np.ndarray] = {}
        names: list[str] = []
        outputs: list[np.ndarray] = []
        columns: list[Any] = []
        try:
            for spec in specs:
                plan = _PLANS.get(spec) or _plan(spec)
                plans.append(plan)
                inputs = []
                for name, dtype in zip(plan.inputs, plan.dtypes, strict=True):
                    array = arrays.get(name)
                    if array is None:
                        array = table.get_column(name).to_numpy(writable=False, allow_copy=True)
                        if array.dtype != dtype:  # nulls in ts, integers, Float32, Decimal...
                            array = input_array(frame.get_column(name))
                        arrays[name] = array
                    inputs.append(array)
                for name, values in zip(plan.columns, plan.run(tuple(inputs)), strict=True):
                    names.append(name)
                    outputs.append(values)
                    columns.append(new_f64(name, values, False))  # False: NaN stays NaN
        except ColumnNotFoundError:
            raise _missing_columns(frame, plans) from None
        if not columns:
            return frame
        try:
            return wrap_frame(table.hstack(columns))
        except DuplicateError:
            return _add_columns(frame, names, outputs)

    return compute


def _missing_columns(frame: pl.DataFrame, plans: list[_Plan]) -> ValueError:
    missing = sorted({name for plan in plans for name in plan.inputs} - set(frame.columns))
    return ValueError(f"compute: frame lacks column(s) {', '.join(missing)} "
                      f"needed by {', '.join(plan.spec.text for plan in plans)}")


def _probe_frames() -> list[pl.DataFrame]:
    """Small frames with what a column can be: nulls, integers, Float32, several chunks."""
    head = pl.DataFrame({
        "ts": [0, 60_000, 120_000], "open": [1.0, 2.0, 3.0],
        "high": pl.Series([1.5, 2.5, 3.5], dtype=pl.Float32), "low": [0.5, None, 2.5],
        "close": [1.0, None, 3.0], "volume": [1, None, 3]})
    odd = pl.concat([head, head.with_columns(pl.col("ts") + 180_000)], rechunk=False)[1:]
    clean = odd.with_columns(pl.exclude("ts").cast(pl.Float64).fill_null(1.0)).rechunk()
    return [odd, clean, _compute_public(clean, ["sma(2)"])]  # the last: a taken column name


def _same_as_public(candidate: Compute) -> bool:
    specs = ["sma(2)", "bbands(2,2)", "trange", "obv", "vwap"]
    for frame in _probe_frames():
        got, want = candidate(frame, specs), _compute_public(frame, specs)
        if got.columns != want.columns or not got.equals(want, null_equal=True):
            return False
        if got["trange"].null_count() != want["trange"].null_count():  # NaN is not null
            return False
    try:
        candidate(_probe_frames()[1].drop("volume"), ["obv"])
    except ValueError as error:
        return "volume" in str(error)
    return False


def _choose_compute() -> Compute:
    try:
        from polars._plr import PySeries  # polars' compiled core: not a public API

        direct = _direct_compute(PySeries.new_f64, pl.DataFrame._from_pydf)
        if _same_as_public(direct):
            return direct
    except (ImportError, AttributeError, TypeError, ValueError, PolarsError, PanicException):
        pass
    return _compute_public


compute: Compute = _choose_compute()
compute.__doc__ = _compute_public.__doc__

__all__ = ["compute", "compute_arrays", "input_array"]
