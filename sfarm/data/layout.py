"""Where a dataset lives on disk and how its files are named (pure path and time arithmetic).

On-disk format, version 2 (any Parquet reader can use it directly):

    <root>/data/<dataset id>/                 datasets this node produces
    <root>/mirror/<producer node>/<id>/       datasets pulled from other nodes, same format
        _manifest.json                        entry point: schema version, partitioning, columns,
                                              first/last ts, rows, bytes, generation, "extra",
                                              and the index segments below (file, rows,
                                              first/last ts, sha256)
        _index.<segment>.g<N>.json            one segment of the partition list: per partition its
                                              file, key, rows, first/last ts, bytes, sha256
        <key>.g<N>.parquet                    one partition: rows sorted by `ts`, unique `ts`
        .lock                                 writers' flock (hidden: readers never look at it)
    <root>/quarantine/<id>/<UTC time>/        files moved aside, never deleted: damaged ones
                                              (`sfarm data verify --repair`), and data files a
                                              writer found without a manifest naming them

`<key>` is the partition's period in UTC, `2024-01-05` (a day), `2024-01` (a month) or `2024`
(a year); its shape says which. The manifest's `partitioning` gives the rule:

* `month+day` (timeframes under 1h, since version 2): one file per month for the months before
  the month of the dataset's last row, one file per day inside that month. Reads open few files
  (10 years of 1m candles: 120 months and at most 31 days) while an append at the live edge
  rewrites one day, not a month. When the last row enters a new month, the append that moves it
  merges the previous month's days into one month file.
* `month` (1h up to 1d, and datasets without a timeframe), `year` (1d and longer).
* `day`: every day its own file; the rule of version 1 for timeframes under 1h. Datasets written
  so keep it: their appends follow their manifest, and everything reads them unchanged.

The manifest's `schema_version` is the oldest layout version that describes the dataset: 1 for
the day, month and year rules, 2 for `month+day`, so an older sfarm reads what it can.

Partitions are written with LZ4 compression (version 1 wrote zstd: Parquet records the codec of
every file, so both read alike); LZ4 decodes about twice as fast, for files 17% (random walk)
to 50% (prices on a tick) larger.

`g<N>` is the manifest generation that wrote the file: a partition is never rewritten in place,
a new version gets a new name and the manifest switches to it in one atomic rename. So after a
killed writer there may, until the next append, be a superseded `*.parquet` beside the current
one; a plain glob (`polars.scan_parquet("data/<id>/*.parquet")`, DuckDB
`read_parquet('data/<id>/*.parquet')`, `pandas.read_parquet(dir)`) reads every file, while
`sfarm.data.read` and any reader following the manifest's file names read exactly the dataset.
Temp files start with `.` so globs and pyarrow's directory discovery skip them.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.errors import UsageError
from sfarm.timeframes import DAY_MS, HOUR_MS, UnknownTimeframe, timeframe_ms

Partitioning = Literal["day", "month", "year", "month+day"]
Period = Literal["day", "month", "year"]

MANIFEST_NAME = "_manifest.json"
LOCK_NAME = ".lock"
DATA_DIR = "data"
MIRROR_DIR = "mirror"
QUARANTINE_DIR = "quarantine"

_KEY_FORMAT: dict[Period, str] = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
_PERIOD_OF_KEY_LENGTH: dict[int, Period] = {10: "day", 7: "month", 4: "year"}
# (period of the closed partitions, period inside the live one): the same for one-period rules.
_PERIODS: dict[Partitioning, tuple[Period, Period]] = {
    "day": ("day", "day"), "month": ("month", "month"), "year": ("year", "year"),
    "month+day": ("month", "day"),
}
# Matched whole (`fullmatch`: `$` would let a trailing newline through) and ASCII only: these
# patterns are also what a name taken from a manifest, maybe a hostile producer's, must match.
_PARTITION_FILE = re.compile(r"(?P<key>\d{4}(?:-\d{2}){0,2})\.g(?P<gen>\d+)\.parquet", re.ASCII)
_SEGMENT_FILE = re.compile(r"_index\.(?P<segment>[\w-]+)\.g(?P<gen>\d+)\.json", re.ASCII)


class DatasetNotFound(UsageError):
    """No manifest for this dataset id under the root."""


@functools.lru_cache(maxsize=1024)  # a live step checks its ids a few times a dataset
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
    """The rule for a new dataset: months split by day at the live edge under 1h, by month from
    1h to under 1d and without a timeframe, by year from 1d."""
    timeframe = dataset_timeframe(dataset_id)
    if timeframe is None:
        return "month"
    step = timeframe_ms(timeframe)
    if step < HOUR_MS:
        return "month+day"
    if step < DAY_MS:
        return "month"
    return "year"


def periods(partitioning: Partitioning) -> tuple[Period, Period]:
    """(closed period, live period) of a rule; a one-period rule's period twice."""
    return _PERIODS[partitioning]


def tiers(partitioning: Partitioning) -> tuple[Period, Period] | None:
    """(closed period, live period) of a tiered rule such as `month+day`; None for one period."""
    closed, live = _PERIODS[partitioning]
    return None if closed == live else (closed, live)


def key_format(period: Period) -> str:
    """strftime format of partition keys (also valid for polars' `dt.strftime`)."""
    return _KEY_FORMAT[period]


