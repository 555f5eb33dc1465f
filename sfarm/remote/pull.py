"""Pull a dataset from another node root into `mirror/<node>/<id>/`, incrementally and
consistently, over any Connection (this machine, or SSH with rsync).

The producer keeps writing while we copy. sfarm's store already says how to read it then: hold
the dataset's lock shared, as its readers do, and no writer commits or retires a file
meanwhile. So one rsync, run on the producer's side under that shared lock (flock(1)), copies
the dataset as one committed version into the store's staging directory, hard-linking from the
mirror what it already holds (only new partition files travel). The store then checks the copy
and commits it (`sfarm.data.install_staged`): a reader of the mirror sees the old version or
the new one.

The producer is not trusted: rsync copies no symlink, device or special file (pull options of
`rsync_options`), the store admits only its own file names from the copied manifest and
checks every file it names, and a per-dataset lock keeps two pulls from sharing the staging
directory.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import (
    LOCK_NAME,
    MANIFEST_NAME,
    DatasetNotFound,
    check_dataset_id,
    dataset_dir,
)
from sfarm.data.mirror import install_staged, pull_lock, staging_dir
from sfarm.remote.connection import Connection

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


def pull(connection: Connection, node_root: str, node: str, dataset_id: str,
         local_root: Path) -> PullResult:
    """Bring `dataset_id` of the node root `node_root` (on `connection`'s machine) into
    `local_root/mirror/<node>/<id>`."""
    dataset_id = check_dataset_id(dataset_id)
    source = posixpath.join(node_root, "data", dataset_id)
    if connection.get(posixpath.join(source, MANIFEST_NAME)) is None:
        raise DatasetNotFound(f"no dataset {dataset_id} on node {node}",
                              hint=f"`sfarm data pull {node}` without ids lists what it has")
    mirror = dataset_dir(local_root, dataset_id, mirror_of=node)
    with pull_lock(local_root, dataset_id, mirror_of=node):  # one pull at a time uses staging
        staging = staging_dir(local_root, dataset_id, mirror_of=node)
        copied = connection.rsync(source + "/", f"{staging}/", pull=True, delete=True,
                                  excludes=EXCLUDED, link_dest=str(mirror),
                                  source_lock=posixpath.join(source, LOCK_NAME))
        installed = install_staged(local_root, dataset_id, mirror_of=node,
                                   transferred=copied.paths("transfer"))
    return PullResult(dataset_id, node, installed.manifest.rows, installed.manifest.last_ts,
                      installed.files, installed.bytes, installed.changed)
