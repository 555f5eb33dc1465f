"""Installing a copy of a producer's dataset into this root's mirror `mirror/<node>/<id>`.

A pull copies one committed version of the producer's dataset (manifest, index segments,
partitions) into `staging_dir(...)`, by any means (rsync hard-links from the mirror what it
already holds), then hands it to `install_staged`, which checks it and commits it the way an
append commits: under the mirror's writer lock, files moved in first, the manifest renamed over
the old one last, files it no longer names removed. A reader of the mirror (they hold the lock
shared) sees the old version or the new one; a copy that fails a check leaves the mirror as it
was.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.fsio import (
    PRIVATE_FILE,
    WriterLock,
    fsync_dir,
    make_private_dirs,
    storage_errors,
    write_atomic,
)
from sfarm.data.layout import MANIFEST_NAME, check_dataset_id, dataset_dir
from sfarm.data.manifest import Manifest, PartitionEntry, parse_manifest, parse_segment, sha256_hex
from sfarm.data.recovery import sweep
from sfarm.errors import RunError

STAGING_NAME = ".incoming"  # inside the mirror's dataset directory: dataset listings skip it
PULL_LOCK_NAME = ".pull.lock"  # beside it, hidden too: held by the one pull using it


class StagedCopyInvalid(RunError):
    """A staged copy does not match its own manifest (or has none): it was not installed."""


@dataclass(frozen=True)
class InstallResult:
    dataset_id: str
    node: str
    manifest: Manifest  # the mirror's manifest now (without its partitions)
    files: int  # files of that manifest that came with this copy (`transferred`)
    bytes: int  # their size
    changed: bool  # False when the mirror already held this manifest


@contextlib.contextmanager
def pull_lock(root: Path | str, dataset_id: str, *, mirror_of: str) -> Iterator[None]:
    """Held by a pull of `dataset_id` from `mirror_of` for its whole run (staging, transfer,
    install): two pulls of one dataset into one mirror would share, and empty, one staging
    directory. A second pull waits for the first. Not the mirror's writer lock (`.lock`): its
    readers would wait for the transfer."""
    directory = dataset_dir(root, dataset_id, mirror_of=mirror_of)
    make_private_dirs(directory)
    # 0600: another user who could open it could hold every pull of this dataset off.
    fd = os.open(directory / PULL_LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def staging_dir(root: Path | str, dataset_id: str, *, mirror_of: str) -> Path:
    """An empty directory to stage a copy of `dataset_id` from `mirror_of` in (what an earlier,
    interrupted pull left there is removed: `install_staged` trusts only what it is told was
    transferred)."""
    staging = dataset_dir(root, dataset_id, mirror_of=mirror_of) / STAGING_NAME
    shutil.rmtree(staging, ignore_errors=True)
    make_private_dirs(staging)
    return staging


def install_staged(root: Path | str, dataset_id: str, *, mirror_of: str,
                   transferred: Iterable[str]) -> InstallResult:
    """Check the copy staged in `staging_dir(root, dataset_id, mirror_of=...)` and commit it as
    the mirror's new version; the staging directory is removed either way.

    `transferred` names the staged files that travelled now; every other file must be a link
    to (or a copy of) one the mirror already holds, checked when it was installed. Checked:
    the manifest (valid, this dataset), every index segment (sha256), every partition (size)
    and, of those transferred, their sha256. StagedCopyInvalid when a check fails,
    StorageError when this machine refuses the write (disk full, read-only, permission).
    """
    dataset_id = check_dataset_id(dataset_id)
    target = dataset_dir(root, dataset_id, mirror_of=mirror_of)
    staging = target / STAGING_NAME
    try:
        with storage_errors(target, f"installing {dataset_id} pulled from {mirror_of}"):
            return _install(target, staging, dataset_id, mirror_of, set(transferred))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(target: Path, staging: Path, dataset_id: str, node: str,
             transferred: set[str]) -> InstallResult:
    if not os.path.lexists(staging / MANIFEST_NAME):
        raise _invalid(dataset_id, node, f"the copy has no {MANIFEST_NAME}")
    raw_manifest = _read(staging, MANIFEST_NAME, dataset_id, node, durable=False)
    current = target / MANIFEST_NAME
    if current.exists() and current.read_bytes() == raw_manifest:
        return InstallResult(dataset_id, node, parse_manifest(raw_manifest, current), 0, 0,
                             changed=False)
    manifest, names = _check(staging, raw_manifest, dataset_id, node, transferred)
    with WriterLock(target) as lock:
        for name in names:
            os.replace(staging / name, target / name)
        fsync_dir(target)  # the files durable before the manifest names them
        write_atomic(target, MANIFEST_NAME, raw_manifest)  # the commit
        sweep(target, manifest, retired=True)
        lock.mark_finished()
    arrived = [name for name in names if name in transferred]
    size = sum((target / name).stat().st_size for name in arrived)
    return InstallResult(dataset_id, node, manifest, len(arrived), size, changed=True)


def _check(staging: Path, raw_manifest: bytes, dataset_id: str, node: str,
           transferred: set[str]) -> tuple[Manifest, list[str]]:
    """The staged manifest and the files it names, each checked (and those transferred made
    durable: rsync does not fsync). Parsing the manifest and its segments admits only the
    store's own file names (`sfarm.data.manifest`), so every name below stays in `staging`."""
    try:
        manifest = parse_manifest(raw_manifest, staging / MANIFEST_NAME)
    except RunError as error:
        raise _invalid(dataset_id, node, error.message) from None
    if manifest.dataset_id != dataset_id:
        raise _invalid(dataset_id, node, f"its manifest is of {manifest.dataset_id}")
    names: list[str] = []
    for segment in manifest.segments:
        _check_new(names, segment.file, dataset_id, node)
        raw = _read(staging, segment.file, dataset_id, node, durable=segment.file in transferred)
        if sha256_hex(raw) != segment.sha256:
            raise _mismatch(dataset_id, node, f"index {segment.file}")
        names.append(segment.file)
        try:
            partitions = parse_segment(raw, staging / segment.file)
        except RunError as error:
            raise _invalid(dataset_id, node, error.message) from None
        for partition in partitions:
            _check_new(names, partition.file, dataset_id, node)
            _check_partition(staging, partition, dataset_id, node,
                             hashed=partition.file in transferred)
            names.append(partition.file)
    return manifest, names


