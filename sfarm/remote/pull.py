"""Pull a dataset from another node root into `mirror/<node>/<id>/`, incrementally and
consistently, over any Connection (this machine, or SSH with rsync).

The producer keeps writing while we copy. Its files are named by generation and never
rewritten, and its manifest is the commit point, so a pull: (1) reads the manifest and the index
segments it names; (2) rsyncs the partition files (new names only: history is not copied again);
(3) checks that every partition the manifest names arrived whole (size, and sha256 for what this
pull transferred), starting over if the producer retired one meanwhile; (4) commits the segments
and then the manifest into the mirror, under the mirror's writer lock; (5) removes the files the
new manifest no longer names. A reader of the mirror sees the old version or the new one.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.fsio import WriterLock, write_atomic
from sfarm.data.layout import (
    LOCK_NAME,
    MANIFEST_NAME,
    DatasetNotFound,
    check_dataset_id,
    dataset_dir,
)
from sfarm.data.manifest import Manifest, PartitionEntry, parse_segment, sha256_hex
from sfarm.data.recovery import sweep
from sfarm.errors import RunError
from sfarm.remote.connection import Connection, TransportError, parse_itemized

log = logging.getLogger("sfarm.data")

ATTEMPTS = 5
RSYNC_VANISHED = 24  # "some files vanished before they could be transferred"
# The producer's own bookkeeping and its writes in progress never travel.
EXCLUDED = (MANIFEST_NAME, "_index.*", LOCK_NAME, ".*.tmp")


@dataclass(frozen=True)
class PullResult:
    dataset_id: str
    node: str
    rows: int
    last_ts: int | None
    files_transferred: int
    bytes_transferred: int
    changed: bool  # False when the mirror already held this manifest

    def to_json(self) -> dict[str, object]:
        return {"id": self.dataset_id, "node": self.node, "rows": self.rows,
                "last_ts": self.last_ts, "files_transferred": self.files_transferred,
                "bytes_transferred": self.bytes_transferred, "changed": self.changed}


def remote_datasets(connection: Connection, node_root: str) -> list[str]:
    """The ids of the datasets under a node root's data/ (those with a manifest)."""
    data = posixpath.join(node_root, "data")
    found = connection.run(["find", data, "-name", MANIFEST_NAME, "-type", "f"], check=False)
    ids = [posixpath.relpath(posixpath.dirname(line), data)
           for line in found.stdout_text.splitlines() if line.startswith(data + "/")]
    return sorted(ids)


def pull(connection: Connection, node_root: str, node: str, dataset_id: str,
         local_root: Path) -> PullResult:
    """Bring `dataset_id` of the node root `node_root` (on `connection`'s machine) into
    `local_root/mirror/<node>/<id>`."""
    dataset_id = check_dataset_id(dataset_id)
    source = posixpath.join(node_root, "data", dataset_id)
    target = dataset_dir(local_root, dataset_id, mirror_of=node)
    target.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, ATTEMPTS + 1):
        snapshot = _snapshot(connection, source, dataset_id, node)
        if snapshot is None:
            log.info("%s on %s changed while reading its index; again (%d)", dataset_id, node,
                     attempt)
            continue
        raw_manifest, manifest, segments = snapshot
        current = target / MANIFEST_NAME
        if current.exists() and current.read_bytes() == raw_manifest:
            return _result(dataset_id, node, manifest, 0, 0, changed=False)
        transferred = _transfer(connection, source, target)
        partitions = [p for _, _, entries in segments for p in entries]
        if not _complete(target, partitions, transferred):
            log.info("%s on %s retired a file during the pull; again (%d)", dataset_id, node,
                     attempt)
            continue
        with WriterLock(target) as lock:
            for name, raw, _ in segments:
                write_atomic(target, name, raw, sync_dir=False)
            write_atomic(target, MANIFEST_NAME, raw_manifest)
            sweep(target, manifest)
            lock.mark_finished()
        size = sum((target / name).stat().st_size for name in transferred
                   if (target / name).exists())
        return _result(dataset_id, node, manifest, len(transferred), size, changed=True)
    raise RunError(f"{dataset_id} on {node} kept changing during {ATTEMPTS} pulls",
                   hint="try again; a writer committing faster than the link copies would "
                        "need a faster link or a longer interval")


def _snapshot(connection: Connection, source: str, dataset_id: str, node: str,
              ) -> tuple[bytes, Manifest, list[tuple[str, bytes, list[PartitionEntry]]]] | None:
    raw_manifest = connection.get(posixpath.join(source, MANIFEST_NAME))
    if raw_manifest is None:
        raise DatasetNotFound(f"no dataset {dataset_id} on node {node}",
                              hint=f"`sfarm data pull {node}` without ids lists what it has")
    manifest = Manifest.model_validate_json(raw_manifest)
    segments = []
    for segment in manifest.segments:
        raw = connection.get(posixpath.join(source, segment.file))
        if raw is None or sha256_hex(raw) != segment.sha256:
            return None  # a newer commit retired it: read the manifest again
        segments.append((segment.file, raw, parse_segment(raw, Path(segment.file))))
    return raw_manifest, manifest, segments


def _transfer(connection: Connection, source: str, target: Path) -> list[str]:
    """rsync the partition files; the names of those it wrote."""
    try:
        result = connection.rsync(source + "/", str(target) + "/", pull=True,
                                  excludes=EXCLUDED)
    except TransportError as error:
        if error.result is None or error.result.exit_code != RSYNC_VANISHED:
            raise
        # Retired while we copied: the completeness check decides whether it mattered.
        result = parse_itemized(error.result.stdout_text)
    return [path for path in result.paths("transfer") if "/" not in path]


def _complete(target: Path, partitions: list[PartitionEntry], transferred: list[str]) -> bool:
    fresh = set(transferred)
    for partition in partitions:
        path = target / partition.file
        if not path.exists() or path.stat().st_size != partition.bytes:
            return False
        if partition.file in fresh and _sha256(path) != partition.sha256:
            return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _result(dataset_id: str, node: str, manifest: Manifest, files: int, size: int, *,
            changed: bool) -> PullResult:
    return PullResult(dataset_id, node, manifest.rows, manifest.last_ts, files, size, changed)
