"""`repair`: the way back from a damaged dataset (`sfarm data verify --repair`).

Under the writer lock: every partition the index names (or, when the manifest or an index
segment is unreadable, every partition file in the directory) is checked; the damaged and
unreadable ones are moved to `<root>/quarantine/<id>/<time>/` (never deleted), and the readable
rows are committed anew as one consistent version (every partition rewritten, generation past
any on disk, manifest last), so readers, appends and the miner work again; the miner then
fetches the holes. The report says what was lost: which files, their ranges and rows, and where
they went.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sfarm.data import frames
from sfarm.data.damage import PARQUET_ERRORS, move_aside, new_quarantine
from sfarm.data.fsio import WriterLock, make_private_dirs, remove_quietly, write_atomic
from sfarm.data.ids import parse_dataset_id
from sfarm.data.layout import (
    MANIFEST_NAME,
    check_dataset_id,
    dataset_dir,
    file_generation,
    is_partition_file,
    is_segment_file,
    is_temp_file,
    key_bounds,
    partitioning_for,
)
from sfarm.data.manifest import (
    CorruptIndex,
    Manifest,
    PartitionEntry,
    check_segment,
    new_manifest,
    read_manifest_file,
)
from sfarm.data.reader import dataset_not_found
from sfarm.data.recovery import sweep, unnamed_data_files
from sfarm.data.store import rewrite


@dataclass(frozen=True)
class LostFile:
    """A file the repair took out of the dataset (moved aside, or already gone)."""

    file: str
    reason: str
    rows: int | None  # as the index said; None when no readable index named the file
    first_ts: int  # the span it held (inclusive): its rows' as indexed, else its period's
    last_ts: int
    moved_to: str | None  # None: it was missing


@dataclass
class RepairReport:
    dataset_id: str
    path: str
    repaired: bool = False  # False: nothing was damaged, nothing changed
    quarantine: str | None = None  # where the files went
    rows_before: int | None = None  # the index's count; None when it was unreadable
    rows_after: int = 0
    generation: int | None = None  # of the rewritten version
    lost: list[LostFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_lost(self) -> int | None:
        return None if self.rows_before is None else max(0, self.rows_before - self.rows_after)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["rows_lost"] = self.rows_lost
        return document


@dataclass
class _Index:
    """What a dataset's index says, and what of it is damaged."""

    manifest: Manifest | None
    entries: list[PartitionEntry]
    damage: list[str]  # why the index cannot be trusted (empty: it can)
    bad_files: list[str]  # index files to move aside

    @property
    def intact(self) -> bool:
        return self.manifest is not None and not self.damage


def repair(root: Path | str, dataset_id: str) -> RepairReport:
    """Mend the dataset `dataset_id` of `root` (own data only: a mirror is pulled again).

    Nothing changes when nothing is damaged. Raises DatasetNotFound when the directory holds
    neither a manifest nor data files.
    """
    dataset_id = check_dataset_id(dataset_id)
    directory = dataset_dir(root, dataset_id)
    if not directory.is_dir():
        raise dataset_not_found(root, dataset_id, None)
    report = RepairReport(dataset_id=dataset_id, path=str(directory))
    with WriterLock(directory) as lock:
        index = _read_index(directory)
        if index.manifest is None and not index.damage and not unnamed_data_files(directory):
            lock.mark_finished()
            raise dataset_not_found(root, dataset_id, None)
        if lock.interrupted and index.intact:  # a killed writer's leftovers, proven so
            sweep(directory, index.manifest)
        _repair_locked(root, directory, dataset_id, index, report)
        for name in os.listdir(directory):  # a killed writer's temp files: always leftovers
            if is_temp_file(name):
                remove_quietly(directory / name)
        lock.mark_finished()
    return report


