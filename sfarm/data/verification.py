"""`verify`: does a dataset on disk match its manifest, and is its content sane?

Checks the manifest against the files (present, sizes, sha256, rows, first/last ts), ts strictly
increasing and inside each partition's period, on the timeframe grid, OHLC sanity for candles,
and gaps between consecutive candles except those recorded as exchange-side by the miner
(`extra["exchange_gaps"]`). Files the manifest does not name are warnings: a killed writer
leaves them and the next append removes them.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sfarm.data.checks import (
    TS_RANGE,
    candle_problems,
    find_gaps,
    missing_candles,
    off_grid,
    parse_recorded_gaps,
    unexplained_gaps,
    within_range,
)
from sfarm.data.fsio import shared_lock
from sfarm.data.ids import parse_dataset_id
from sfarm.data.layout import (
    LOCK_NAME,
    MANIFEST_NAME,
    DatasetNotFound,
    check_dataset_id,
    dataset_dir,
    format_ts,
    is_partition_file,
    is_segment_file,
    is_temp_file,
    key_bounds,
    partition_key,
)
from sfarm.data.manifest import Manifest, PartitionEntry, check_segment, read_manifest_file
from sfarm.data.recovery import first_write_leftovers, unnamed_data_files
from sfarm.errors import RunError
from sfarm.timeframes import timeframe_ms

MAX_LISTED = 20  # problems of one kind listed one by one before the rest are summed up


@dataclass
class VerifyReport:
    dataset_id: str
    path: str
    node: str | None = None  # producer node for a mirror dataset
    rows: int = 0
    partitions: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # [first missing, next present)
    excused_gaps: int = 0  # gaps covered by the recorded exchange-side gaps

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["ok"] = self.ok
        document["gaps"] = [list(gap) for gap in self.gaps]
        return document


def verify(root: Path | str, dataset_id: str, *, mirror_of: str | None = None) -> VerifyReport:
    """Check one dataset; `report.ok` is False when anything is wrong (see `report.problems`).

    Writers of the dataset wait while it runs (it reads every file once).
    """
    dataset_id = check_dataset_id(dataset_id)
    directory = dataset_dir(root, dataset_id, mirror_of=mirror_of)
    report = VerifyReport(dataset_id=dataset_id, path=str(directory), node=mirror_of)
    with shared_lock(directory):
        _verify_locked(root, directory, dataset_id, report)
    return report


def _verify_locked(root: Path | str, directory: Path, dataset_id: str,
                   report: VerifyReport) -> None:
    try:
        manifest = read_manifest_file(directory)
    except RunError as error:
        report.problems.append(error.message)
        return
    if manifest is None:
        if directory.is_dir() and any(is_partition_file(n) for n in os.listdir(directory)):
            if first_write_leftovers(unnamed_data_files(directory),
                                     _writer_interrupted(directory)):
                report.warnings.append("no committed data yet: files of an interrupted first "
                                       "write (or of a lost manifest), moved to the root's "
                                       "quarantine/ by the next append, never deleted; "
                                       "--repair rebuilds the dataset from them instead")
            else:
                report.problems.append(f"{directory}: Parquet files but no {MANIFEST_NAME} "
                                       "(lost): appends refuse until --repair rebuilds it")
            return
        raise DatasetNotFound(f"no dataset {dataset_id} under {root}",
                              hint="`sfarm data ls --root DIR` lists the datasets of a root")
    report.rows = manifest.rows
    report.partitions = manifest.partition_count
    if manifest.dataset_id != dataset_id:
        report.problems.append(f"manifest names dataset {manifest.dataset_id}, not {dataset_id}")
    partitions = _check_index(directory, manifest, report)
    ts_parts, unreadable = [], []
    for entry in partitions:
        ts = _check_partition(directory, manifest, entry, report)
        if ts is None:
            unreadable.append(_period(entry))
        else:
            ts_parts.append(ts)
    all_ts = pl.concat(ts_parts) if ts_parts else pl.Series("ts", [], pl.Int64)
    _check_order(all_ts, report)
    _check_gaps(all_ts, manifest, unreadable, report)
    _check_stray_files(directory, manifest, partitions, report)


def _writer_interrupted(directory: Path) -> bool:
    """The writers' lock still holds the marker of a writer that has not finished."""
    try:
        return (directory / LOCK_NAME).stat().st_size > 0
    except FileNotFoundError:
        return False


