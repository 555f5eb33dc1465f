"""`sfarm.data.install_staged`: a staged copy of a producer's dataset becomes the mirror's new
version only when it matches its manifest; readers of the mirror see the old version or the
new; a refused copy leaves the mirror as it was.

The copies are staged here as rsync with `--link-dest=<mirror>` stages them: a file the mirror
already holds is hard-linked, any other is copied and reported as transferred.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfarm import data
from sfarm.data.layout import LOCK_NAME
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.waiting import wait_for

CANDLES = "candles/sim/BTC-USDT/1m"
NODE = "miner-1"
DAY = 1440


def stage(producer: Path, root: Path, dataset_id: str = CANDLES) -> set[str]:
    """Stage the producer's current version for `root`'s mirror; the names transferred."""
    source = data.dataset_dir(producer, dataset_id)
    held = data.dataset_dir(root, dataset_id, mirror_of=NODE)
    staging = data.staging_dir(root, dataset_id, mirror_of=NODE)
    transferred = set()
    for path in source.iterdir():
        if path.name == LOCK_NAME:
            continue
        mine = held / path.name
        if mine.is_file() and mine.read_bytes() == path.read_bytes():
            os.link(mine, staging / path.name)
        else:
            shutil.copyfile(path, staging / path.name)
            transferred.add(path.name)
    return transferred


def install(root: Path, transferred: set[str]) -> data.InstallResult:
    return data.install_staged(root, CANDLES, mirror_of=NODE, transferred=transferred)


def files(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (staging included) and its content."""
    return {str(path.relative_to(directory)): path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.is_file()}


def mirrored(root: Path) -> Path:
    return data.dataset_dir(root, CANDLES, mirror_of=NODE)


def test_first_copy_then_only_what_is_new(tmp_path: Path) -> None:
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, 3 * DAY))
    first = install(root, stage(producer, root))
    assert first.changed and first.manifest.rows == 3 * DAY
    named = {p.name for p in mirrored(root).iterdir()} - {LOCK_NAME, "_manifest.json"}
    assert first.files == len(named)  # every partition and index segment came now
    assert first.bytes == sum((mirrored(root) / name).stat().st_size for name in named)
    assert data.read(root, CANDLES, mirror_of=NODE).equals(data.read(producer, CANDLES))
    assert data.verify(root, CANDLES, mirror_of=NODE).ok

    data.append(producer, CANDLES, make_candles(T0 + 3 * DAY * 60_000, 90))
    transferred = stage(producer, root)
    later = install(root, transferred)
    assert later.changed and later.manifest.rows == 3 * DAY + 90
    assert later.files == 2  # the new day and its year's index, not the history
    assert data.read(root, CANDLES, mirror_of=NODE).equals(data.read(producer, CANDLES))
    # What the producer retired is gone from the mirror too, and the staging directory with it.
    source = {p.name for p in data.dataset_dir(producer, CANDLES).iterdir()}
    assert {p.name for p in mirrored(root).iterdir()} == source
    assert data.verify(root, CANDLES, mirror_of=NODE).ok


def test_the_manifest_the_mirror_holds_changes_nothing(tmp_path: Path) -> None:
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    install(root, stage(producer, root))
    before = {p.name: p.stat().st_mtime_ns for p in mirrored(root).iterdir()}
    again = install(root, stage(producer, root))
    assert not again.changed and (again.files, again.bytes) == (0, 0)
    assert again.manifest.rows == DAY
    assert {p.name: p.stat().st_mtime_ns for p in mirrored(root).iterdir()} == before


def flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("target", ["partition", "index"])
def test_a_corrupt_copy_is_refused_and_the_mirror_kept(tmp_path: Path, target: str) -> None:
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    install(root, stage(producer, root))
    before = files(mirrored(root))
    data.append(producer, CANDLES, make_candles(T0 + DAY * 60_000, 30))
    transferred = stage(producer, root)
    staging = mirrored(root) / ".incoming"
    pattern = "*.parquet" if target == "partition" else "_index.*.json"
    victim = next(name for name in sorted(transferred) if Path(name).match(pattern))
    flip_a_byte(staging / victim)
    with pytest.raises(data.StagedCopyInvalid, match=f"{victim} does not match its manifest"):
        install(root, transferred)
    assert files(mirrored(root)) == before  # staging removed, nothing else touched
    assert data.read(root, CANDLES, mirror_of=NODE).height == DAY


def test_copies_that_are_not_of_this_dataset_are_refused(tmp_path: Path) -> None:
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    other = "candles/sim/ETH-USDT/1m"
    data.append(producer, other, make_candles(T0, 10))
    staging = data.staging_dir(root, CANDLES, mirror_of=NODE)
    for path in data.dataset_dir(producer, other).glob("[!.]*"):
        shutil.copyfile(path, staging / path.name)
    with pytest.raises(data.StagedCopyInvalid, match=f"its manifest is of {other}"):
        install(root, {p.name for p in staging.iterdir()})
    data.staging_dir(root, CANDLES, mirror_of=NODE)
    with pytest.raises(data.StagedCopyInvalid, match=r"the copy has no _manifest\.json"):
        install(root, set())
    assert data.locate(root, CANDLES) is None
    assert not (mirrored(root) / ".incoming").exists()


