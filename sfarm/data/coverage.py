"""`find_holes`: the candles a dataset lacks inside a range, so a miner fetches them again.

Cheap on every resume: the index gives each partition's first and last ts and its rows, so the
holes between partitions, and whether a partition is whole (as many rows as candle opens from its
first to its last), come from it alone. Only a partition short of candles (a hole inside it, or
an exchange-side gap) has its ts column read; index segments of years before the range are not
opened at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

from sfarm.data.checks import find_gaps, unexplained_gaps
from sfarm.data.damage import damage_reported
from sfarm.data.fsio import shared_lock
from sfarm.data.ids import parse_dataset_id
from sfarm.data.layout import check_dataset_id, dataset_dir
from sfarm.data.manifest import (
    PartitionEntry,
    check_partition_files,
    read_manifest_file,
    read_segment_file,
)
from sfarm.timeframes import timeframe_ms

Range = tuple[int, int]  # [first missing open, next stored open)


def index_holes(partitions: Iterable[PartitionEntry], start: int,
                step: int) -> tuple[list[Range], list[PartitionEntry]]:
    """From the index alone: the holes from `start` (a candle open) up to the last partition
    that lie between partitions (or before the first), and the partitions short of candles,
    whose ts must be read to find the holes inside them."""
    holes: list[Range] = []
    short: list[PartitionEntry] = []
    expected = start
    for entry in sorted(partitions, key=lambda e: e.first_ts):
        if entry.last_ts < start:
            continue
        if entry.first_ts > expected:
            holes.append((expected, entry.first_ts))
        if entry.rows < (entry.last_ts - entry.first_ts) // step + 1:
            short.append(entry)
        expected = max(expected, entry.last_ts + step)
    return holes, short


def clip_holes(holes: Iterable[Range], start: int) -> list[Range]:
    """The holes, or their parts, from `start` on, sorted."""
    return sorted((max(low, start), high) for low, high in holes if high > start)


def find_holes(root: Path | str, dataset_id: str, start: int,
               excused: Sequence[Sequence[int]] = ()) -> list[Range]:
    """The candle opens from `start` (a candle open) to the dataset's last row that it does not
    hold, as sorted [first missing, next stored) ranges, less the `excused` ones (gaps the
    exchange itself has, as the miner records them). Empty for a dataset without rows or without
    a timeframe. DamagedDataset when a file the index names is missing or unreadable."""
    dataset_id = check_dataset_id(dataset_id)
    timeframe = parse_dataset_id(dataset_id).timeframe
    if timeframe is None:
        return []
    step = timeframe_ms(timeframe)
    directory = dataset_dir(root, dataset_id)
    with damage_reported(root, dataset_id), shared_lock(directory):
        manifest = read_manifest_file(directory)
        if manifest is None or manifest.last_ts is None:
            return []
        partitions = [entry for segment in manifest.segments if segment.last_ts >= start
                      for entry in read_segment_file(directory, segment)]
        holes, short = index_holes(partitions, start, step)
        check_partition_files(directory, short)
        for entry in short:
            ts = pl.read_parquet(directory / entry.file, columns=["ts"])["ts"]
            holes.extend(find_gaps(ts, step))
    return unexplained_gaps(clip_holes(holes, start), excused, step)
