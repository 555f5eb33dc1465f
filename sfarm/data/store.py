"""Appending datasets: the write side of the store (reading is `sfarm.data.reader`).

An append, under the dataset's writer lock, writes a new version of each partition its rows fall
in (and, under the `month+day` rule, one file for the month its last row has just left, in place
of that month's days), then the index segments of those partitions, then `_manifest.json` (the
commit), then removes the superseded files; the files are written and fsynced by a pool of threads
(`DurableBatch`), so their fsyncs overlap each other and the encoding, and `append_many`
commits several datasets at the cost of about one. This module decides what an append writes;
the locks, staging and publishing of the commit are `sfarm.data.commit`'s. A writer killed at
any point leaves the previous manifest intact and every file it names untouched; the next writer
sweeps the leftovers. So does one the machine refuses (a full disk, a read-only directory): it
raises a `StorageError` that says where and what to do (sfarm.data.fsio).
`relayout` rewrites a whole dataset under the current rule the same way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import numpy as np
import polars as pl

from sfarm.data import frames
from sfarm.data.checks import TS_RANGE, grid_offset, off_grid, out_of_range, within_range
from sfarm.data.commit import Output, Staged, lock_in_order, publish, stage_commit, stage_each
from sfarm.data.damage import DamagedDataset, damage_reported, damaged, new_quarantine
from sfarm.data.fsio import DurableBatch, WriterLock, storage_errors
from sfarm.data.ids import parse_dataset_id
from sfarm.data.layout import (
    MANIFEST_NAME,
    check_dataset_id,
    dataset_dir,
    format_ts,
    partitioning_for,
)
from sfarm.data.manifest import (
    Manifest,
    check_partition_files,
    new_manifest,
    read_manifest_file,
    read_segment_file,
)
from sfarm.data.partition_writes import Tally, write_partitions
from sfarm.data.reader import dataset_not_found
from sfarm.data.recovery import (
    first_write_leftovers,
    referenced_files,
    sweep,
    unnamed_data_files,
)
from sfarm.errors import UsageError
from sfarm.timeframes import timeframe_ms

log = logging.getLogger("sfarm.data")

# Rows of a group below which its datasets are staged one after the other in the caller's
# thread (a live step's few rows cost less than starting threads and passing the GIL between
# them on a loaded machine), their partitions, when there are several datasets, encoded in the
# batch's threads once all are staged (sfarm.data.partition_writes).
SMALL_GROUP_ROWS: Final = 10_000


@dataclass(frozen=True)
class AppendResult:
    rows_added: int
    rows_skipped: int  # already stored with the same values
    conflicts: int  # already stored with different values: logged, stored values kept
    last_ts: int | None  # the dataset's last ts after the append


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _refusals_named(action: str) -> Callable[[Callable[Concatenate[Path | str, str, _P], _R]],
                                             Callable[Concatenate[Path | str, str, _P], _R]]:
    """Have a write of (root, dataset_id, ...) raise a StorageError naming the dataset's
    directory when the machine refuses it (sfarm.data.fsio.storage_errors)."""
    def decorate(write: Callable[Concatenate[Path | str, str, _P], _R]
                 ) -> Callable[Concatenate[Path | str, str, _P], _R]:
        @functools.wraps(write)
        def wrapper(root: Path | str, dataset_id: str, /, *args: _P.args,
                    **kwargs: _P.kwargs) -> _R:
            directory = dataset_dir(root, check_dataset_id(dataset_id))
            with storage_errors(directory, f"{action} {dataset_id}"):
                return write(root, dataset_id, *args, **kwargs)
        return wrapper
    return decorate


# ---- appending ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Append:
    """One dataset's rows, and its manifest's new "extra" keys, in `append_many`."""

    dataset_id: str
    frame: pl.DataFrame
    extra: dict[str, Any] | None = None


def append(root: Path | str, dataset_id: str, frame: pl.DataFrame, *,
           extra: dict[str, Any] | None = None) -> AppendResult:
    """Store the rows of `frame` whose ts is not stored yet, in one atomic commit.

    A row whose ts is stored with other values is a conflict: logged, counted, not stored.
    The top-level keys of `extra` replace those of the manifest's "extra" object in the same
    commit, so a producer's resume state never disagrees with its rows. Writers of one dataset
    take turns (flock); readers never wait.

    DamagedDataset when a file it must read is missing or unreadable, or when data files lie
    there without a manifest naming them (a lost manifest: `sfarm data verify --repair`).
    """
    return append_many(root, [Append(dataset_id, frame, extra)])[0]


def append_many(root: Path | str, appends: Sequence[Append]) -> list[AppendResult]:
    """`append` to several datasets at once (results in the order of `appends`).

    Each dataset still commits alone: its own manifest renamed into place, so a reader, or a
    writer after a crash, sees each dataset as before or as after its append. What the group
    shares is the waiting for the disk: the files of all its datasets are made durable
    together, in four rounds of concurrent fsyncs (partitions and index segments; their
    directories; the manifests; their directories) whatever their number, where appends one by
    one wait for five fsyncs in turn each. Locks are taken in dataset id order, so writers
    of overlapping groups never wait for each other in a circle. A dataset refused (a bad
    frame, damage) raises before any commit: the others' written files go to the next
    writer's sweep, as a killed writer's do.
    """
    ids = [check_dataset_id(item.dataset_id) for item in appends]
    if len(set(ids)) < len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise UsageError(f"append_many: {', '.join(twice)} given more than once",
                         hint="concatenate the frames of one dataset into one Append")
    small = sum(item.frame.height for item in appends) < SMALL_GROUP_ROWS
    # encodings started once all are staged (one dataset: nothing to encode beside)
    deferred: list[Callable[[], object]] | None = [] if small and len(appends) > 1 else None
    with contextlib.ExitStack() as locks, DurableBatch() as batch:
        held = lock_in_order(root, ids, locks)
        order = list(held)  # staged in the order the locks were taken

        def stage(position: int) -> _Finish:
            index = order[position]
            return _stage(root, ids[index], appends[index], batch, held[index], deferred)

        finishing = stage_each(len(order), stage, in_turn=small)
        for start in deferred or ():
            start()
        staged = [finish() for finish in finishing]  # the encodings done, index and manifest
        publish(batch, [item for item, _ in staged])
    results = {index: result for index, (_, result) in zip(order, staged, strict=True)}
    return [results[index] for index in range(len(ids))]


_Finish = Callable[[], tuple[Staged, AppendResult]]


def _stage(root: Path | str, dataset_id: str, item: Append, batch: DurableBatch,
           lock: WriterLock, deferred: list[Callable[[], object]] | None) -> _Finish:
    """Queue the dataset's new partitions (under its lock, `lock`; their encodings into
    `deferred` when given, for the caller to start); what it returns then queues the index
    segments once the partitions are encoded, and plans the commit."""
    directory = dataset_dir(root, dataset_id)
    action = f"append to {dataset_id}"
    out = Output(directory, batch, action, deferred=deferred)
    with storage_errors(directory, action), damage_reported(root, dataset_id):
        manifest = read_manifest_file(directory)
        try:
            if manifest is None:
                _refuse_unnamed_files(root, dataset_id, directory, lock.interrupted)
            if lock.interrupted:
                sweep(directory, manifest, quarantine=new_quarantine(root, dataset_id))
            finish = _stage_locked(out, dataset_id, manifest, item.frame, item.extra, lock)
        except (UsageError, _Unnamed):
            lock.mark_finished()  # refused before writing anything: nothing to sweep
            raise

    def finished() -> tuple[Staged, AppendResult]:
        with storage_errors(directory, action), damage_reported(root, dataset_id):
            return finish()
    return finished


class _Unnamed(DamagedDataset):
    """Data files without a manifest, no writer interrupted: refused before writing."""


def _refuse_unnamed_files(root: Path | str, dataset_id: str, directory: Path,
                          interrupted: bool) -> None:
    """Data files without a manifest that no interrupted first write explains (they would be
    moved aside by the sweep): the manifest was lost. A new dataset here would reuse their
    names, so the repair, which rebuilds the dataset from them, comes first."""
    found = unnamed_data_files(directory)
    if found and not first_write_leftovers(found, interrupted):
        error = damaged(root, dataset_id, None,
                        f"{len(found)} data files in {directory} ({', '.join(found[:3])}"
                        f"{', ...' if len(found) > 3 else ''}) but no {MANIFEST_NAME}")
        raise _Unnamed(error.message, hint=error.hint)


@_refusals_named("relayout")
def relayout(root: Path | str, dataset_id: str) -> bool:
    """Rewrite a dataset under the partitioning rule of new datasets of its kind (version 1's
    day files of a 1m dataset become `month+day`), in one atomic commit; False when it already
    follows it. Rows, columns and "extra" are kept; readers see the old files or the new.

    It holds the writer lock while it reads and writes the whole history (1e7 1m candles from
    6,945 day files to 246: 6 s), so a miner's append waits that long.
    """
    dataset_id = check_dataset_id(dataset_id)
    directory = dataset_dir(root, dataset_id)
    with damage_reported(root, dataset_id):
        if read_manifest_file(directory) is None:  # before the lock: no lock file, no dataset
            raise dataset_not_found(root, dataset_id, None)
        with WriterLock(directory) as lock:
            manifest = read_manifest_file(directory)
            if manifest is None or manifest.partitioning == partitioning_for(dataset_id):
                lock.mark_finished()
                return False
            if lock.interrupted:
                sweep(directory, manifest)
            _relayout_locked(directory, dataset_id, manifest)
            lock.mark_finished()
    return True


def _relayout_locked(directory: Path, dataset_id: str, manifest: Manifest) -> None:
    partitions = [p for s in manifest.segments for p in read_segment_file(directory, s)]
    check_partition_files(directory, partitions)  # a directory would be read as no rows
    files = [directory / p.file for p in partitions]  # in ts order
    frame = (pl.scan_parquet(files, glob=False).collect() if files
             else frames.empty_frame(manifest.columns))
    retired = sorted(referenced_files(directory, manifest))
    fresh = new_manifest(dataset_id, partitioning_for(dataset_id), manifest.timeframe,
                         manifest.columns).model_copy(update={"extra": manifest.extra})
    rewrite(directory, dataset_id, fresh, frame, manifest.generation + 1, retired)


def rewrite(directory: Path, dataset_id: str, template: Manifest, frame: pl.DataFrame,
            generation: int, retired: list[str]) -> Manifest:
    """Commit `frame` (sorted, unique ts) as the whole dataset: every partition written anew
    under `template`'s rule as generation `generation`, the manifest (the template's columns
    and extra), then the files `retired` removed. The caller holds the writer lock."""
    fresh = template.model_copy(update={"segments": [], "partitions": [], "rows": 0,
                                        "bytes": 0, "first_ts": None, "last_ts": None})
    with DurableBatch() as batch:
        out = Output(directory, batch, None)
        segments = write_partitions(out, dataset_id, fresh, frame, generation, Tally()).segments()
        retired = list(retired)
        committed = stage_commit(out, fresh, segments, retired, generation, fresh.columns, None)
        publish(batch, [Staged(directory, None, committed, retired)])
    return committed


def _stage_locked(out: Output, dataset_id: str, manifest: Manifest | None,
                  frame: pl.DataFrame, extra: dict[str, Any] | None,
                  lock: WriterLock) -> _Finish:
    ref = parse_dataset_id(dataset_id)
    has_rows = frame.width > 0  # an empty DataFrame() carries only `extra`
    if has_rows:
        frame = frames.normalize(frame, dataset_id, ref.kind,
                                 manifest.columns if manifest else None)
        _check_range(frame, dataset_id)
        _check_grid(frame, dataset_id, ref.timeframe)
    if manifest is None:
        if frame.height == 0 and not extra:
            return lambda: (Staged(out.directory, lock, None, []), AppendResult(0, 0, 0, None))
        columns = frames.columns_of(frame) if has_rows else _default_columns(ref.kind)
        manifest = new_manifest(dataset_id, partitioning_for(dataset_id), ref.timeframe, columns)
    columns = manifest.columns or (frames.columns_of(frame) if has_rows else {})

    tally = Tally()
    if has_rows:
        frame, duplicates = frames.dedupe_batch(frame)
        tally.count(duplicates, dataset_id, "twice in one batch")
    generation = manifest.generation + 1
    writes = write_partitions(out, dataset_id, manifest, frame, generation, tally)
    known = manifest

    def finish() -> tuple[Staged, AppendResult]:
        if not writes.updates and not extra:
            return (Staged(out.directory, lock, None, []),
                    AppendResult(0, tally.skipped, tally.conflicts, known.last_ts))
        committed = stage_commit(out, known, writes.segments(), writes.retired, generation,
                                 columns, extra)
        return (Staged(out.directory, lock, committed, writes.retired),
                AppendResult(tally.added, tally.skipped, tally.conflicts, committed.last_ts))
    return finish


def _default_columns(kind: str) -> dict[str, str]:
    if kind == "candles":
        return {"ts": "Int64", **dict.fromkeys(frames.CANDLE_COLUMNS[1:], "Float64")}
    return {}


def _check_range(frame: pl.DataFrame, dataset_id: str) -> None:
    """Refuse ts the store cannot keep (sfarm.data.checks.within_range): from 9999 on no
    partition key holds them, and before 1970 the trading engine, whose "no candle yet" is
    ts -1, fails on them long after they were stored."""
    if frame.height == 0:
        return
    ts = frame["ts"].to_numpy()  # no nulls (normalize); numpy: no polars query for one row
    if within_range(int(ts.min()), int(ts.max())):
        return
    bad = out_of_range(ts)
    first = int(bad[0])
    rows = "1 row has" if len(bad) == 1 else f"{len(bad):,} rows have"
    raise UsageError(f"append to {dataset_id}: {rows} a ts outside the range the store keeps, "
                     f"first {first} ({format_ts(first)}); accepted: ts {TS_RANGE}",
                     hint="ts are milliseconds since 1970-01-01 00:00 UTC (a ts in microseconds "
                          "or nanoseconds lands past year 9999)")


def _check_grid(frame: pl.DataFrame, dataset_id: str, timeframe: str | None) -> None:
    """Refuse ts off the timeframe's grid: such a row could never be a candle of this dataset."""
    if timeframe is None or frame.height == 0:
        return
    ts = frame["ts"].to_numpy()  # no nulls (normalize); numpy: no polars query for one row
    if not np.any((ts - grid_offset(timeframe)) % timeframe_ms(timeframe)):
        return
    bad = off_grid(frame["ts"], timeframe)
    if bad.len():
        raise UsageError(f"append to {dataset_id}: {bad.len()} ts are not {timeframe} candle "
                         f"opens, first {bad[0]} ({format_ts(bad[0])})")
