"""What an append writes: the new version of each partition its rows fall in (and, under a
tiered rule such as `month+day`, one file for the period its last row has just left, in place of
that period's files), with the index entries the commit's segments will list.

A partition's rows are encoded as Parquet and queued into the append's `DurableBatch`. In a
small group (`Output.deferred`: a live step's few rows in each of its datasets) the encoding
itself runs in the batch's threads, started once every dataset is staged: polars lets go of the
GIL while it encodes, so the six day files of a six-indicator step encode two at once without
slowing the staging (started as each dataset was staged, they took its GIL: steps 5-14%
slower), and the index entries are awaited only then (`PartitionWrites.segments`). A large
append encodes here, file after file, so that at most a bounded number of encoded files wait in
memory.
"""

from __future__ import annotations

import functools
import io
import logging
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import polars as pl

from sfarm.data import frames, memo
from sfarm.data.commit import Output
from sfarm.data.layout import (
    enclosing_keys,
    format_ts,
    partition_file_name,
    period_key,
    segment_of,
    tiers,
)
from sfarm.data.manifest import (
    Manifest,
    PartitionEntry,
    check_partition_files,
    merge_partitions,
    read_segment_file,
    sha256_hex,
)

log = logging.getLogger("sfarm.data")

# LZ4 decodes about twice as fast as zstd: 1e7 1m candles in month files read in 0.12-0.15 s
# against 0.24-0.33 s, for files 17% (random walk) to 50% (prices on a tick) larger. Parquet
# records the codec per file, so the zstd partitions of older versions read alike.
PARTITION_COMPRESSION: Final = "lz4"
# A partition's sha256 is computed here below this size (microseconds), in the batch's threads
# above it (a 1e7-row first append hashes 300 MB: 0.6 s beside the encoding).
HASH_INLINE_BYTES: Final = 1 << 20


@dataclass
class Tally:
    added: int = 0
    skipped: int = 0
    conflicts: int = 0

    def count(self, split: frames.Split, dataset_id: str, why: str) -> None:
        self.skipped += split.skipped
        self.conflicts += split.conflicts
        _log_conflicts(dataset_id, split, why)


@dataclass
class PartitionWrites:
    """An append's partitions, queued (some maybe still encoding in the batch's threads)."""

    loaded: dict[str, list[PartitionEntry]] = field(default_factory=dict)  # segments read
    updates: dict[str, list[Future[PartitionEntry]]] = field(default_factory=dict)
    dropped: dict[str, set[str]] = field(default_factory=dict)  # keys merged into a period's
    retired: list[str] = field(default_factory=list)  # files the commit will retire

    def segments(self) -> dict[str, list[PartitionEntry]]:
        """The new partition list of each index segment that changed (once encoded)."""
        return {name: merge_partitions(self.loaded[name], [entry.result() for entry in entries],
                                       self.dropped.get(name, set()))
                for name, entries in self.updates.items()}


def write_partitions(out: Output, dataset_id: str, manifest: Manifest, frame: pl.DataFrame,
                     generation: int, tally: Tally) -> PartitionWrites:
    """Queue a new version of every partition that gains rows, and of the month a tiered rule
    closes when the last row moves past it. `frame` is sorted, with unique ts."""
    directory = out.directory
    last_ts = manifest.last_ts
    if frame.height:
        newest = frame["ts"][-1]
        last_ts = newest if last_ts is None else max(last_ts, newest)
    groups = (frames.split_by_partition(frame, manifest.partitioning, last_ts)
              if frame.height else {})
    targets = set(groups) | _closing(manifest, last_ts)
    current = {s.name: s for s in manifest.segments}
    writes = PartitionWrites()
    within: dict[str, list[PartitionEntry]] = {}  # period key -> the partitions inside it
    for key in sorted(targets):
        segment = segment_of(key, manifest.partitioning)
        if segment not in writes.loaded:
            writes.loaded[segment] = (read_segment_file(directory, current[segment])
                                      if segment in current else [])
            for entry in writes.loaded[segment]:
                for period in enclosing_keys(entry.key):
                    within.setdefault(period, []).append(entry)
        rows = groups[key] if key in groups else frame.clear()
        inside = within.get(key, [])
        if inside:
            stored = pl.concat([_stored_rows(directory, p) for p in inside])
            split = frames.split_against(stored, rows)
            tally.count(split, dataset_id, "already stored")
            if split.new_rows.height == 0 and [p.key for p in inside] == [key]:
                continue
            tally.added += split.new_rows.height
            rows = frames.merge_sorted(stored, split.new_rows)
            writes.retired.extend(p.file for p in inside)
            writes.dropped.setdefault(segment, set()).update(p.key for p in inside
                                                             if p.key != key)
        else:
            tally.added += rows.height
        writes.updates.setdefault(segment, []).append(
            _write_partition(out, key, generation, rows))
    return writes


