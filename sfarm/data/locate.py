"""`locate`: where a node root holds a dataset, its own `data/<id>` or a producer's mirror
`mirror/<node>/<id>`, from the presence of `_manifest.json` alone.

Forward sessions call it on every poll, so it opens no file: a dataset exists once its first
commit has renamed a manifest into place, and a manifest is never removed. Reading the dataset
is the caller's next step, through the store's readers with the location's `node`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import MANIFEST_NAME, MIRROR_DIR, check_dataset_id, dataset_dir
from sfarm.errors import UsageError


class AmbiguousDataset(UsageError):
    """Several producers' mirrors hold the dataset, the root does not, and no node was named."""

    def __init__(self, dataset_id: str, nodes: list[str]) -> None:
        super().__init__(f"{dataset_id} is not produced here but mirrored from "
                         f"{', '.join(nodes)}", hint="name the producer node to read")
        self.dataset_id = dataset_id
        self.nodes = tuple(nodes)


@dataclass(frozen=True)
class DatasetLocation:
    """One dataset of a node root: `node` is the producer of a mirror, None for own data.

    `node` is what the store's readers take as `mirror_of`.
    """

    dataset_id: str
    node: str | None
    directory: Path


def locate(root: Path | str, dataset_id: str, *,
           mirror_of: str | None = None) -> DatasetLocation | None:
    """Where `root` holds `dataset_id`, or None when it holds it nowhere (yet).

    With `mirror_of`, only that producer's mirror is looked at. Without it: the root's own
    dataset first, else the one mirror that holds it; AmbiguousDataset when several do.
    """
    dataset_id = check_dataset_id(dataset_id)
    if mirror_of is not None:
        return _at(root, dataset_id, mirror_of)
    own = _at(root, dataset_id, None)
    if own is not None:
        return own
    found = [location for node in _mirror_nodes(Path(root))
             if (location := _at(root, dataset_id, node)) is not None]
    if len(found) > 1:
        raise AmbiguousDataset(dataset_id, [location.node or "" for location in found])
    return found[0] if found else None


def _at(root: Path | str, dataset_id: str, node: str | None) -> DatasetLocation | None:
    directory = dataset_dir(root, dataset_id, mirror_of=node)
    if not (directory / MANIFEST_NAME).is_file():
        return None
    return DatasetLocation(dataset_id, node, directory)


def _mirror_nodes(root: Path) -> list[str]:
    """The producer nodes the root has mirrors of, sorted."""
    try:
        with os.scandir(root / MIRROR_DIR) as entries:
            return sorted(entry.name for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


CommitMark = tuple[int, int, int] | None  # a manifest's (inode, mtime ns, size), None: absent


def commit_marks(root: Path | str, dataset_ids: Iterable[str]) -> tuple[CommitMark, ...]:
    """What changes whenever one of the datasets commits, in the root's own data or in any
    mirror: each manifest's inode, mtime and size (a commit renames a new manifest into
    place). Stats only, so an engine waiting for new input can look every few milliseconds."""
    producers: list[str | None] = [None, *_mirror_nodes(Path(root))]
    marks: list[CommitMark] = []
    for dataset_id in dataset_ids:
        for producer in producers:
            path = dataset_dir(root, dataset_id, mirror_of=producer)
            try:
                info = os.stat(path / MANIFEST_NAME)
            except (FileNotFoundError, NotADirectoryError):
                marks.append(None)
                continue
            marks.append((info.st_ino, info.st_mtime_ns, info.st_size))
    return tuple(marks)