def test_staging_starts_empty(tmp_path: Path) -> None:
    """What an interrupted pull left is not taken for a file the mirror holds."""
    staging = data.staging_dir(tmp_path, CANDLES, mirror_of=NODE)
    (staging / "2024-01-01.g1.parquet").write_bytes(b"half a copy")
    assert list(data.staging_dir(tmp_path, CANDLES, mirror_of=NODE).iterdir()) == []


CORRUPTIONS = ["flip", "truncate", "delete", "grow"]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(corrupt=st.dictionaries(st.integers(0, 7), st.sampled_from(CORRUPTIONS), max_size=3),
       resent=st.sets(st.integers(0, 7)), days=st.integers(1, 3), minutes=st.integers(301, 2000))
def test_any_damaged_copy_is_refused_any_whole_copy_installed(
        corrupt: dict[int, str], resent: set[int], days: int, minutes: int) -> None:
    """Damage to any file that travelled (chosen among them by index), or a size that differs
    anywhere, refuses the copy and leaves the mirror byte for byte as it was; without damage,
    whichever of the held files rsync also re-sent, the mirror becomes the producer's copy."""
    with tempfile.TemporaryDirectory() as temp:
        producer, root = Path(temp, "producer"), Path(temp, "consumer")
        data.append(producer, CANDLES, make_candles(T0, days * DAY))
        install(root, stage(producer, root))
        before = files(mirrored(root))
        data.append(producer, CANDLES, make_candles(T0 + (days * DAY - 300) * 60_000, minutes))
        transferred = stage(producer, root)
        staging = mirrored(root) / ".incoming"
        travelled = sorted(name for name in transferred if name != "_manifest.json")
        held = sorted(set(os.listdir(staging)) - transferred)
        damaged = {travelled[i % len(travelled)]: how for i, how in corrupt.items()}
        for name, how in damaged.items():
            _damage(staging / name, how)
        also_sent = {held[i % len(held)] for i in resent} if held else set()
        if damaged:
            with pytest.raises(data.StagedCopyInvalid):
                install(root, transferred | also_sent)
            assert files(mirrored(root)) == before
        else:
            result = install(root, transferred | also_sent)
            assert result.changed
            assert data.read(root, CANDLES, mirror_of=NODE).equals(data.read(producer, CANDLES))
            assert data.verify(root, CANDLES, mirror_of=NODE).ok


def _damage(path: Path, how: str) -> None:
    if how == "flip":
        flip_a_byte(path)
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:-1])
    elif how == "grow":
        path.write_bytes(path.read_bytes() + b"\0")
    else:
        path.unlink()


def test_a_held_file_of_another_size_is_refused(tmp_path: Path) -> None:
    """Files linked from the mirror are not hashed again, but their size is checked."""
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, 2 * DAY))
    install(root, stage(producer, root))
    data.append(producer, CANDLES, make_candles(T0 + 2 * DAY * 60_000, 10))
    transferred = stage(producer, root)
    staging = mirrored(root) / ".incoming"
    held = next(p for p in sorted(staging.glob("*.parquet")) if p.name not in transferred)
    raw = held.read_bytes()
    held.unlink()  # break the link: the mirror's own file stays whole
    held.write_bytes(raw[:-1])
    with pytest.raises(data.StagedCopyInvalid, match=f"{held.name} does not match"):
        install(root, transferred)


def test_readers_see_the_old_version_or_the_new(tmp_path: Path) -> None:
    producer, root = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY - 100))
    install(root, stage(producer, root))
    versions = {DAY - 100}
    stop = threading.Event()
    seen: list[int] = []
    failures: list[str] = []

    def read_mirror() -> None:
        while not stop.is_set():
            frame = data.read(root, CANDLES, mirror_of=NODE)
            seen.append(frame.height)
            if not frame.equals(make_candles(T0, frame.height)):
                failures.append(f"{frame.height} rows, not a whole version")

    reader = threading.Thread(target=read_mirror)
    reader.start()
    try:
        rows = DAY - 100
        for step in range(25):  # across midnight: day files are rewritten and retired
            added = 7 + step % 5
            data.append(producer, CANDLES, make_candles(T0 + rows * 60_000, added))
            rows += added
            versions.add(rows)
            install(root, stage(producer, root))
            _reads_after(seen, len(seen))
    finally:
        stop.set()
        reader.join()
    assert not failures
    assert set(seen) <= versions
    assert len(set(seen)) >= 25  # every installed version was read at least once


def _reads_after(seen: list[int], count: int) -> None:
    """Wait until a read that began after the `count`-th read ended has finished."""
    wait_for(lambda: len(seen) >= count + 2, what="the reader's next reads", interval_s=0.001)
