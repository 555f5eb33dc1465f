"""Pure frame logic of an append: shape a batch to the dataset's schema, drop what is already
stored, spot conflicting values, split rows by partition. No I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from sfarm.data.ids import DatasetKind
from sfarm.data.layout import Partitioning, key_bounds, partition_key
from sfarm.errors import UsageError

CANDLE_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
MAX_CONFLICTS_KEPT = 20  # conflicts kept with their values for the log; the rest are counted


@dataclass
class Conflict:
    """A stored row and a different incoming row with the same ts; the stored one is kept."""

    ts: int
    stored: dict[str, Any]
    incoming: dict[str, Any]


@dataclass
class Split:
    """An incoming batch checked against what is stored."""

    new_rows: pl.DataFrame
    skipped: int = 0  # already stored, same values
    conflicts: int = 0
    examples: list[Conflict] = field(default_factory=list)


def columns_of(frame: pl.DataFrame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.schema.items()}


_SIMPLE_DTYPES = {str(dtype): dtype for dtype in (
    pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64,
    pl.Float32, pl.Float64, pl.String, pl.Boolean, pl.Date, pl.Binary,
)}
_DATETIME = re.compile(r"^Datetime\(time_unit='(ms|us|ns)', time_zone=(None|'[^']*')\)$")


def dtype_from_name(name: str) -> pl.DataType | None:
    """Polars dtype from its `str()`, for the dtypes datasets use; None when not recognised."""
    if name in _SIMPLE_DTYPES:
        return _SIMPLE_DTYPES[name]()
    match = _DATETIME.match(name)
    if match:
        zone = None if match[2] == "None" else match[2].strip("'")
        return pl.Datetime(match[1], zone)  # type: ignore[arg-type]
    return None


def empty_frame(columns: dict[str, str]) -> pl.DataFrame:
    return pl.DataFrame(schema={n: dtype_from_name(d) or pl.String for n, d in columns.items()})


def normalize(frame: pl.DataFrame, dataset_id: str, kind: DatasetKind,
              stored: dict[str, str] | None) -> pl.DataFrame:
    """The batch with an Int64 `ts` first and the dataset's columns and dtypes, or UsageError."""
    where = f"append to {dataset_id}"
    if stored and columns_of(frame) == stored:
        # A producer's usual batch (the dataset's own columns, in order): nothing to reshape,
        # and no polars query to wake its threads for (most of a one-row append's CPU).
        if frame["ts"].null_count():
            raise UsageError(f"{where}: {frame['ts'].null_count()} rows have no ts")
        return frame
    if "ts" not in frame.columns:
        raise UsageError(f"{where}: the frame has no ts column (got {', '.join(frame.columns)})")
    frame = frame.with_columns(_ts_as_ms(frame["ts"], where))
    if frame["ts"].null_count():
        raise UsageError(f"{where}: {frame['ts'].null_count()} rows have no ts")
    if kind == "candles":
        missing = [c for c in CANDLE_COLUMNS if c not in frame.columns]
        unexpected = [c for c in frame.columns if c not in CANDLE_COLUMNS]
        if missing or unexpected:
            raise UsageError(f"{where}: candles have exactly the columns "
                             f"{', '.join(CANDLE_COLUMNS)}; missing {missing}, unexpected "
                             f"{unexpected}")
        frame = _cast(frame.select(CANDLE_COLUMNS), dict.fromkeys(CANDLE_COLUMNS[1:], pl.Float64),
                      where)
    elif kind == "indicators":
        others = [c for c in frame.columns if c != "ts"]
        frame = _cast(frame.select("ts", *others), dict.fromkeys(others, pl.Float64), where)
    else:
        frame = frame.select("ts", *[c for c in frame.columns if c != "ts"])
    if stored:
        frame = _conform(frame, stored, where)
    return frame


def _ts_as_ms(ts: pl.Series, where: str) -> pl.Series:
    if isinstance(ts.dtype, pl.Datetime):
        return ts.dt.epoch("ms").alias("ts")
    if ts.dtype.is_integer():
        return ts.cast(pl.Int64)
    raise UsageError(f"{where}: ts must hold integer milliseconds (or datetimes), got {ts.dtype}")


def _cast(frame: pl.DataFrame, dtypes: dict[str, Any], where: str) -> pl.DataFrame:
    try:
        return frame.cast(dtypes, strict=True)  # type: ignore[arg-type]
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as error:
        raise UsageError(f"{where}: columns must be numbers: {error}") from None