def _repair_locked(root: Path | str, directory: Path, dataset_id: str, index: _Index,
                   report: RepairReport) -> None:
    manifest = index.manifest
    report.rows_before = manifest.rows if index.intact and manifest else None
    if index.intact:
        candidates = index.entries
    else:
        report.notes.extend(index.damage or [f"no {MANIFEST_NAME} names the data files"])
        report.notes.append("the index cannot be trusted: rebuilt from the partition files "
                            "in the directory")
        if manifest is None:
            report.notes.append('the manifest\'s "extra" (the exchange-side gaps the miner '
                                "recorded) is lost with it")
        candidates = [_unindexed(name) for name in unnamed_data_files(directory)
                      if is_partition_file(name)]
    columns = manifest.columns if manifest and manifest.columns else _newest_columns(
        directory, candidates)
    good: list[tuple[PartitionEntry, pl.DataFrame]] = []
    bad: list[tuple[PartitionEntry, str]] = []
    for entry in candidates:
        frame, reason = _check_file(directory, entry, columns, indexed=index.intact)
        if frame is None:
            bad.append((entry, reason))
        else:
            good.append((entry, frame))
    if index.intact and not bad and manifest is not None and _consistent(manifest, good):
        report.rows_after = manifest.rows
        return
    quarantine = new_quarantine(root, dataset_id)
    missing = {e.file for e, _ in bad if not (directory / e.file).exists()}
    moved = move_aside(directory, [e.file for e, _ in bad if e.file not in missing]
                       + [name for name in index.bad_files if name != MANIFEST_NAME], quarantine)
    if MANIFEST_NAME in index.bad_files:
        # Copied, not moved: a dataset's manifest is only ever replaced (by the commit below),
        # never absent, so `locate` and snapshots never see the dataset vanish.
        make_private_dirs(quarantine)
        write_atomic(quarantine, MANIFEST_NAME, (directory / MANIFEST_NAME).read_bytes())
        moved.append(MANIFEST_NAME)
    report.lost = [LostFile(entry.file, reason, entry.rows if index.intact else None,
                            *_span(entry, index.intact),
                            None if entry.file in missing else str(quarantine / entry.file))
                   for entry, reason in bad]
    if moved:
        report.quarantine = str(quarantine)
    committed = _commit_rows(directory, dataset_id, manifest, index, columns, good)
    report.repaired = True
    report.rows_after = committed.rows
    report.generation = committed.generation


def _commit_rows(directory: Path, dataset_id: str, manifest: Manifest | None, index: _Index,
                 columns: dict[str, str],
                 good: list[tuple[PartitionEntry, pl.DataFrame]]) -> Manifest:
    """The readable rows, one per ts (the newest file's, as a later version of a partition
    holds every row of an earlier one), committed as the dataset's new version."""
    if good:
        tagged = [frame.with_columns(pl.lit(_generation(entry.file)).alias("__generation"))
                  for entry, frame in good]
        rows = (pl.concat(tagged).sort(["ts", "__generation"], descending=[False, True])
                .unique("ts", keep="first", maintain_order=True).drop("__generation"))
    else:
        rows = frames.empty_frame(columns)
    if index.intact and manifest is not None:
        template = manifest
    else:
        template = new_manifest(dataset_id, partitioning_for(dataset_id),
                                parse_dataset_id(dataset_id).timeframe, columns)
        if manifest is not None:  # its segments were damaged: its own fields still hold
            template = template.model_copy(update={"partitioning": manifest.partitioning,
                                                   "extra": manifest.extra})
    template = template.model_copy(update={"columns": columns})
    on_disk = [name for name in os.listdir(directory)
               if is_partition_file(name) or is_segment_file(name)]
    generation = max([_generation(name) for name in on_disk]
                     + [manifest.generation if manifest else 0]) + 1
    retired = sorted(name for name in on_disk if name not in index.bad_files)
    return rewrite(directory, dataset_id, template, rows, generation, retired)


