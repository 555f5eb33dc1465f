"""What a killed writer leaves in a dataset directory, and its removal by the next writer.

A writer names its files by the generation it is about to commit and retires superseded files
only after the commit, so leftovers are temp files (`.*.tmp`) and partitions or index segments
that no committed manifest names.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sfarm.data.fsio import remove_quietly
from sfarm.data.layout import is_partition_file, is_segment_file, is_temp_file
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


def sweep(directory: Path, manifest: Manifest | None, *, retired: bool = False) -> list[str]:
    """Remove what a killed writer left: temp files, partitions and segments no manifest names.

    `retired`: the caller just committed `manifest`, so the files it no longer names are the
    previous version's (a mirror's install), not a crash's leftovers: nothing to say."""
    keep = referenced_files(directory, manifest)
    removed = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            orphan = (is_partition_file(name) or is_segment_file(name)) and name not in keep
            if entry.is_file() and (orphan or is_temp_file(name)):
                remove_quietly(Path(entry.path))
                removed.append(name)
    if removed and not retired:
        log.info("%s: removed %d files left by an interrupted write", directory, len(removed))
    return removed