def _conform(frame: pl.DataFrame, stored: dict[str, str], where: str) -> pl.DataFrame:
    missing = sorted(set(stored) - set(frame.columns))
    unexpected = sorted(set(frame.columns) - set(stored))
    if missing or unexpected:
        raise UsageError(f"{where}: columns differ from the stored dataset: missing {missing}, "
                         f"unexpected {unexpected}")
    frame = frame.select(list(stored))
    casts = {name: dtype_from_name(dtype) for name, dtype in stored.items()
             if str(frame.schema[name]) != dtype}
    unknown = [name for name, dtype in casts.items() if dtype is None]
    if unknown:
        raise UsageError(f"{where}: dtypes of {unknown} differ from the stored "
                         f"{[stored[n] for n in unknown]}")
    return _cast(frame, casts, where) if casts else frame


def split_against(stored: pl.DataFrame, incoming: pl.DataFrame) -> Split:
    """Incoming rows (unique ts) whose ts is not in `stored`, and what overlapped. Both are
    sorted by ts."""
    if follows(stored, incoming):  # the live edge: no join needed
        return Split(new_rows=incoming)
    fresh = incoming.join(stored.select("ts"), on="ts", how="anti")
    if fresh.height == incoming.height:
        return Split(new_rows=fresh)
    overlap = incoming.join(stored, on="ts", how="inner", suffix="__stored")
    others = [c for c in incoming.columns if c != "ts"]
    if others:
        same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(f"{c}__stored")) for c in others)
    else:
        same = pl.lit(True)
    differing = overlap.filter(~same)
    examples = [
        Conflict(ts=row["ts"], stored={c: row[f"{c}__stored"] for c in others},
                 incoming={c: row[c] for c in others})
        for row in differing.head(MAX_CONFLICTS_KEPT).iter_rows(named=True)
    ]
    return Split(new_rows=fresh, skipped=overlap.height - differing.height,
                 conflicts=differing.height, examples=examples)


def follows(stored: pl.DataFrame, incoming: pl.DataFrame) -> bool:
    """Every incoming row after the last stored one (both sorted by ts)."""
    return not (stored.height and incoming.height) or incoming["ts"][0] > stored["ts"][-1]


def merge_sorted(stored: pl.DataFrame, new_rows: pl.DataFrame) -> pl.DataFrame:
    """The rows of both (sorted, no ts in both), sorted by ts; a plain concatenation when the
    new rows follow the stored ones, as a live append's do."""
    if follows(stored, new_rows):
        return flagged_sorted(stored.vstack(new_rows))  # chunks linked, no copy, no query
    return pl.concat([stored, new_rows]).sort("ts")


def flagged_sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` (sorted by ts) with its ts flagged sorted: the flag set on the column itself,
    not through a polars query (a query wakes polars' threads: ~50 us for a one-row frame)."""
    flagged = frame.clone()  # the caller's frame keeps its columns
    flagged.replace_column(flagged.get_column_index("ts"), frame["ts"].set_sorted())
    return flagged


def dedupe_batch(frame: pl.DataFrame) -> tuple[pl.DataFrame, Split]:
    """Sort by ts and keep the first row of each ts; later duplicates are skipped or conflicts."""
    if strictly_increasing(frame["ts"]):
        # The usual batch (a page of candles, a history of indicator rows): one pass over ts
        # instead of a sort and a hash of every ts (7.8 s of a 1e7-row append).
        return flagged_sorted(frame), Split(new_rows=frame.clear())
    frame = frame.sort("ts", maintain_order=True)
    first = frame["ts"].is_first_distinct()
    if first.all():
        return frame, Split(new_rows=frame.clear())
    unique = frame.filter(first)
    duplicates = split_against(unique, frame.filter(~first))
    return unique, duplicates


def strictly_increasing(ts: pl.Series) -> bool:
    """Each ts greater than the one before (no nulls: `normalize` refuses them)."""
    values = ts.to_numpy()
    return bool(np.all(values[1:] > values[:-1]))


def split_by_partition(frame: pl.DataFrame, partitioning: Partitioning,
                       last_ts: int | None = None) -> dict[str, pl.DataFrame]:
    """Rows (sorted by ts, unique) grouped by partition key (`2024-01-05`, `2024-01`, `2024`),
    for a dataset whose last row will be at `last_ts` (tiered rules split the live period
    finer). Each group is a slice of `frame`, found by a binary search per partition: a
    partition's rows are contiguous once sorted, so no key is computed per row."""
    ts = frame["ts"].to_numpy()
    groups: dict[str, pl.DataFrame] = {}
    first = 0
    while first < len(ts):
        key = partition_key(int(ts[first]), partitioning, last_ts)
        # A closed period ends at or before the live start (both fall on its boundaries).
        stop = int(np.searchsorted(ts, key_bounds(key)[1], side="left"))
        groups[key] = frame.slice(first, stop - first)
        first = stop
    return groups