def period_key(ts_ms: int, period: Period) -> str:
    """The key of the period (day, month, year) holding `ts_ms`."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime(_KEY_FORMAT[period])


def live_start(partitioning: Partitioning, last_ts: int | None) -> int | None:
    """Where the live period of a tiered rule begins (the start of the closed-period unit
    holding the dataset's last row): rows from there on go to live-period partitions. None for
    a rule with one period, or a dataset without rows."""
    tiered = tiers(partitioning)
    if tiered is None or last_ts is None:
        return None
    return key_bounds(period_key(last_ts, tiered[0]))[0]


def partition_key(ts_ms: int, partitioning: Partitioning, last_ts: int | None = None) -> str:
    """Key of the partition holding a row at `ts_ms` in a dataset whose last row is at
    `last_ts` (which matters only for tiered rules: closed period before its live start)."""
    closed, live = periods(partitioning)
    start = live_start(partitioning, last_ts)
    return period_key(ts_ms, closed if start is None or ts_ms < start else live)


def key_period(key: str) -> Period:
    """day, month or year, from the key's shape."""
    try:
        return _PERIOD_OF_KEY_LENGTH[len(key)]
    except KeyError:
        raise ValueError(f"not a partition key: {key!r}") from None


def key_bounds(key: str) -> tuple[int, int]:
    """[start, end) in ms of the period a partition key names."""
    period = key_period(key)
    start = datetime.strptime(key, _KEY_FORMAT[period]).replace(tzinfo=UTC)
    if period == "day":
        end_ms = _ms(start) + DAY_MS
    elif period == "month":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end_ms = _ms(start.replace(year=year, month=month))
    else:
        end_ms = _ms(start.replace(year=start.year + 1))
    return _ms(start), end_ms


def enclosing_keys(key: str) -> tuple[str, ...]:
    """The key and the keys of the longer periods holding it (`2024-01-05`, `2024-01`, `2024`):
    keys nest by prefix."""
    return tuple(key[:length] for length in (10, 7, 4) if length <= len(key))


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
    return _PARTITION_FILE.fullmatch(name) is not None


def is_segment_file(name: str) -> bool:
    return _SEGMENT_FILE.fullmatch(name) is not None


def file_generation(name: str) -> int | None:
    """The generation that wrote a partition or index segment file (`g<N>`); None for another
    name."""
    found = _PARTITION_FILE.fullmatch(name) or _SEGMENT_FILE.fullmatch(name)
    return int(found["gen"]) if found else None


def check_partition_file_name(name: str) -> str:
    """`name` if it is a partition file name of the store (`<key>.g<N>.parquet`: no `/`, no
    `..`, not hidden); ValueError otherwise. Every name a manifest gives is checked so: a
    dataset's files are only ever these names, inside its own directory."""
    if not is_partition_file(name):
        raise ValueError(f"{name!r} is not a partition file name (<key>.g<N>.parquet)")
    return name


def check_segment_file_name(name: str) -> str:
    """`name` if it is an index segment file name (`_index.<segment>.g<N>.json`); ValueError
    otherwise (see `check_partition_file_name`)."""
    if not is_segment_file(name):
        raise ValueError(f"{name!r} is not an index segment file name (_index.<segment>.g<N>.json)")
    return name


def is_temp_file(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def temp_prefix_for(name: str) -> str:
    """The start of the name of a temp file that becomes `name` (`.<name>.`; a unique part and
    `.tmp` follow: `is_temp_file` knows them all)."""
    return f".{name}."


def dataset_dir(root: Path | str, dataset_id: str, *, mirror_of: str | None = None) -> Path:
    """`<root>/data/<id>`, or `<root>/mirror/<node>/<id>` for a dataset pulled from `node`."""
    dataset_id = check_dataset_id(dataset_id)
    base = Path(root) / DATA_DIR if mirror_of is None else Path(root) / MIRROR_DIR / mirror_of
    return base.joinpath(*dataset_id.split("/"))


def quarantine_dir(root: Path | str, dataset_id: str, moment: datetime) -> Path:
    """`<root>/quarantine/<id>/<moment, UTC>`: where files of a dataset moved aside at `moment`
    go (outside `data/`: no glob, pull or listing of datasets meets them)."""
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return Path(root) / QUARANTINE_DIR / Path(*check_dataset_id(dataset_id).split("/")) / stamp


def format_ts(ts_ms: int | None) -> str:
    """`2024-01-05 13:00` UTC (seconds only when not zero); `-` for None."""
    if ts_ms is None:
        return "-"
    try:
        moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # outside years 1 to 9999: a bad value shown
        return _format_far_ts(ts_ms)
    # the year by hand: glibc's %Y drops its leading zeros (`999-01-01`)
    return f"{moment.year:04d}" + moment.strftime("-%m-%d %H:%M:%S" if moment.second
                                                  else "-%m-%d %H:%M")


def _format_far_ts(ts_ms: int) -> str:
    """`format_ts` of a ts beyond Python's dates, so a refusal still says which date it is:
    numpy's dates reach any int64 of ms (`0000-12-31 23:00`, `10000-01-01 00:00`)."""
    import numpy as np  # only for a bad value: not at every command's start

    try:
        text = str(np.datetime_as_string(np.datetime64(int(ts_ms), "ms"), unit="s"))
    except (ValueError, OverflowError):  # beyond int64
        text = "NaT"
    if text == "NaT":  # numpy's not-a-time is the smallest int64
        return f"ts {ts_ms} (out of range)"
    day, time = text.split("T")
    return f"{day} {time.removesuffix(':00')}"  # seconds only when not zero, as format_ts


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