def _check_new(names: list[str], name: str, dataset_id: str, node: str) -> None:
    if name in names:  # each is moved into the mirror once
        raise _invalid(dataset_id, node, f"its manifest names {name} twice")


def _check_partition(staging: Path, partition: PartitionEntry, dataset_id: str, node: str, *,
                     hashed: bool) -> None:
    """Its size first, from the inode (a file larger than its manifest says is refused before
    a byte of it is read), then, when `hashed`, its sha256 (fsynced on the way)."""
    fd = _open_regular(staging, partition.file, dataset_id, node)
    with os.fdopen(fd, "rb") as handle:
        size = os.fstat(fd).st_size
        if size != partition.bytes:
            raise _invalid(dataset_id, node, f"{partition.file} does not match its manifest "
                                             f"({size} bytes, not {partition.bytes})")
        if not hashed:
            return
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        os.fsync(fd)
    if digest.hexdigest() != partition.sha256:
        raise _mismatch(dataset_id, node, partition.file)


def _read(staging: Path, name: str, dataset_id: str, node: str, *, durable: bool) -> bytes:
    with os.fdopen(_open_regular(staging, name, dataset_id, node), "rb") as handle:
        raw = handle.read()
        if durable:
            os.fsync(handle.fileno())
    return raw


def _open_regular(staging: Path, name: str, dataset_id: str, node: str) -> int:
    """A read-only descriptor of the staged regular file `name`. Never follows a symlink (a
    producer's link to /etc/passwd is refused, not read) and never blocks on a FIFO; anything
    but a regular file (a link, a directory, a device) is refused."""
    try:
        fd = os.open(staging / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _invalid(dataset_id, node, f"{name} is missing") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _invalid(dataset_id, node, f"{name} is a symbolic link") from None
        raise _invalid(dataset_id, node, f"{name} cannot be opened: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _invalid(dataset_id, node, f"{name} is not a regular file")
    return fd


def _mismatch(dataset_id: str, node: str, what: str) -> StagedCopyInvalid:
    return _invalid(dataset_id, node, f"{what} does not match its manifest")


def _invalid(dataset_id: str, node: str, why: str) -> StagedCopyInvalid:
    return StagedCopyInvalid(f"{dataset_id} from {node}: {why}; the mirror is unchanged",
                             hint="run `sfarm data verify` on the node, then pull again")