def _read_index(directory: Path) -> _Index:
    try:
        manifest = read_manifest_file(directory)
    except CorruptIndex as error:
        return _Index(None, [], [error.message], [MANIFEST_NAME])
    if manifest is None:
        return _Index(None, [], [], [])
    entries: list[PartitionEntry] = []
    damage: list[str] = []
    bad_files: list[str] = []
    for segment in manifest.segments:
        checked = check_segment(directory, segment)
        if checked.problems:  # its partitions are not trusted: the repair rebuilds from files
            damage.append(checked.problems[0])
            if checked.corrupt:
                bad_files.append(segment.file)
            continue
        entries.extend(checked.entries or [])
    return _Index(manifest, entries, damage, bad_files)


def _unindexed(name: str) -> PartitionEntry:
    """An entry for a partition file no readable index describes: its key from its name."""
    key = name.split(".g", 1)[0]
    return PartitionEntry(key=key, file=name, rows=0, first_ts=0, last_ts=0, bytes=0,
                          sha256="")


def _generation(name: str) -> int:
    return file_generation(name) or 0


def _newest_columns(directory: Path, candidates: list[PartitionEntry]) -> dict[str, str]:
    """The columns of the newest readable partition (the reference when no manifest says)."""
    for entry in sorted(candidates, key=lambda e: _generation(e.file), reverse=True):
        path = directory / entry.file
        if not path.is_file():  # polars would read a directory in its place as a dataset
            continue
        try:
            return frames.columns_of(pl.read_parquet(path))
        except PARQUET_ERRORS:  # FileNotFoundError is an OSError
            continue
    return {}


def _check_file(directory: Path, entry: PartitionEntry, columns: dict[str, str], *,
                indexed: bool) -> tuple[pl.DataFrame | None, str]:
    """The partition's rows, or None and why it cannot be kept. An indexed file must match
    its entry byte for byte; every file must be Parquet with the dataset's columns, its ts
    strictly increasing inside its period."""
    try:
        raw = (directory / entry.file).read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as error:  # a directory in its place, no permission: as damaged as garbage
        return None, f"cannot be read: {error.strerror or error}"
    if indexed and (len(raw) != entry.bytes
                    or hashlib.sha256(raw).hexdigest() != entry.sha256):
        return None, (f"{len(raw)} bytes, sha256 does not match the index (the index says "
                      f"{entry.bytes} bytes)")
    try:
        frame = pl.read_parquet(io.BytesIO(raw))
    except PARQUET_ERRORS as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return None, f"not readable as Parquet ({first or type(error).__name__})"
    if frames.columns_of(frame) != columns or "ts" not in frame.columns:
        return None, f"columns {frames.columns_of(frame)} differ from the dataset's {columns}"
    ts = frame["ts"]
    try:
        start, end = key_bounds(entry.key)
    except ValueError:  # a name of the store's shape, but no real period (2024-13)
        return None, f"{entry.key!r} is not a period"
    if ts.null_count() or (ts.len() > 1 and not bool((ts.diff().drop_nulls() > 0).all())) \
            or (ts.len() and (ts[0] < start or ts[-1] >= end)):
        return None, "rows out of order, repeated or outside the file's period"
    return frame, ""


def _consistent(manifest: Manifest, good: list[tuple[PartitionEntry, pl.DataFrame]]) -> bool:
    """The manifest's totals agree with its partitions (else the repair rewrites it)."""
    entries = [entry for entry, _ in good]
    if not entries:
        return manifest.rows == 0
    return (sum(e.rows for e in entries) == manifest.rows
            and min(e.first_ts for e in entries) == manifest.first_ts
            and max(e.last_ts for e in entries) == manifest.last_ts
            and all(frame.height == e.rows for e, frame in good))


def _span(entry: PartitionEntry, indexed: bool) -> tuple[int, int]:
    """The rows' first and last ts as indexed, else the first and last ms of its period."""
    if indexed:
        return entry.first_ts, entry.last_ts
    try:
        start, end = key_bounds(entry.key)
    except ValueError:
        return 0, 0
    return start, end - 1