def _problem(report: VerifyReport, message: str) -> None:
    if len(report.problems) < 5 * MAX_LISTED:
        report.problems.append(message)
    elif len(report.problems) == 5 * MAX_LISTED:
        report.problems.append("... more problems not listed")


def _check_index(directory: Path, manifest: Manifest,
                 report: VerifyReport) -> list[PartitionEntry]:
    partitions: list[PartitionEntry] = []
    for segment in manifest.segments:
        checked = check_segment(directory, segment)
        for problem in checked.problems:
            _problem(report, problem)
        if checked.entries is None:
            continue
        entries = checked.entries
        if (len(entries), sum(p.rows for p in entries)) != (segment.partitions, segment.rows):
            _problem(report, f"index segment {segment.file}: {len(entries)} partitions and "
                             f"{sum(p.rows for p in entries)} rows, manifest says "
                             f"{segment.partitions} and {segment.rows}")
        partitions.extend(entries)
    total = sum(p.rows for p in partitions)
    if total != manifest.rows:
        _problem(report, f"manifest says {manifest.rows} rows, its partitions hold {total}")
    firsts = [p.first_ts for p in partitions]
    lasts = [p.last_ts for p in partitions]
    if partitions and (min(firsts) != manifest.first_ts or max(lasts) != manifest.last_ts):
        _problem(report, f"manifest first/last ts {manifest.first_ts}/{manifest.last_ts} differ "
                         f"from its partitions' {min(firsts)}/{max(lasts)}")
    for entry in partitions:
        if not within_range(entry.first_ts, entry.last_ts):  # stored before appends checked
            _problem(report, f"partition {entry.file}: ts {format_ts(entry.first_ts)} to "
                             f"{format_ts(entry.last_ts)}, outside the range the store keeps "
                             f"({TS_RANGE})")
    _check_keys(manifest, partitions, report)
    return partitions


def _check_keys(manifest: Manifest, partitions: list[PartitionEntry],
                report: VerifyReport) -> None:
    """Each partition has the key the manifest's rule gives its rows (for `month+day`: no day
    left before the month of the last row, no month file at the live edge)."""
    last_ts = max((p.last_ts for p in partitions), default=None)
    for entry in partitions:
        expected = {partition_key(ts, manifest.partitioning, last_ts)
                    for ts in (entry.first_ts, entry.last_ts)}
        if expected != {entry.key}:
            _problem(report, f"partition {entry.file}: key {entry.key!r}, but the "
                             f"{manifest.partitioning} rule puts its rows in "
                             f"{' and '.join(sorted(expected))}")


def _period(entry: PartitionEntry) -> tuple[int, int]:
    """[start, end) of the partition's period; its rows' span when the key is malformed (a
    problem `_check_keys` reports)."""
    try:
        return key_bounds(entry.key)
    except ValueError:
        return entry.first_ts, entry.last_ts + 1


