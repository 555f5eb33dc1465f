"""`list_datasets`: every dataset under a node root, own (`data/`) and mirrored (`mirror/<node>/`),
from their manifests alone (no partition file is opened)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.data.layout import DATA_DIR, MANIFEST_NAME, MIRROR_DIR
from sfarm.data.manifest import read_manifest_file
from sfarm.errors import RunError


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    path: str
    node: str | None  # the producer node of a mirror dataset; None for this node's own data
    rows: int
    first_ts: int | None
    last_ts: int | None
    partitions: int
    bytes: int
    updated_at: str | None
    generation: int = 0
    error: str | None = None  # the manifest could not be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_datasets(root: Path | str) -> list[DatasetInfo]:
    """Own datasets first, then mirrors by node; each group sorted by id."""
    root = Path(root)
    found = _walk(root / DATA_DIR, node=None)
    mirror = root / MIRROR_DIR
    if mirror.is_dir():
        for node in sorted(entry.name for entry in os.scandir(mirror) if entry.is_dir()):
            found.extend(_walk(mirror / node, node=node))
    return found


def _walk(base: Path, node: str | None) -> list[DatasetInfo]:
    infos = []
    for directory, subdirs, files in os.walk(base):
        if MANIFEST_NAME not in files:
            subdirs.sort()
            continue
        subdirs.clear()  # a dataset directory holds partitions, not more datasets
        dataset_id = Path(directory).relative_to(base).as_posix()
        try:
            parse_dataset_id(dataset_id)
        except BadDatasetId:
            continue
        info = _info(Path(directory), dataset_id, node)
        if info is not None:
            infos.append(info)
    return sorted(infos, key=lambda info: info.id)


def _info(directory: Path, dataset_id: str, node: str | None) -> DatasetInfo | None:
    try:
        manifest = read_manifest_file(directory)
    except RunError as error:
        return DatasetInfo(dataset_id, str(directory), node, 0, None, None, 0, 0, None,
                           error=error.message)
    if manifest is None:  # removed since the walk saw it
        return None
    return DatasetInfo(
        id=dataset_id, path=str(directory), node=node, rows=manifest.rows,
        first_ts=manifest.first_ts, last_ts=manifest.last_ts,
        partitions=manifest.partition_count, bytes=manifest.bytes,
        updated_at=manifest.updated_at, generation=manifest.generation,
    )
