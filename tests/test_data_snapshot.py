"""Snapshots of a dataset (sfarm.data.snapshot): hard links to one committed version, taken
under the readers' lock, that keep reading as that version while the writers go on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sfarm import data
from sfarm.data.fsio import WriterLock
from sfarm.data.layout import LOCK_NAME, MANIFEST_NAME, DatasetNotFound
from sfarm.data.snapshot import remove_snapshot, snapshot_dataset
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles

CANDLES = "candles/sim/BTC-USDT/1m"
MINUTE = 60_000


def view_of(snapshot_root: Path) -> Path:
    """Where a snapshot goes so that `snapshot_root` reads as a node root holding it."""
    into = data.dataset_dir(snapshot_root, CANDLES)
    into.parent.mkdir(parents=True)
    return into


def run_with_timeout(target: object, timeout: float) -> bool:
    """Run `target()` in a thread; True when it returned within `timeout` seconds."""
    thread = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()


def test_snapshot_links_the_committed_files_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 3 * 1440))
    directory = data.dataset_dir(root, CANDLES)
    committed = sorted(name for name in os.listdir(directory) if not name.startswith("."))
    # What a dataset directory may also hold: the lock (always there), a writer's temp file,
    # a link out, a directory, a FIFO.
    (directory / ".2024-01-04.g9.parquet.123.tmp").write_bytes(b"half")
    (tmp_path / "secret").write_text("not data")
    (directory / "2024-01-09.g1.parquet").symlink_to(tmp_path / "secret")
    (directory / "9999.g1.parquet").mkdir()
    os.mkfifo(directory / "2024-02.g1.parquet")
    assert (directory / LOCK_NAME).exists()

    into = tmp_path / "snap"
    names = snapshot_dataset(directory, into)

    assert names == committed and MANIFEST_NAME in names and len(names) == 5
    assert sorted(os.listdir(into)) == committed
    assert into.stat().st_mode & 0o777 == 0o700
    for name in names:  # the same inodes: links, not copies
        assert (into / name).stat().st_ino == (directory / name).stat().st_ino


def test_snapshot_reads_as_the_version_it_was_taken_at(tmp_path: Path) -> None:
    root, view = tmp_path / "root", tmp_path / "view"
    data.append(root, CANDLES, make_candles(T0, 2 * 1440 + 30))
    before = data.read(root, CANDLES)
    snapshot_dataset(data.dataset_dir(root, CANDLES), view_of(view))

    # Appends that rewrite the live day (a new generation, the old file retired) and add days.
    for start in (2 * 1440 + 30, 2 * 1440 + 90, 3 * 1440):
        data.append(root, CANDLES, make_candles(T0 + start * MINUTE, 60))
    data.append(root, CANDLES, make_candles(T0 + 40 * DAY_MS, 1440))  # a new month: relayout
    assert data.read(root, CANDLES).height > before.height

    assert data.read(view, CANDLES).equals(before)
    report = data.verify(view, CANDLES)
    assert report.ok, report.problems
    assert report.rows == before.height


def test_a_snapshot_waits_for_a_committing_writer_and_never_blocks_the_next(
        tmp_path: Path) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 1440))
    directory = data.dataset_dir(root, CANDLES)
    taken: list[list[str]] = []

    with WriterLock(directory) as lock:  # a writer in the middle of a commit
        snapshotting = threading.Thread(
            target=lambda: taken.append(snapshot_dataset(directory, tmp_path / "snap")))
        snapshotting.start()
        snapshotting.join(0.3)
        assert snapshotting.is_alive() and not taken  # the snapshot waits for the commit
        lock.mark_finished()
    snapshotting.join(10)
    assert taken and MANIFEST_NAME in taken[0]

    # The snapshot holds no lock once taken: a writer locks and appends at once.
    def lock_and_release() -> None:
        with WriterLock(directory):
            pass

    assert run_with_timeout(lock_and_release, 5)
    assert run_with_timeout(
        lambda: data.append(root, CANDLES, make_candles(T0 + 1440 * MINUTE, 10)), 30)
    assert data.read(root, CANDLES).height == 1450


def test_no_manifest_is_no_dataset_and_leaves_nothing_behind(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "candles" / "sim" / "ETH-USDT" / "1m"
    directory.mkdir(parents=True)
    (directory / "2024-01-01.g1.parquet").write_bytes(b"orphan")
    with pytest.raises(DatasetNotFound):
        snapshot_dataset(directory, tmp_path / "snap")
    assert not (tmp_path / "snap").exists()
    with pytest.raises(DatasetNotFound):
        snapshot_dataset(tmp_path / "nowhere", tmp_path / "snap")
    assert not (tmp_path / "snap").exists()


def test_the_target_must_not_exist_and_is_removed_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data.append(root, CANDLES, make_candles(T0, 100))
    directory = data.dataset_dir(root, CANDLES)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep").write_text("mine")
    with pytest.raises(FileExistsError):
        snapshot_dataset(directory, tmp_path / "taken")
    assert (tmp_path / "taken" / "keep").read_text() == "mine"

    into = tmp_path / "snap"
    snapshot_dataset(directory, into)
    remove_snapshot(into)
    assert not into.exists()
    remove_snapshot(into)  # already gone: quiet
    assert data.read(root, CANDLES).height == 100  # the dataset's own links are untouched
    assert data.verify(root, CANDLES).ok
