"""Columns between a polars frame and numpy with as little Python as possible, never a copy.

Why: `compute` runs right after (and right before) TA-Lib streams megabytes through the CPU
caches, so every Python-level step of polars' API runs cold: on 1e6 candles `pl.Series(name,
array)` (masked-array, byte-order and dtype checks) took 17-80 us, `frame.get_column(name)
.to_numpy()` 20-30 us and `frame.hstack` ~18 us, next to 220 us for TA-Lib's MOM itself.

The public calls end in four calls of polars' compiled core (`PyDataFrame.get_column`,
`PySeries.to_numpy`, `PySeries.new_f64`, `PyDataFrame.hstack`); `_Direct` makes those calls
itself. They are polars internals, so `FAST` is a `_Direct` only when a probe at import shows it
builds exactly what the public API builds; otherwise (say polars renames them) `FAST` is
`PUBLIC`, the same work through the public API. Both raise polars' `ColumnNotFoundError` and
`DuplicateError` as the public API does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import polars as pl
from polars.exceptions import PanicException

_FLOAT64 = np.dtype(np.float64)


class ColumnIO(Protocol):
    def array(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        """The column as numpy: a view when it is one chunk without nulls, else one copy
        (nulls become NaN; integers with nulls become float64)."""

    def hstack(self, frame: pl.DataFrame, names: Sequence[str],
               values: Sequence[np.ndarray]) -> pl.DataFrame:
        """`frame` with float64 arrays appended as Float64 columns (NaN kept, not null);
        DuplicateError if a name is taken."""


class _Public:
    def array(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        return frame.get_column(name).to_numpy()

    def hstack(self, frame: pl.DataFrame, names: Sequence[str],
               values: Sequence[np.ndarray]) -> pl.DataFrame:
        return frame.hstack([pl.Series(name, array, dtype=pl.Float64, nan_to_null=False)
                             for name, array in zip(names, values, strict=True)])


class _Direct:
    def __init__(self, series_type: Any) -> None:
        self._new_f64 = series_type.new_f64
        self._wrap = pl.DataFrame._from_pydf

    def array(self, frame: pl.DataFrame, name: str) -> np.ndarray:
        column = frame._df.get_column(name)
        return column.to_numpy(writable=False, allow_copy=True)  # type: ignore[no-any-return]

    def hstack(self, frame: pl.DataFrame, names: Sequence[str],
               values: Sequence[np.ndarray]) -> pl.DataFrame:
        columns = [self._new_f64(name, array, False)  # False: NaN stays NaN
                   if array.ndim == 1 and array.dtype == _FLOAT64 and array.flags.carray
                   # anything else: the public constructor, which converts (new_f64 would panic)
                   else pl.Series(name, array, dtype=pl.Float64, nan_to_null=False)._s
                   for name, array in zip(names, values, strict=True)]
        return self._wrap(frame._df.hstack(columns))


def _probe(candidate: ColumnIO) -> bool:
    """True when `candidate` gives what the public API gives, views and all."""
    frame = pl.DataFrame({"ts": [1, 2, 3], "close": [1.5, None, -2.0], "volume": [1, None, 3]})
    public = _Public()
    for name in frame.columns:
        got, want = candidate.array(frame, name), public.array(frame, name)
        if got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=True):
            return False
    values = [np.array([0.5, np.nan, 2.0]), np.arange(3.0)[::-1]]  # NaN; a strided view
    names = ["a", "b"]
    built = candidate.hstack(frame, names, values)
    if not built.equals(public.hstack(frame, names, values), null_equal=True):
        return False
    if built["a"].null_count() or not np.shares_memory(built["a"].to_numpy(), values[0]):
        return False
    try:
        candidate.hstack(frame, ["close"], values[:1])
    except pl.exceptions.DuplicateError:
        return True
    return False


def _choose() -> ColumnIO:
    try:
        from polars._plr import PySeries  # polars' compiled core: not a public API

        direct = _Direct(PySeries)
        if _probe(direct):
            return direct
    except (ImportError, AttributeError, TypeError, ValueError, pl.exceptions.PolarsError,
            PanicException):
        pass
    return _Public()


PUBLIC: ColumnIO = _Public()
FAST: ColumnIO = _choose()  # what compute uses: `_Direct` if the probe passed, else PUBLIC

__all__ = ["FAST", "PUBLIC", "ColumnIO"]
