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

import hashlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.fsio import WriterLock, fsync_dir, write_atomic
from sfarm.data.layout import MANIFEST_NAME, check_dataset_id, dataset_dir
from sfarm.data.manifest import Manifest, parse_manifest, parse_segment, sha256_hex
from sfarm.data.recovery import sweep
from sfarm.errors import RunError

STAGING_NAME = ".incoming"  # inside the mirror's dataset directory: dataset listings skip it


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


def staging_dir(root: Path | str, dataset_id: str, *, mirror_of: str) -> Path:
    """An empty directory to stage a copy of `dataset_id` from `mirror_of` in (what an earlier,
    interrupted pull left there is removed: `install_staged` trusts only what it is told was
    transferred)."""
    staging = dataset_dir(root, dataset_id, mirror_of=mirror_of) / STAGING_NAME
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def install_staged(root: Path | str, dataset_id: str, *, mirror_of: str,
                   transferred: Iterable[str]) -> InstallResult:
    """Check the copy staged in `staging_dir(root, dataset_id, mirror_of=...)` and commit it as
    the mirror's new version; the staging directory is removed either way.

    `transferred` names the staged files that travelled now; every other file must be a link
    to (or a copy of) one the mirror already holds, checked when it was installed. Checked:
    the manifest (valid, this dataset), every index segment (sha256), every partition (size)
    and, of those transferred, their sha256. StagedCopyInvalid when a check fails.
    """
    dataset_id = check_dataset_id(dataset_id)
    target = dataset_dir(root, dataset_id, mirror_of=mirror_of)
    staging = target / STAGING_NAME
    try:
        return _install(target, staging, dataset_id, mirror_of, set(transferred))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install(target: Path, staging: Path, dataset_id: str, node: str,
             transferred: set[str]) -> InstallResult:
    try:
        raw_manifest = (staging / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        raise _invalid(dataset_id, node, f"the copy has no {MANIFEST_NAME}") from None
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
        sweep(target, manifest)
        lock.mark_finished()
    arrived = [name for name in names if name in transferred]
    size = sum((target / name).stat().st_size for name in arrived)
    return InstallResult(dataset_id, node, manifest, len(arrived), size, changed=True)


def _check(staging: Path, raw_manifest: bytes, dataset_id: str, node: str,
           transferred: set[str]) -> tuple[Manifest, list[str]]:
    """The staged manifest and the files it names, each checked (and those transferred made
    durable: rsync does not fsync)."""
    try:
        manifest = parse_manifest(raw_manifest, staging / MANIFEST_NAME)
    except RunError as error:
        raise _invalid(dataset_id, node, error.message) from None
    if manifest.dataset_id != dataset_id:
        raise _invalid(dataset_id, node, f"its manifest is of {manifest.dataset_id}")
    names = []
    for segment in manifest.segments:
        raw = _read(staging, segment.file, dataset_id, node, durable=segment.file in transferred)
        if sha256_hex(raw) != segment.sha256:
            raise _mismatch(dataset_id, node, f"index {segment.file}")
        names.append(segment.file)
        try:
            partitions = parse_segment(raw, staging / segment.file)
        except RunError as error:
            raise _invalid(dataset_id, node, error.message) from None
        for partition in partitions:
            path = staging / partition.file
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise _invalid(dataset_id, node, f"{partition.file} is missing") from None
            if size != partition.bytes or (partition.file in transferred and _sha256_durable(
                    path) != partition.sha256):
                raise _mismatch(dataset_id, node, partition.file)
            names.append(partition.file)
    return manifest, names


def _read(staging: Path, name: str, dataset_id: str, node: str, *, durable: bool) -> bytes:
    try:
        with (staging / name).open("rb") as handle:
            raw = handle.read()
            if durable:
                os.fsync(handle.fileno())
    except FileNotFoundError:
        raise _invalid(dataset_id, node, f"{name} is missing") from None
    return raw


def _sha256_durable(path: Path) -> str:
    """The file's sha256, read in blocks (partitions can be large); fsynced on the way."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        os.fsync(handle.fileno())
    return digest.hexdigest()


def _mismatch(dataset_id: str, node: str, what: str) -> StagedCopyInvalid:
    return _invalid(dataset_id, node, f"{what} does not match its manifest")


def _invalid(dataset_id: str, node: str, why: str) -> StagedCopyInvalid:
    return StagedCopyInvalid(f"{dataset_id} from {node}: {why}; the mirror is unchanged",
                             hint="run `sfarm data verify` on the node, then pull again")