def _stored_rows(directory: Path, partition: PartitionEntry) -> pl.DataFrame:
    """The rows of a stored partition: from memory when this process wrote it (the live
    partition a live append extends), else from its file."""
    remembered = memo.partition(directory, partition)
    if remembered is not None:
        return remembered
    check_partition_files(directory, [partition])  # a directory in its place: damaged
    return pl.read_parquet(directory / partition.file)


def _closing(manifest: Manifest, last_ts: int | None) -> set[str]:
    """The closed-period key whose live partitions must merge now: the period of the old last
    row, once the new last row lies past it (tiered rules only)."""
    tiered = tiers(manifest.partitioning)
    if tiered is None or manifest.last_ts is None or last_ts is None:
        return set()
    before, after = (period_key(ts, tiered[0]) for ts in (manifest.last_ts, last_ts))
    return {before} if before != after else set()


def _write_partition(out: Output, key: str, generation: int,
                     rows: pl.DataFrame) -> Future[PartitionEntry]:
    """Queue the file of `rows`, encoded in the batch's threads (`out.deferred`) or here; its
    index entry (a sha256 of the bytes) is computed in the batch's threads too when the file is
    large, beside the encoding of the next partition."""
    name = partition_file_name(key, generation)
    if out.deferred is not None:
        made: Future[PartitionEntry] = Future()
        out.deferred.append(functools.partial(
            out.batch.write_made, out.directory, name,
            functools.partial(_encoded, out.directory, key, name, rows), out.action, made=made))
        return made
    raw = _parquet(rows)
    out.write(name, raw)
    if len(raw) < HASH_INLINE_BYTES:  # not queued behind the fsyncs of the pool's threads
        done: Future[PartitionEntry] = Future()
        done.set_result(_entry(out.directory, key, name, rows, raw))
        return done
    return out.batch.submit(_entry, out.directory, key, name, rows, raw)


def _parquet(rows: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    rows.write_parquet(buffer, compression=PARTITION_COMPRESSION, statistics=True)
    return buffer.getvalue()


def _encoded(directory: Path, key: str, name: str,
             rows: pl.DataFrame) -> tuple[bytes, PartitionEntry]:
    raw = _parquet(rows)
    return raw, _entry(directory, key, name, rows, raw)


def _entry(directory: Path, key: str, name: str, rows: pl.DataFrame,
           raw: bytes) -> PartitionEntry:
    """The index entry of the file `name` holding `rows` as `raw` (remembered, when small, for
    the next append here: `sfarm.data.memo`)."""
    entry = PartitionEntry(key=key, file=name, rows=rows.height, first_ts=rows["ts"][0],
                           last_ts=rows["ts"][-1], bytes=len(raw), sha256=sha256_hex(raw))
    memo.remember_partition(directory, name, entry.sha256, rows)
    return entry


def _log_conflicts(dataset_id: str, split: frames.Split, why: str) -> None:
    for conflict in split.examples:
        log.warning("%s: conflict at ts %d (%s): %s %s, incoming %s; stored values kept",
                    dataset_id, conflict.ts, format_ts(conflict.ts), why, conflict.stored,
                    conflict.incoming)
    if split.conflicts > len(split.examples):
        log.warning("%s: %d more conflicts (%s) not shown; stored values kept", dataset_id,
                    split.conflicts - len(split.examples), why)
