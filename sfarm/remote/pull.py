"""Pull a dataset from another node root into `mirror/<node>/<id>/`, incrementally and
consistently, over any Connection (this machine, or SSH with rsync).

The producer keeps writing while we copy. sfarm's store already says how to read it then: hold
the dataset's lock shared, as its readers do, and no writer commits or retires a file
meanwhile. So one rsync, run on the producer's side under that shared lock (flock(1)), copies
the dataset as one committed version into a staging directory, hard-linking from the mirror
what it already holds (only new partition files travel). The pull then checks what arrived
against the manifest (sizes; sha256 of what this pull transferred) and, under the mirror's
writer lock, moves the files in, commits the manifest last and removes what it no longer names.
A reader of the mirror sees the old version or the new one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import shutil
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
from sfarm.data.manifest import Manifest, parse_segment, sha256_hex
from sfarm.data.recovery import sweep
from sfarm.errors import RunError
from sfarm.remote.connection import Connection

log = logging.getLogger("sfarm.data")

STAGING = ".incoming"  # inside the mirror's dataset directory: dataset listings skip it
# The producer's lock and a writer's leftovers never travel.
EXCLUDED = (LOCK_NAME, ".*.tmp")


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
    if connection.get(posixpath.join(source, MANIFEST_NAME)) is None:
        raise DatasetNotFound(f"no dataset {dataset_id} on node {node}",
                              hint=f"`sfarm data pull {node}` without ids lists what it has")
    target = dataset_dir(local_root, dataset_id, mirror_of=node)
    staging = target / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    copied = connection.rsync(source + "/", f"{staging}/", pull=True, delete=True,
                              excludes=EXCLUDED, link_dest=str(target),
                              source_lock=posixpath.join(source, LOCK_NAME))
    raw_manifest = (staging / MANIFEST_NAME).read_bytes()
    current = target / MANIFEST_NAME
    if current.exists() and current.read_bytes() == raw_manifest:
        shutil.rmtree(staging)
        manifest = Manifest.model_validate_json(raw_manifest)
        return _result(dataset_id, node, manifest, 0, 0, changed=False)
    manifest, names = _check(staging, raw_manifest, set(copied.paths("transfer")), node)
    with WriterLock(target) as lock:
        for name in names:
            os.replace(staging / name, target / name)
        write_atomic(target, MANIFEST_NAME, raw_manifest)  # the commit
        sweep(target, manifest)
        lock.mark_finished()
    shutil.rmtree(staging)
    transferred = [name for name in copied.paths("transfer") if name in names]
    size = sum((target / name).stat().st_size for name in transferred)
    return _result(dataset_id, node, manifest, len(transferred), size, changed=True)


def _check(staging: Path, raw_manifest: bytes, transferred: set[str],
           node: str) -> tuple[Manifest, list[str]]:
    """The staged manifest and the files it names, each checked: index segments by sha256,
    partitions by size and, those transferred now, sha256."""
    manifest = Manifest.model_validate_json(raw_manifest)
    names = []
    for segment in manifest.segments:
        raw = (staging / segment.file).read_bytes()
        if sha256_hex(raw) != segment.sha256:
            raise RunError(f"{manifest.dataset_id} from {node}: index {segment.file} does not "
                           "match its manifest", hint="run `sfarm data verify` on the node")
        names.append(segment.file)
        for partition in parse_segment(raw, staging / segment.file):
            path = staging / partition.file
            if (not path.exists() or path.stat().st_size != partition.bytes
                    or (partition.file in transferred and _sha256(path) != partition.sha256)):
                raise RunError(f"{manifest.dataset_id} from {node}: {partition.file} does not "
                               "match its manifest", hint="run `sfarm data verify` on the node")
            names.append(partition.file)
    return manifest, names


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _result(dataset_id: str, node: str, manifest: Manifest, files: int, size: int, *,
            changed: bool) -> PullResult:
    return PullResult(dataset_id, node, manifest.rows, manifest.last_ts, files, size, changed)
