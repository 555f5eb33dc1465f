"""What a killed writer leaves in a dataset directory, and its removal by the next writer.

A writer names its files by the generation it is about to commit and retires superseded files
only after the commit, so leftovers are temp files (`.*.tmp`) and partitions or index segments
that no committed manifest names. Without a readable manifest nothing proves a data file a
leftover: such files are moved aside (`sfarm.data.damage`), never deleted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sfarm.data.damage import move_aside
from sfarm.data.fsio import remove_quietly
from sfarm.data.layout import file_generation, is_partition_file, is_segment_file, is_temp_file
from sfarm.data.manifest import Manifest, read_segment_file

log = logging.getLogger("sfarm.data")


def referenced_files(directory: Path, manifest: Manifest | None) -> set[str]:
    """Every file the manifest names (index segments and partitions)."""
    if manifest is None:
        return set()
    names = {s.file for s in manifest.segments}
    for segment in manifest.segments:
        names.update(p.file for p in read_segment_file(directory, segment))
    return names


def unnamed_data_files(directory: Path) -> list[str]:
    """The partition and index segment files of a directory, sorted (for one without a
    manifest: files nothing names)."""
    return sorted(name for name in os.listdir(directory)
                  if is_partition_file(name) or is_segment_file(name))


def first_write_leftovers(names: list[str], interrupted: bool) -> bool:
    """Whether data files found without a manifest can be an interrupted first write's: a
    writer was killed, and every file is of generation 1 (all a first write makes). Otherwise
    the manifest was lost, and only the repair may rebuild the dataset from them."""
    return interrupted and all(file_generation(name) == 1 for name in names)


def sweep(directory: Path, manifest: Manifest | None, *, retired: bool = False,
          quarantine: Path | None = None) -> list[str]:
    """Remove what a killed writer left: temp files, partitions and segments no manifest names.

    Only a committed manifest, read whole (every index segment parsed), proves a data file a
    leftover. Without one (an interrupted first write looks like a lost manifest), the data files
    are moved to `quarantine` instead, and said so; with no `quarantine`, left in place.
    A manifest whose segments cannot be read raises (CorruptIndex, FileNotFoundError) before
    anything is removed.

    `retired`: the caller just committed `manifest`, so the files it no longer names are the
    previous version's (a mirror's install), not a crash's leftovers: nothing to say."""
    keep = referenced_files(directory, manifest)
    removed, unproven = [], []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if not entry.is_file():
                continue
            if is_temp_file(name):
                remove_quietly(Path(entry.path))
                removed.append(name)
            elif (is_partition_file(name) or is_segment_file(name)) and name not in keep:
                if manifest is None:
                    unproven.append(name)
                else:
                    remove_quietly(Path(entry.path))
                    removed.append(name)
    if removed and not retired:
        log.info("%s: removed %d files left by an interrupted write", directory, len(removed))
    if unproven and quarantine is not None:
        moved = move_aside(directory, sorted(unproven), quarantine)
        log.warning("%s: %d data files without a manifest naming them (an interrupted first "
                    "write, or a lost manifest) moved to %s, not deleted", directory, len(moved),
                    quarantine)
    return removed
