"""`import_csv`: candle archives (exchange bulk dumps, charting-tool exports) into a dataset.

Accepted: a header with `ts` (epoch seconds, ms, us or ns, told apart by magnitude) or
`timestamp`/`open_time`/`time`/`datetime`/`date` (epoch numbers or ISO 8601 strings, UTC when no
offset is given), plus open, high, low, close, volume; names case-insensitive, other columns
ignored; `,`, `;` or tab separated. A file without a header whose first line is all numbers is
read as Binance's kline dump: open time, open, high, low, close, volume, then ignored columns.
Rows are checked like mined candles (the range of ts the store keeps, grid, OHLC sanity) before
anything is written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from sfarm.data.checks import (
    END_TS,
    FIRST_TS,
    find_gaps,
    missing_candles,
    off_grid_expr,
    out_of_range_expr,
    value_rules,
)
from sfarm.data.ids import parse_dataset_id
from sfarm.data.layout import check_dataset_id, format_ts
from sfarm.data.reader import load_manifest
from sfarm.data.store import append
from sfarm.errors import UsageError
from sfarm.markets import BadMarket, is_market
from sfarm.timeframes import timeframe_ms

TIME_COLUMNS = ("ts", "timestamp", "open_time", "time", "datetime", "date")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
MAX_REPORTED = 10  # bad rows quoted in the error message


@dataclass(frozen=True)
class ImportResult:
    file: str
    dataset_id: str
    rows_read: int
    rows_added: int
    rows_skipped: int  # already stored, same values
    conflicts: int  # already stored with other values: kept, logged
    gaps: int  # stretches of missing candles it leaves, in the file or beside the stored ones
    missing: int  # candles missing in them
    first_ts: int | None  # of the file's candles
    last_ts: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_csv(path: Path | str, root: Path | str, dataset_id: str, *,
               allow_gaps: bool = False) -> ImportResult:
    """Check every row of the CSV file and the spacing of its candles (refused when it is not
    the dataset's timeframe, or when candles are missing unless `allow_gaps`), then append its
    candles to the dataset."""
    path = Path(path)
    dataset_id = check_dataset_id(dataset_id)
    ref = parse_dataset_id(dataset_id)
    if ref.kind != "candles" or ref.timeframe is None:
        raise UsageError(f"import {path}: {dataset_id} is not a candles dataset",
                         hint="use an id like candles/binance/BTC-USDT/1m")
    if not is_market(ref.market or ""):  # as `sfarm backtest --market` and the inventory take it
        raise UsageError(f"import {path}: the market of {dataset_id} is not one: "
                         f"{BadMarket(ref.market)}",
                         hint="use an id like candles/binance/BTC-USDT/1m (BASE-QUOTE)")
    candles = read_candles_csv(path, ref.timeframe)
    step = timeframe_ms(ref.timeframe)
    _check_spacing(path, candles["ts"], ref.timeframe)
    gaps = sorted(find_gaps(candles["ts"], step)
                  + _holes_beside_stored(root, dataset_id, candles["ts"], step))
    if gaps and not allow_gaps:
        raise _missing_candles(path, gaps, ref.timeframe)
    result = append(root, dataset_id, candles)
    return ImportResult(
        file=str(path), dataset_id=dataset_id, rows_read=candles.height,
        rows_added=result.rows_added, rows_skipped=result.rows_skipped,
        conflicts=result.conflicts, gaps=len(gaps),
        missing=sum(missing_candles(gap, step) for gap in gaps),
        first_ts=candles["ts"].min() if candles.height else None,  # type: ignore[arg-type]
        last_ts=candles["ts"].max() if candles.height else None,  # type: ignore[arg-type]
    )


def read_candles_csv(path: Path, timeframe: str) -> pl.DataFrame:
    """The file's candles (ts, open, high, low, close, volume), sorted, or UsageError naming the
    file, the lines and what is wrong with them."""
    try:
        first_line = _first_line(path)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    separator = max((",", ";", "\t"), key=first_line.count)
    headerless = _all_numbers(first_line.split(separator))
    try:
        raw = pl.read_csv(path, separator=separator, has_header=not headerless,
                          infer_schema=False, truncate_ragged_lines=True)
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise UsageError(f"{path}: not a readable CSV file: {error}") from None
    first_data_line = 1 if headerless else 2
    raw = raw.with_row_index("line", offset=first_data_line)
    columns = _pick_columns(raw, path, headerless)
    raw = raw.select(pl.col("line"), *[pl.col(src).str.strip_chars().alias(dst)
                                       for dst, src in columns.items()])
    raw = raw.filter(~pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == "")
                                        for c in columns))  # blank lines
    frame = raw.with_columns(ts=_parse_time(raw["time"], raw["line"], path),
                             **{c: pl.col(c).cast(pl.Float64, strict=False)
                                for c in VALUE_COLUMNS})
    _check_rows(raw, frame, timeframe, path)
    return frame.select("ts", *VALUE_COLUMNS).unique("ts", keep="first").sort("ts")


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        for line in handle:
            if line.strip():
                return line.strip()
    raise UsageError(f"{path}: the file is empty")


def _all_numbers(fields: list[str]) -> bool:
    try:
        for value in fields:
            float(value)
    except ValueError:
        return False
    return True


def _pick_columns(raw: pl.DataFrame, path: Path, headerless: bool) -> dict[str, str]:
    """Output name -> source column, for `time` and the five values."""
    names = [c for c in raw.columns if c != "line"]
    if headerless:
        if len(names) < 6:
            raise UsageError(f"{path}: a file without a header needs at least 6 columns "
                             "(open time, open, high, low, close, volume)")
        return dict(zip(("time", *VALUE_COLUMNS), names[:6], strict=True))
    by_lower = {name.strip().lstrip("\ufeff").lower(): name for name in names}
    time_column = next((by_lower[n] for n in TIME_COLUMNS if n in by_lower), None)
    missing = [n for n in VALUE_COLUMNS if n not in by_lower]
    if time_column is None or missing:
        need = ([f"one of {'/'.join(TIME_COLUMNS)}"] if time_column is None else []) + missing
        raise UsageError(f"{path}: line 1: missing columns {', '.join(need)} "
                         f"(found {', '.join(names)})",
                         hint="headers are case-insensitive; extra columns are ignored")
    return {"time": time_column, **{n: by_lower[n] for n in VALUE_COLUMNS}}


def _parse_time(text: pl.Series, lines: pl.Series, path: Path) -> pl.Series:
    """Epoch numbers (unit told by magnitude, for the whole file) or ISO 8601 strings -> ms."""
    numbers = text.cast(pl.Float64, strict=False)
    if numbers.null_count() == text.null_count():
        largest = float(numbers.abs().max() or 0.0)  # type: ignore[arg-type]
        scale = 1e3 if largest < 1e11 else 1.0 if largest < 1e14 else 1e-3 if largest < 1e17 \
            else 1e-6  # seconds, ms, us, ns
        # null beyond int64 (inf, 1e30): "time not understood", like an unreadable date
        return (numbers * scale).round(0).cast(pl.Int64, strict=False).alias("ts")
    parsed = text.str.to_datetime(time_unit="ms", time_zone="UTC", strict=False)
    failed = parsed.is_null() & text.is_not_null()
    if failed.any():
        # polars infers one format for the whole column; rows in other ISO forms go to Python.
        fixed = [_iso_ms(value) for value in text.filter(failed)]
        parsed = parsed.dt.epoch("ms").scatter(failed.arg_true(), fixed)
        return parsed.alias("ts")
    return parsed.dt.epoch("ms").alias("ts")


def _iso_ms(value: str) -> int | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def _check_spacing(path: Path, ts: pl.Series, timeframe: str) -> None:
    """A file of another timeframe (its candles further apart than the dataset's) is refused."""
    if ts.len() < 2:
        return
    spacing = int(ts.diff().drop_nulls().median())  # type: ignore[arg-type]
    if spacing != timeframe_ms(timeframe):
        raise UsageError(
            f"{path}: its candles are {_duration(spacing)} apart (the median), but the "
            f"dataset's timeframe is {timeframe}: nothing imported",
            hint="import it into a dataset of its own timeframe (--id candles/X/M/<tf>)")


def _holes_beside_stored(root: Path | str, dataset_id: str, ts: pl.Series,
                         step: int) -> list[tuple[int, int]]:
    """The gaps the file would leave beside the candles already stored: between their last
    and its first, or its last and their first (as `find_gaps`: [first missing, next open))."""
    manifest = load_manifest(root, dataset_id, with_partitions=False)
    if manifest is None or manifest.first_ts is None or manifest.last_ts is None or ts.len() == 0:
        return []
    first, last = int(ts.min()), int(ts.max())  # type: ignore[arg-type]
    holes = []
    if first > manifest.last_ts + step:
        holes.append((manifest.last_ts + step, first))
    if last + step < manifest.first_ts:
        holes.append((last + step, manifest.first_ts))
    return holes


def _missing_candles(path: Path, gaps: list[tuple[int, int]], timeframe: str) -> UsageError:
    """Candles missing inside the file or beside the stored ones: refused with where (accepted
    with --allow-gaps)."""
    step = timeframe_ms(timeframe)
    missing = sum(missing_candles(gap, step) for gap in gaps)
    # A gap is [first missing open, next stored open): said from the candle before it.
    quoted = [f"after {format_ts(start - step)}: {missing_candles((start, end), step):,} "
              f"candles missing, until {format_ts(end)}" for start, end in gaps[:MAX_REPORTED]]
    more = f"; and {len(gaps) - MAX_REPORTED} more" if len(gaps) > MAX_REPORTED else ""
    return UsageError(f"{path}: {len(gaps)} gaps, {missing:,} {timeframe} candles missing, "
                      "nothing imported:\n  " + "\n  ".join(quoted) + more,
                      hint="pass --allow-gaps to import it with the holes (sfarm data verify "
                           "will list them), or fill them first")


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms} ms"


def _check_rows(raw: pl.DataFrame, frame: pl.DataFrame, timeframe: str, path: Path) -> None:
    rules: list[tuple[str, pl.Expr]] = [("no time value", pl.col("time").is_null())]
    rules.append(("time not understood (epoch number or ISO 8601 expected)",
                  pl.col("time").is_not_null() & pl.col("ts").is_null()))
    for column in VALUE_COLUMNS:
        rules.append((f"{column} is not a number", pl.col(f"{column}_text").is_not_null()
                      & pl.col(column).is_null()))
        rules.append((f"{column} is missing", pl.col(f"{column}_text").is_null()))
    # The store refuses these too (sfarm.data.store); here each is named with its line.
    rules.append((f"time before {format_ts(FIRST_TS)} or from {format_ts(END_TS)} UTC on",
                  out_of_range_expr().fill_null(False)))
    rules.append((f"not a {timeframe} candle open", off_grid_expr(timeframe).fill_null(False)))
    rules.extend(value_rules())  # missing values: per column, above
    rules.append(("ts repeated with other values",
                  (pl.struct(*VALUE_COLUMNS).n_unique().over("ts") > 1).fill_null(False)))
    checked = frame.with_columns(
        **{f"{c}_text": raw[c] for c in VALUE_COLUMNS}, time=raw["time"])
    bad_rows = checked.with_columns(
        problem=pl.concat_str([pl.when(bad).then(pl.lit(what)) for what, bad in rules],
                              separator="; ", ignore_nulls=True),
    ).filter(pl.col("problem") != "")
    if bad_rows.height == 0:
        return
    quoted = [f"line {row['line']}: {row['problem']} ({_describe(row)})"
              for row in bad_rows.head(MAX_REPORTED).iter_rows(named=True)]
    more = f"; and {bad_rows.height - MAX_REPORTED} more" if bad_rows.height > MAX_REPORTED else ""
    raise UsageError(f"{path}: {bad_rows.height} bad rows, nothing imported:\n  "
                     + "\n  ".join(quoted) + more,
                     hint="fix or drop those lines; sfarm data verify checks the same rules")


def _describe(row: dict[str, Any]) -> str:
    when = format_ts(row["ts"]) if row["ts"] is not None else repr(row["time"])
    values = " ".join(f"{c}={row[f'{c}_text']}" for c in VALUE_COLUMNS)
    return f"{when} {values}"
