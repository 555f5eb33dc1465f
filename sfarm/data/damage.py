"""Damaged datasets: the error every reader and writer raises when a dataset's files no longer
match its manifest (a file missing or unreadable, the manifest or an index segment that does not
parse), and the move of files aside into the root's quarantine (the store never deletes a data
file it cannot prove to be a leftover of its own interrupted write).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from sfarm.data.fsio import make_private_dirs
from sfarm.data.layout import quarantine_dir
from sfarm.data.manifest import CorruptIndex
from sfarm.errors import RunError

# What polars raises on a file that is not (or no longer) Parquet: its own errors, and a Rust
# panic on some malformed footers (a BaseException, not an Exception).
# A full, read-only or forbidden disk, and a mount whose server went away (an sshfs mirror of a
# producer that died: EIO, ENOTCONN): the data may be whole, only out of reach.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT,
                                errno.EIO, errno.ENOTCONN, errno.ECONNABORTED, errno.ESTALE})
PARQUET_ERRORS: tuple[type[BaseException], ...] = (pl.exceptions.PolarsError, OSError,
                                                   pl.exceptions.PanicException)


class DamagedDataset(RunError):
    """A dataset whose files do not match its manifest; `sfarm data verify --repair` mends it."""


def repair_hint(root: Path | str, dataset_id: str, mirror_of: str | None = None) -> str:
    if mirror_of is not None:
        return (f"a mirror is a copy: pull it again (sfarm data pull {mirror_of} {dataset_id} "
                f"--root {root})")
    return (f"sfarm data verify --repair {dataset_id} --root {root} moves damaged files to "
            f"{Path(root) / 'quarantine'} and rewrites the manifest; the next mine fetches "
            "what was lost")


def damaged(root: Path | str, dataset_id: str, mirror_of: str | None, what: str) -> DamagedDataset:
    where = f" (mirror of {mirror_of})" if mirror_of else ""
    return DamagedDataset(f"dataset {dataset_id}{where} is damaged: {what}",
                          hint=repair_hint(root, dataset_id, mirror_of))


@contextlib.contextmanager
def damage_reported(root: Path | str, dataset_id: str,
                    mirror_of: str | None = None) -> Iterator[None]:
    """Turn what a damaged dataset makes the store's reads fail with (a file the manifest names
    missing, an index that does not parse, a partition that is not Parquet) into
    DamagedDataset, naming the dataset and the repair."""
    try:
        yield
    except DamagedDataset:
        raise
    except CorruptIndex as error:
        raise damaged(root, dataset_id, mirror_of, error.message) from None
    except FileNotFoundError as error:
        raise damaged(root, dataset_id, mirror_of,
                      f"{_missing_name(error)} named by the manifest is missing") from None
    except PARQUET_ERRORS as error:
        if isinstance(error, OSError) and error.errno in ENVIRONMENT_ERRNOS:
            raise  # the environment, not the data: said by the caller's own handling
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise damaged(root, dataset_id, mirror_of,
                      f"a partition cannot be read ({first})") from None


def _missing_name(error: FileNotFoundError) -> str:
    """The missing file's name: polars gives no `filename`, only a message with the path (or
    its name) somewhere in it."""
    if error.filename:
        return Path(error.filename).name
    found = _STORE_FILE.search(str(error))
    return found[0] if found else "a file"


_STORE_FILE = re.compile(r"[\w.-]+\.g\d+\.(?:parquet|json)", re.ASCII)


def new_quarantine(root: Path | str, dataset_id: str) -> Path:
    """A quarantine directory for files of `dataset_id` moved aside now (not created yet)."""
    return quarantine_dir(root, dataset_id, datetime.now(UTC))


def move_aside(directory: Path, names: Iterable[str], target: Path) -> list[str]:
    """Move the files `names` of `directory` into `target` (made 0700 when needed); returns the
    names moved (a file already gone is skipped). Across file systems, copied then removed."""
    moved = []
    for name in names:
        source = directory / name
        if not source.exists():
            continue
        make_private_dirs(target)
        try:
            os.replace(source, target / name)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.move(source, target / name)
        moved.append(name)
    # No fsync: a rename is atomic, so after a power cut each file is in one place or the other,
    # never lost, and a killed writer's next turn (which comes here) stays as quick as before.
    return moved
