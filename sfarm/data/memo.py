"""What this process last committed or read of a dataset, kept in memory so that its next append
parses and reads nothing again: the manifest (by its exact bytes), index segments and small
partitions (by the sha256 a manifest gives them).

A live step appends one candle to each of its datasets; without this, each append parsed the
manifest and the index segment and decoded the live day partition, only to re-encode them with
one more row (most of a step's CPU once its fsyncs were shared). Every entry is
content-addressed, so nothing here needs telling when another writer commits: a manifest, a
segment or a partition is taken from memory only when the file's bytes, read again, are the
very bytes it was made from (the manifest compared whole; a segment or partition by the sha256
its index gives, checked against the file: reading and hashing a live day file costs a tenth of
decoding it). Another process's commit, a repair, a dataset deleted and made anew under the
same names, or a file damaged on the disk never matches what is remembered; those reads decode
the file as before, and so report the damage as before.

Bounded: the last `MAX_DATASETS` datasets used, for each the last few segments and partitions
remembered, a partition only when small (the live day of a 1m dataset: 1,440 rows, ~70 kB).
Thread-safe (a group commit stages two datasets at once).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:  # only types: sfarm.data.manifest reads through this module
    import polars as pl

    from sfarm.data.manifest import Manifest, PartitionEntry, SegmentEntry

MAX_DATASETS: Final = 64
KEPT_PER_DATASET: Final = 4  # segments, and partitions, of one dataset
MAX_PARTITION_BYTES: Final = 1 << 20  # in memory (polars' estimate): larger ones are read
MAX_CHUNKS: Final = 32  # a remembered partition is made contiguous past this many chunks


@dataclass
class _Dataset:
    manifest_raw: bytes | None = None
    manifest: Manifest | None = None
    segments: OrderedDict[str, tuple[str, list[PartitionEntry]]] = field(
        default_factory=OrderedDict)  # file -> (sha256 of its bytes, its partitions)
    partitions: OrderedDict[str, tuple[str, pl.DataFrame]] = field(
        default_factory=OrderedDict)  # file -> (sha256 of its bytes, its rows)


_V = TypeVar("_V")
_datasets: OrderedDict[Path, _Dataset] = OrderedDict()
_guard = threading.Lock()


def _sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _dataset(directory: Path) -> _Dataset:
    """The entry of `directory` (made if new), now the most recently used; call under _guard."""
    entry = _datasets.get(directory)
    if entry is None:
        entry = _datasets[directory] = _Dataset()
        while len(_datasets) > MAX_DATASETS:
            _datasets.popitem(last=False)
    else:
        _datasets.move_to_end(directory)
    return entry


def _keep(kept: OrderedDict[str, _V], name: str, value: _V) -> None:
    kept.pop(name, None)
    kept[name] = value
    while len(kept) > KEPT_PER_DATASET:
        kept.popitem(last=False)


def manifest(directory: Path, raw: bytes) -> Manifest | None:
    """The manifest parsed from `raw` (the bytes of `directory`'s manifest file), if these are
    the bytes remembered; a shallow copy, so a caller's assignment changes no one else's."""
    with _guard:
        entry = _datasets.get(directory)
        if entry is None or entry.manifest is None or entry.manifest_raw != raw:
            return None
        _datasets.move_to_end(directory)
        return entry.manifest.model_copy()


def remember_manifest(directory: Path, raw: bytes, parsed: Manifest) -> None:
    """`parsed` is the manifest whose file holds `raw` (without its partitions listed)."""
    with _guard:
        entry = _dataset(directory)
        entry.manifest_raw, entry.manifest = raw, parsed.model_copy(update={"partitions": []})


def segment(directory: Path, named: SegmentEntry, raw: bytes) -> list[PartitionEntry] | None:
    """The partitions of the index segment a manifest names as `named`, whose file holds `raw`,
    if remembered with the sha256 it gives and `raw` has that sha256."""
    with _guard:
        entry = _datasets.get(directory)
        found = entry.segments.get(named.file) if entry is not None else None
    if found is None or found[0] != named.sha256 or _sha256_hex(raw) != named.sha256:
        return None
    return list(found[1])


def remember_segment(directory: Path, file: str, sha256: str,
                     partitions: list[PartitionEntry]) -> None:
    with _guard:
        _keep(_dataset(directory).segments, file, (sha256, list(partitions)))


def partition(directory: Path, named: PartitionEntry) -> pl.DataFrame | None:
    """The rows of the partition file a segment names as `named`, if remembered with the
    sha256 it gives and the file still has it (read and hashed here: a missing file raises
    FileNotFoundError, as its decoding would)."""
    with _guard:
        entry = _datasets.get(directory)
        found = entry.partitions.get(named.file) if entry is not None else None
    if found is None or found[0] != named.sha256:
        return None
    return found[1] if _sha256_hex((directory / named.file).read_bytes()) == found[0] else None


def remember_partition(directory: Path, file: str, sha256: str, rows: pl.DataFrame) -> None:
    """`rows` are what the partition file whose bytes have `sha256` holds (kept when small)."""
    if rows.estimated_size() > MAX_PARTITION_BYTES:
        return
    if rows.n_chunks() > MAX_CHUNKS:  # a live partition gains a chunk an append
        rows = rows.rechunk()
    with _guard:
        _keep(_dataset(directory).partitions, file, (sha256, rows))


def forget(directory: Path | None = None) -> None:
    """Drop what is remembered of `directory` (of every dataset when None)."""
    with _guard:
        if directory is None:
            _datasets.clear()
        else:
            _datasets.pop(directory, None)
