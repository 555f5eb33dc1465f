"""Where a dataset lives on disk and how its files are named (pure path and time arithmetic).

On-disk format, version 1 (any Parquet reader can use it directly):

    <root>/data/<dataset id>/                 datasets this node produces
    <root>/mirror/<producer node>/<id>/       datasets pulled from other nodes, same format
        _manifest.json                        entry point: schema version, columns, first/last ts,
                                              rows, bytes, generation, "extra", and the index
                                              segments below (file, rows, first/last ts, sha256)
        _index.<segment>.g<N>.json            one segment of the partition list: per partition its
                                              file, key, rows, first/last ts, bytes, sha256
        <key>.g<N>.parquet                    one partition: rows sorted by `ts`, unique `ts`
        .lock                                 writers' flock (hidden: readers never look at it)

`<key>` is the partition's period in UTC: `2024-01-05` (by day, timeframes under 1h), `2024-01`
(by month, 1h up to 1d, and datasets without a timeframe), `2024` (by year, 1d and longer).
`g<N>` is the manifest generation that wrote the file: a partition is never rewritten in place,
a new version gets a new name and the manifest switches to it in one atomic rename. So after a
killed writer there may, until the next append, be a superseded `*.parquet` beside the current
one; a plain glob (`polars.scan_parquet("data/<id>/*.parquet")`, DuckDB
`read_parquet('data/<id>/*.parquet')`, `pandas.read_parquet(dir)`) reads every file, while
`sfarm.data.read` and any reader following the manifest's file names read exactly the dataset.
Temp files start with `.` so globs and pyarrow's directory discovery skip them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.errors import UsageError
from sfarm.timeframes import DAY_MS, HOUR_MS, UnknownTimeframe, timeframe_ms

Partitioning = Literal["day", "month", "year"]

MANIFEST_NAME = "_manifest.json"
LOCK_NAME = ".lock"
DATA_DIR = "data"
MIRROR_DIR = "mirror"

_KEY_FORMAT: dict[Partitioning, str] = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
_PARTITION_FILE = re.compile(r"^(?P<key>\d{4}(?:-\d{2}){0,2})\.g(?P<gen>\d+)\.parquet$")
_SEGMENT_FILE = re.compile(r"^_index\.(?P<segment>[\w-]+)\.g(?P<gen>\d+)\.json$")


class DatasetNotFound(UsageError):
    """No manifest for this dataset id under the root."""


def check_dataset_id(dataset_id: str) -> str:
    """Return the id normalised (no leading or trailing `/`); UsageError when it is not an id."""
    try:
        ref = parse_dataset_id(dataset_id)
    except BadDatasetId as error:
        raise UsageError(str(error)) from None
    if ref.timeframe is not None:
        try:
            timeframe_ms(ref.timeframe)
        except UnknownTimeframe as error:
            raise UsageError(f"dataset {dataset_id!r}: {error}") from None
    return dataset_id.strip("/")


def dataset_timeframe(dataset_id: str) -> str | None:
    """The timeframe named in the id (candles, indicators) or None (sessions)."""
    return parse_dataset_id(dataset_id).timeframe


def partitioning_for(dataset_id: str) -> Partitioning:
    """By day under 1h, by month from 1h to under 1d and without a timeframe, by year from 1d."""
    timeframe = dataset_timeframe(dataset_id)
    if timeframe is None:
        return "month"
    step = timeframe_ms(timeframe)
    if step < HOUR_MS:
        return "day"
    if step < DAY_MS:
        return "month"
    return "year"


def key_format(partitioning: Partitioning) -> str:
    """strftime format of partition keys (also valid for polars' `dt.strftime`)."""
    return _KEY_FORMAT[partitioning]


def partition_key(ts_ms: int, partitioning: Partitioning) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime(_KEY_FORMAT[partitioning])


def key_bounds(key: str, partitioning: Partitioning) -> tuple[int, int]:
    """[start, end) in ms of the period a partition key names."""
    start = datetime.strptime(key, _KEY_FORMAT[partitioning]).replace(tzinfo=UTC)
    if partitioning == "day":
        end_ms = _ms(start) + DAY_MS
    elif partitioning == "month":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end_ms = _ms(start.replace(year=year, month=month))
    else:
        end_ms = _ms(start.replace(year=start.year + 1))
    return _ms(start), end_ms


def segment_of(key: str, partitioning: Partitioning) -> str:
    """Index segment a partition belongs to: its year, or `all` for yearly partitions.

    Segments keep an append's manifest work bounded: a year of daily partitions is 366 entries
    however long the history.
    """
    return "all" if partitioning == "year" else key[:4]


def partition_file_name(key: str, generation: int) -> str:
    return f"{key}.g{generation}.parquet"


def segment_file_name(segment: str, generation: int) -> str:
    return f"_index.{segment}.g{generation}.json"


def is_partition_file(name: str) -> bool:
    return _PARTITION_FILE.match(name) is not None


def is_segment_file(name: str) -> bool:
    return _SEGMENT_FILE.match(name) is not None


def is_temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def temp_name_for(name: str, pid: int) -> str:
    return f".{name}.{pid}.tmp"


def dataset_dir(root: Path | str, dataset_id: str, *, mirror_of: str | None = None) -> Path:
    """`<root>/data/<id>`, or `<root>/mirror/<node>/<id>` for a dataset pulled from `node`."""
    dataset_id = check_dataset_id(dataset_id)
    base = Path(root) / DATA_DIR if mirror_of is None else Path(root) / MIRROR_DIR / mirror_of
    return base.joinpath(*dataset_id.split("/"))


def format_ts(ts_ms: int | None) -> str:
    """`2024-01-05 13:00` UTC (seconds only when not zero); `-` for None."""
    if ts_ms is None:
        return "-"
    moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