def _check_partition(directory: Path, manifest: Manifest, entry: PartitionEntry,
                     report: VerifyReport) -> pl.Series | None:
    path = directory / entry.file
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        _problem(report, f"partition {entry.file} is missing")
        return None
    except OSError as error:  # a directory in its place, no permission
        _problem(report, f"partition {entry.file} cannot be read: {error.strerror}")
        return None
    where = f"partition {entry.file}"
    if len(raw) != entry.bytes:
        _problem(report, f"{where}: {len(raw)} bytes, manifest says {entry.bytes}")
    if hashlib.sha256(raw).hexdigest() != entry.sha256:
        _problem(report, f"{where}: sha256 does not match the manifest (file changed or corrupt)")
        return None
    frame = pl.read_parquet(io.BytesIO(raw))
    if list(frame.columns) != list(manifest.columns):
        _problem(report, f"{where}: columns {frame.columns}, manifest says "
                         f"{list(manifest.columns)}")
    if "ts" not in frame.columns:
        return None
    ts = frame["ts"]
    if ts.null_count():
        _problem(report, f"{where}: {ts.null_count()} rows without ts")
        return None
    if frame.height != entry.rows:
        _problem(report, f"{where}: {frame.height} rows, manifest says {entry.rows}")
    if frame.height and (ts[0], ts[-1]) != (entry.first_ts, entry.last_ts):
        _problem(report, f"{where}: ts from {ts[0]} to {ts[-1]}, manifest says "
                         f"{entry.first_ts} to {entry.last_ts}")
    start, end = _period(entry)
    outside = frame.filter((pl.col("ts") < start) | (pl.col("ts") >= end)).height
    if outside:
        _problem(report, f"{where}: {outside} rows outside the period {entry.key}")
    timeframe = parse_dataset_id(manifest.dataset_id).timeframe
    if timeframe is not None:
        bad = off_grid(ts, timeframe)
        if bad.len():
            _problem(report, f"{where}: {bad.len()} ts not on the {timeframe} grid, first "
                             f"{bad[0]} ({format_ts(bad[0])})")
    if parse_dataset_id(manifest.dataset_id).kind == "candles":
        for message in candle_problems(frame, where):
            _problem(report, message)
    return ts


def _check_order(ts: pl.Series, report: VerifyReport) -> None:
    steps = ts.diff().drop_nulls()
    bad = int((steps <= 0).sum())
    if bad:
        first = int(ts.to_frame().with_columns(d=pl.col("ts").diff()).filter(
            pl.col("d") <= 0)["ts"][0])
        _problem(report, f"ts not strictly increasing at {bad} rows (repeated or out of order), "
                         f"first at {first} ({format_ts(first)})")


def _check_gaps(ts: pl.Series, manifest: Manifest, unreadable: list[tuple[int, int]],
                report: VerifyReport) -> None:
    ref = parse_dataset_id(manifest.dataset_id)
    if ref.timeframe is None or ts.len() < 2:
        return
    step = timeframe_ms(ref.timeframe)
    recorded, notes = parse_recorded_gaps(manifest.extra.get("exchange_gaps"))
    report.warnings.extend(notes)
    # A partition that could not be read is already a problem; the hole it leaves is not a gap.
    found = [(start, end) for start, end in find_gaps(ts, step)
             if not any(start < high and low < end for low, high in unreadable)]
    report.gaps = unexplained_gaps(found, recorded, step)
    report.excused_gaps = sum(1 for gap in found if not unexplained_gaps([gap], recorded, step))
    if ref.kind != "candles":
        # Indicator gaps follow their candles' (checked there): listed, not a problem here.
        return
    for start, end in report.gaps[:MAX_LISTED]:
        _problem(report, f"gap: {missing_candles((start, end), step)} {ref.timeframe} candles "
                         f"missing from {format_ts(start)} to before {format_ts(end)} "
                         "(not recorded as exchange-side)")
    if len(report.gaps) > MAX_LISTED:
        more = report.gaps[MAX_LISTED:]
        _problem(report, f"... and {len(more)} more gaps "
                         f"({sum(missing_candles(g, step) for g in more)} candles)")


def _check_stray_files(directory: Path, manifest: Manifest, partitions: list[PartitionEntry],
                       report: VerifyReport) -> None:
    named = {p.file for p in partitions} | {s.file for s in manifest.segments}
    stray = sorted(name for name in os.listdir(directory)
                   if (is_partition_file(name) or is_segment_file(name)) and name not in named)
    temps = sorted(name for name in os.listdir(directory) if is_temp_file(name))
    if stray:
        report.warnings.append(f"{len(stray)} files not in the manifest (left by an interrupted "
                               f"write, removed by the next append): {', '.join(stray[:5])}")
    if temps:
        report.warnings.append(f"{len(temps)} temp files of an interrupted write: "
                               f"{', '.join(temps[:5])}")
