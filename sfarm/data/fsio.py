"""Durable file operations of the store: atomic writes, directory fsync, the writers' lock.

A write goes to a hidden temp file in the same directory, is fsynced, then renamed over its
final name; the directory is fsynced when the rename must survive a power cut. Every write has
a temp file of its own (a unique name, made with O_EXCL), so two writers of one file (a
worker's heartbeat thread and its main thread) never write into each other's temp file.
Writers take an exclusive `fcntl.flock` on `.lock` in the dataset directory; its content
doubles as a marker that the previous writer did not finish (killed), so only then is the
directory swept. Readers take it shared, so that a writer does not retire the files they are
about to open.

Files belong to their user: what is written here (temp files, so the files they become, and
lock files) is made 0600 and directories `make_private_dirs` makes 0700, whatever the umask of
the process: anyone who can open a lock file can hold the lock forever.

The machine may refuse a write: a full disk, a quota, a read-only mount, a directory this user
may not write. `storage_errors` turns those into a `StorageError` that names the path and what
to do; an append that meets one gives up before its commit, so the dataset stays as its last
commit left it (the next writer sweeps what it wrote).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from sfarm.data.layout import LOCK_NAME, temp_prefix_for
from sfarm.errors import RunError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
# Concurrent fsyncs of one file system share its journal commits: here 12 files fsynced at once
# cost one fsync (7 ms), one after another twelve (50 ms). More threads add nothing on 2 cores.
SYNC_THREADS = 8
# Writes queued ahead of the disk at most: bounds the encoded bytes held in memory (a 1e7-row
# first append encodes ~250 month files faster than they reach the disk).
MAX_PENDING_WRITES = 32

_T = TypeVar("_T")


class StorageError(RunError):
    """The machine refused a write (disk full, read-only, not permitted); nothing was committed.
    A worker that meets one retries after a backoff: it goes on once the condition clears."""


# errno -> what happened, what to do about it (`{path}`: the directory refused)
_REFUSALS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free space there (`df -h {path}`)"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space or raise the quota of this user"),
    errno.EROFS: ("the file system is read-only", "remount it read-write"),
    errno.EACCES: ("permission denied", "let this user write {path} (owner, mode, mount)"),
    errno.EPERM: ("operation not permitted", "let this user write {path} (owner, mode, mount)"),
}


def _storage_error(error: OSError, directory: Path, action: str) -> StorageError | None:
    """`error` as a StorageError when the machine refused a write under `directory` (None for
    any other error: those are sfarm's to explain). `action` says what was being done."""
    refusal = _REFUSALS.get(error.errno or 0)
    if refusal is None:
        return None
    what, remedy = refusal
    # The directory, not error.filename: that is often a temp file of a moment.
    return StorageError(f"{action}: {what} at {directory}; not committed (what was stored "
                        f"before is intact)",
                        hint=f"{remedy.format(path=directory)}, then run again (a worker "
                             f"retries by itself)")


@contextlib.contextmanager
def storage_errors(directory: Path, action: str) -> Iterator[None]:
    """Raise a `StorageError` (see `_storage_error`) in place of the OSError of a refused
    write inside the block."""
    try:
        yield
    except OSError as error:
        translated = _storage_error(error, directory, action)
        if translated is None:
            raise
        raise translated from error


def fsync_dir(directory: Path) -> None:
    """Make renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(directory: Path) -> None:
    """`directory` exists; the ones this call made (it and missing parents) are 0700."""
    missing = []
    path = directory
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another writer
            continue
        except NotADirectoryError:  # a file where a directory must be (--root FILE)
            raise RunError(f"cannot create {path}: {path.parent} is a file, not a directory",
                           hint="give a directory (a node root) instead") from None
        os.chmod(path, PRIVATE_DIR)  # a umask may have taken bits the owner needs


def write_atomic(directory: Path, name: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `directory/name` so that readers see the old file or the new, never half.
    The file is 0600 (chmod it after, for another mode). Any number of threads and processes
    may write the same file at once: each write has its own temp file, the last rename wins.

    With `sync_dir=False` the caller fsyncs the directory once after a batch of writes.
    """
    # mkstemp: a unique name made with O_EXCL, mode 0600.
    fd, temp_name = tempfile.mkstemp(prefix=temp_prefix_for(name), suffix=".tmp", dir=directory)
    temp = Path(temp_name)
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


class DurableBatch:
    """Files written together and made durable together: each `write_atomic` runs in a thread
    pool, so the fsyncs of many files overlap (one journal commit for all) and overlap the
    caller's work meanwhile (encoding the next partition); threads may queue into one batch.
    `flush` returns once every file queued so far is in place and durable, and the directories
    they went to are fsynced: what a commit that names them needs first. Use as a context
    manager; leaving it waits for the work still running (an error leaves the files as a
    killed writer would: in temp files or under names no manifest gives yet, for the next
    writer's sweep).
    """

    def __init__(self) -> None:
        self._pending: deque[Future[Any]] = deque()
        self._directories: dict[Path, str | None] = {}
        self._others: list[Future[Any]] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None:
            self.wait()
            return
        queued: list[Future[Any]] = [*self._pending, *self._others]
        for future in queued:
            future.cancel()
        wait(queued)  # what already runs ends before the caller goes on (its error is lost)

    def submit(self, work: Callable[..., _T], *args: object) -> Future[_T]:
        """Run `work(*args)` in the pool (work that releases the GIL: hashing, I/O)."""
        future = _pool().submit(work, *args)
        self._others.append(future)
        return future

    def write(self, directory: Path, name: str, data: bytes, action: str | None = None, *,
              sync_dir: bool = False) -> None:
        """Queue `write_atomic(directory, name, data)`; with `action`, a refusal of the machine
        raises (at `flush`) a StorageError naming `directory` and `action`. With `sync_dir` the
        same thread fsyncs the directory right after the rename (the file is durable at `wait`:
        one round trip to the pool instead of two, for the last file written there)."""
        while len(self._pending) >= MAX_PENDING_WRITES:
            self._wait_oldest()
        if not sync_dir:
            self._directories.setdefault(directory, action)
        self._pending.append(_pool().submit(_write_durably, directory, name, data, action,
                                            sync_dir))

    def write_made(self, directory: Path, name: str, make: Callable[[], tuple[bytes, _T]],
                   action: str | None = None, *, made: Future[_T] | None = None) -> Future[_T]:
        """`write` the bytes `make()` returns, making them in the pool too: an encoding that
        lets go of the GIL overlaps the caller's work. The future gives `make`'s other value
        as soon as it returns, before the file is written (the file is durable at `flush`);
        `made`, when given, is that future (one the caller handed out before queueing)."""
        while len(self._pending) >= MAX_PENDING_WRITES:
            self._wait_oldest()
        self._directories.setdefault(directory, action)
        if made is None:
            made = Future()
        self._pending.append(_pool().submit(_make_durably, directory, name, make, made, action))
        return made

    def _wait_oldest(self) -> None:
        try:  # threads of one batch (staging datasets at once) wait here together
            oldest = self._pending.popleft()
        except IndexError:
            return
        oldest.result()

    def remove(self, path: Path) -> None:
        """Queue `remove_quietly(path)` (an unlink waits for the journal as an fsync does)."""
        self._pending.append(_pool().submit(remove_quietly, path))

    def wait(self) -> None:
        """Wait for what was queued (the first error raised)."""
        while self._pending:
            self._wait_oldest()
        others, self._others = self._others, []
        for future in others:
            future.result()

    def flush(self) -> None:
        """`wait`, then fsync the directories written to, at once."""
        self.wait()
        directories, self._directories = self._directories, {}
        synced = [_pool().submit(_sync_dir_durably, directory, action)
                  for directory, action in directories.items()]
        for future in synced:
            future.result()


_shared_pool: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """The process's pool of DurableBatch threads, started once: starting threads for each
    batch cost 3 ms a thread on a loaded machine, as much as the fsync they wait for."""
    global _shared_pool
    if _shared_pool is None:
        _shared_pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="sfarm-fsync")
    return _shared_pool


def _forget_pool() -> None:
    """In a forked child: the parent's threads do not exist here, a new pool is started."""
    global _shared_pool
    _shared_pool = None


os.register_at_fork(after_in_child=_forget_pool)


def _write_durably(directory: Path, name: str, data: bytes, action: str | None,
                   sync_dir: bool = False) -> None:
    with storage_errors(directory, action) if action else contextlib.nullcontext():
        write_atomic(directory, name, data, sync_dir=sync_dir)


def _make_durably(directory: Path, name: str, make: Callable[[], tuple[bytes, _T]],
                  made: Future[_T], action: str | None) -> None:
    try:
        data, value = make()
    except BaseException as error:
        made.set_exception(error)
        raise
    made.set_result(value)  # the caller goes on (an index entry) while the file is written
    _write_durably(directory, name, data, action)


def _sync_dir_durably(directory: Path, action: str | None) -> None:
    with storage_errors(directory, action) if action else contextlib.nullcontext():
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
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
