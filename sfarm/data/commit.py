"""The commit of appends, one dataset or a group: staging and publishing, not what is written.

Each dataset's writer lock is taken in dataset id order (writers of overlapping groups never
wait for each other in a circle); the datasets are staged (their new partitions and index
segments queued into one `DurableBatch`, their next manifest planned), two at once in a group;
then `publish` makes the queued files durable, renames each manifest into place (the commit,
one per dataset, so each stays atomic), makes those durable, and removes the files the commits
retire. A writer killed at any point leaves every previous manifest and the files it names
intact; the next writer sweeps the rest (`sfarm.data.recovery`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from sfarm.data import memo
from sfarm.data.fsio import DurableBatch, WriterLock, make_private_dirs, storage_errors
from sfarm.data.layout import MANIFEST_NAME, dataset_dir, segment_file_name
from sfarm.data.manifest import (
    Manifest,
    PartitionEntry,
    SegmentEntry,
    layout_version,
    manifest_bytes,
    next_manifest,
    segment_bytes,
    summarize_segment,
)

STAGE_THREADS: Final = 2  # datasets of a group staged at once: the cores of a small node

_T = TypeVar("_T")


@dataclass(frozen=True)
class Output:
    """Where a write goes: the dataset's directory, the batch that makes it durable, what
    a refusal of the machine is said to have stopped (None: the caller says it), and, for a
    small group, where its partitions' encodings wait to be started in the batch's threads
    once every dataset is staged (see `sfarm.data.partition_writes`)."""

    directory: Path
    batch: DurableBatch
    action: str | None
    deferred: list[Callable[[], object]] | None = None

    def write(self, name: str, raw: bytes) -> None:
        self.batch.write(self.directory, name, raw, self.action)


@dataclass
class Staged:
    """A dataset's append with its files queued: the manifest to commit once they are durable
    (None: nothing to commit), and the files that commit retires."""

    directory: Path
    lock: WriterLock | None  # None: the caller holds it and marks it finished
    commit: Manifest | None
    retired: list[str]


def lock_in_order(root: Path | str, ids: Sequence[str],
                  locks: contextlib.ExitStack) -> dict[int, WriterLock]:
    """The writer lock of each dataset of `ids` (by its index), taken in id order and held
    until `locks` closes; directories made if new."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return {index: _lock(root, ids[index], locks) for index in order}


def _lock(root: Path | str, dataset_id: str, locks: contextlib.ExitStack) -> WriterLock:
    directory = dataset_dir(root, dataset_id)
    with storage_errors(directory, f"append to {dataset_id}"):
        make_private_dirs(directory)
        return locks.enter_context(WriterLock(directory))


def stage_each(count: int, stage: Callable[[int], _T], *, in_turn: bool) -> list[_T]:
    """`stage(i)` for i in range(count), in order: one after the other in this thread
    (`in_turn`), else two at once (polars and the reads let go of the GIL)."""
    if count == 1 or in_turn:
        return [stage(index) for index in range(count)]
    with ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="sfarm-stage") as pool:
        return list(pool.map(stage, range(count)))


def stage_commit(out: Output, manifest: Manifest, segments: dict[str, list[PartitionEntry]],
                 retired: list[str], generation: int, columns: dict[str, str],
                 extra: dict[str, Any] | None) -> Manifest:
    """Queue the changed index segments; the manifest that will name them (the commit). The
    segments they replace join `retired`."""
    changed: list[SegmentEntry] = []
    current = {s.name: s for s in manifest.segments}
    for segment, partitions in segments.items():
        raw = segment_bytes(segment, partitions, layout_version(manifest.partitioning))
        name = segment_file_name(segment, generation)
        out.write(name, raw)
        summary = summarize_segment(segment, name, partitions, raw)
        memo.remember_segment(out.directory, name, summary.sha256, partitions)
        changed.append(summary)
        if segment in current:
            retired.append(current[segment].file)
    return next_manifest(manifest, changed, generation, columns, extra)


def publish(batch: DurableBatch, staged: Sequence[Staged]) -> None:
    """Commit staged appends: their files durable first, then each manifest (the commit),
    durable too, then the files the commits no longer name removed."""
    committed = [(item.directory, manifest_bytes(item.commit), item.commit)
                 for item in staged if item.commit is not None]  # while the files are written
    batch.flush()  # partitions and segments durable before a manifest names them
    for directory, raw, _ in committed:  # the commit: durable with its directory, each alone
        batch.write(directory, MANIFEST_NAME, raw, sync_dir=True)
    batch.wait()
    for directory, raw, manifest in committed:  # the next append here parses nothing
        memo.remember_manifest(directory, raw, manifest)
    for item in staged:
        for name in item.retired:
            batch.remove(item.directory / name)
    batch.wait()
    for item in staged:
        if item.lock is not None:
            item.lock.mark_finished()
