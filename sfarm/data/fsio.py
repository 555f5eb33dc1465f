"""Durable file operations of the store: atomic writes, directory fsync, the writers' lock.

A write goes to a hidden temp file in the same directory, is fsynced, then renamed over its
final name; the directory is fsynced when the rename must survive a power cut. Writers take an
exclusive `fcntl.flock` on `.lock` in the dataset directory; its content doubles as a marker
that the previous writer did not finish (killed), so only then is the directory swept. Readers
take it shared, so that a writer does not retire the files they are about to open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from sfarm.data.layout import LOCK_NAME, temp_name_for


def fsync_dir(directory: Path) -> None:
    """Make renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(directory: Path, name: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `directory/name` so that readers see the old file or the new, never half.

    With `sync_dir=False` the caller fsyncs the directory once after a batch of writes.
    """
    temp = directory / temp_name_for(name, os.getpid())
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    if sync_dir:
        fsync_dir(directory)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class WriterLock:
    """Exclusive lock of one dataset directory for the duration of an append.

    `interrupted` is True when the previous holder was killed before `mark_finished`: its temp
    files and unreferenced partitions may still be there.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        self.interrupted = False

    def __enter__(self) -> Self:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.interrupted = os.fstat(fd).st_size > 0
            # No fsync: the marker only has to survive the death of this process, and the
            # kernel keeps it. After a power cut a missed sweep only leaves unreferenced files.
            os.pwrite(fd, f"writing pid={os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def mark_finished(self) -> None:
        """The append committed or gave up cleanly: nothing for the next writer to sweep."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


@contextlib.contextmanager
def shared_lock(directory: Path) -> Iterator[None]:
    """Hold writers off while reading a dataset (no lock file: nobody ever wrote here)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock
