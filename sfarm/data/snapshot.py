"""A consistent, immutable view of one committed version of a dataset, made of hard links.

The store never writes a file in place: an append writes new files under new names and renames
the manifest over the old one (`sfarm.data.fsio`). So hard links to a dataset's files, taken
while no writer can commit or retire a file (the readers' shared lock), keep that version
readable for as long as the links live, whatever the writers do next; and the lock is held only
for as long as linking takes. A producer's farm key serves pulls from such a snapshot
(`sfarm.resolver.gate`), so a slow or stalled consumer never holds the producer's lock.

Imports only the stdlib and `sfarm.data.layout` / `fsio`: the gate starts on every pull.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from sfarm.data.fsio import shared_lock
from sfarm.data.layout import MANIFEST_NAME, DatasetNotFound


def snapshot_dataset(directory: Path, into: Path) -> list[str]:
    """Hard-link every regular, non-hidden file of the dataset directory `directory` into the
    new directory `into` (mode 0700, created here: it must not exist yet, and it must be on the
    same filesystem), under the dataset's shared lock; return the names linked, sorted.

    Linked: the manifest, index segments and partitions, and nothing else: never `.lock`, a
    writer's `.*.tmp` or any other hidden name, never a symlink (not followed either), a
    directory or a special file. DatasetNotFound when `directory` holds no `_manifest.json`
    (then `into` is not left behind). The files linked are one committed version: the manifest
    and every file it names (plus, maybe, unreferenced leftovers of a killed writer).
    """
    os.mkdir(into, 0o700)
    try:
        with shared_lock(directory):
            names = _link_dataset_files(directory, into)
    except BaseException:
        remove_snapshot(into)
        raise
    return names


def _link_dataset_files(directory: Path, into: Path) -> list[str]:
    try:
        manifest = os.lstat(directory / MANIFEST_NAME)
    except (FileNotFoundError, NotADirectoryError):
        manifest = None
    if manifest is None or not stat.S_ISREG(manifest.st_mode):
        raise DatasetNotFound(f"no dataset in {directory} (no {MANIFEST_NAME})")
    linked: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            # is_file(follow_symlinks=False): a regular file itself, not a link to one.
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            os.link(entry.path, into / entry.name, follow_symlinks=False)
            linked.append(entry.name)
    return sorted(linked)


def remove_snapshot(directory: Path) -> None:
    """Remove a snapshot made by `snapshot_dataset` (its links, then the directory); quietly
    when it is gone. The dataset's own files keep their other links."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
        os.rmdir(directory)
