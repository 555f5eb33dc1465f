"""A hostile producer (its node root tampered with after real appends, served by plain rsync
instead of sfarm's gate) pulled with real rsync: every trick is refused with a clear message,
nothing is written outside `mirror/<node>/<id>/`, the mirror keeps its version (or stays absent
on a first pull) and the staging directory is gone. Also: two pulls of one dataset never run
at once."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm import data
from sfarm.data.layout import check_partition_file_name, check_segment_file_name
from sfarm.data.mirror import InstallResult, pull_lock
from sfarm.remote.connection import LocalConnection
from sfarm.remote.pull import pull
from sfarm.resolver.link import PeerLink, PullFailed, stop_pulls
from sfarm.resolver.link import pull as pull_through
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.waiting import wait_for

CANDLES = "candles/sim/BTC-USDT/1m"
NODE = "miner-1"
DAY = 1440


# A compromised producer runs what it likes in place of sfarm's gate: here plain rsync, serving
# its dataset directory as it is (links, directories and all), so that only the consumer's own
# checks stand between it and the consumer's disk.
HOSTILE_SHELL = ("sh", "-c", 'shift; exec "$@"', "hostile-producer")


def hostile_pull(producer: Path, consumer: Path) -> InstallResult:
    return pull_through(PeerLink(NODE, str(producer), HOSTILE_SHELL, "producer"), CANDLES,
                        consumer)


def tree(root: Path) -> dict[str, str]:
    """Every entry under `root`: files by content hash, links by target, directories as such."""
    listing = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                listing[relative] = "-> " + os.readlink(path)
            elif path.is_dir():
                listing[relative] = "dir"
            else:
                listing[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return listing


def source_dir(producer: Path) -> Path:
    return data.dataset_dir(producer, CANDLES)


def mirror_dir(consumer: Path) -> Path:
    return data.dataset_dir(consumer, CANDLES, mirror_of=NODE)


def rewrite_index(producer: Path, change: Callable[[list[dict[str, object]]], None]) -> None:
    """Let `change` edit the partition entries of the newest index segment, then write that
    segment back with a manifest whose sha256 for it is right: a consistent, lying index."""
    directory = source_dir(producer)
    manifest = json.loads((directory / "_manifest.json").read_bytes())
    segment = manifest["segments"][-1]
    document = json.loads((directory / segment["file"]).read_bytes())
    change(document["partitions"])
    raw = json.dumps(document).encode()
    (directory / segment["file"]).write_bytes(raw)
    segment["sha256"] = hashlib.sha256(raw).hexdigest()
    (directory / "_manifest.json").write_text(json.dumps(manifest))


def newest_partition(producer: Path) -> Path:
    manifest = data.load_manifest(producer, CANDLES)
    assert manifest is not None
    return source_dir(producer) / manifest.partitions[-1].file


@pytest.fixture
def farm(tmp_path: Path) -> tuple[Path, Path]:
    """A producer with two days and a consumer that pulled them, then a third day produced."""
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, 2 * DAY))
    hostile_pull(producer, consumer)
    data.append(producer, CANDLES, make_candles(T0 + 2 * DAY * 60_000, 30))
    return producer, consumer


def assert_refused(producer: Path, consumer: Path, message: str) -> None:
    """The pull fails with `message`; the consumer's tree (mirror and all) is as before."""
    before = tree(consumer)
    with pytest.raises(data.StagedCopyInvalid, match=message) as refused:
        hostile_pull(producer, consumer)
    assert refused.value.message.endswith("the mirror is unchanged")
    assert tree(consumer) == before  # nothing written, moved or left in staging
    assert not (mirror_dir(consumer) / ".incoming").exists()
    assert data.read(consumer, CANDLES, mirror_of=NODE).height == 2 * DAY
    assert data.verify(consumer, CANDLES, mirror_of=NODE).ok


def test_a_partition_linked_to_a_file_outside_is_not_copied(farm: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    producer, consumer = farm
    partition = newest_partition(producer)
    outside = tmp_path / "outside" / "secret"
    outside.parent.mkdir()
    shutil.copyfile(partition, outside)  # the link's target even matches the manifest
    partition.unlink()
    partition.symlink_to(outside)
    # rsync skips the link (--no-links): the manifest then names a file that did not come.
    assert_refused(producer, consumer, f"{partition.name} is missing")
    assert outside.read_bytes() == partition.read_bytes()


def test_a_staged_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    """Whatever put it there, install never follows a staged link, even one to a file with
    exactly the content the manifest asks for."""
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    staging = data.staging_dir(consumer, CANDLES, mirror_of=NODE)
    outside = tmp_path / "outside.parquet"
    for path in source_dir(producer).glob("[!.]*"):
        if path.suffix == ".parquet":
            shutil.copyfile(path, outside)
            (staging / path.name).symlink_to(outside)
            linked = path.name
        else:
            shutil.copyfile(path, staging / path.name)
    with pytest.raises(data.StagedCopyInvalid, match=f"{linked} is a symbolic link"):
        data.install_staged(consumer, CANDLES, mirror_of=NODE,
                            transferred={p.name for p in staging.iterdir()})
    assert data.locate(consumer, CANDLES) is None
    assert not staging.exists()


def test_a_directory_where_a_partition_should_be_is_refused(farm: tuple[Path, Path]) -> None:
    producer, consumer = farm
    partition = newest_partition(producer)
    partition.unlink()
    partition.mkdir()
    (partition / "inside").write_text("not a partition")
    assert_refused(producer, consumer, f"{partition.name} is not a regular file")


@pytest.mark.parametrize("name", ["../{held}", "sub/{held}", ".{held}", "{held}/..",
                                  "/etc/passwd", "{held}\n"])
def test_a_manifest_naming_a_file_outside_the_dataset_is_refused(
        farm: tuple[Path, Path], tmp_path: Path, name: str) -> None:
    """A lying but self-consistent index (sizes and hashes right) naming a held partition
    through `..` would move the mirror's own file out of it; through a subdirectory the
    producer also ships, it would be read from there. The names are refused."""
    producer, consumer = farm
    held = data.load_manifest(producer, CANDLES)
    assert held is not None
    first = held.partitions[0].file  # in the mirror since the first pull
    hostile = name.format(held=first)
    (source_dir(producer) / "sub").mkdir()
    shutil.copyfile(source_dir(producer) / first, source_dir(producer) / "sub" / first)

    def rename_first(partitions: list[dict[str, object]]) -> None:
        for entry in partitions:
            if entry["file"] == first:
                entry["file"] = hostile

    rewrite_index(producer, rename_first)
    outside = tree(tmp_path / "producer")
    assert_refused(producer, consumer, "is not a partition file name")
    assert tree(tmp_path / "producer") == outside


def test_a_segment_named_outside_the_dataset_is_refused(farm: tuple[Path, Path]) -> None:
    producer, consumer = farm
    directory = source_dir(producer)
    manifest = json.loads((directory / "_manifest.json").read_bytes())
    segment = manifest["segments"][-1]
    (directory / "sub").mkdir()
    shutil.copyfile(directory / segment["file"], directory / "sub" / segment["file"])
    segment["file"] = "sub/" + segment["file"]
    (directory / "_manifest.json").write_text(json.dumps(manifest))
    assert_refused(producer, consumer, "is not an index segment file name")


def test_an_oversized_partition_is_refused_by_its_size(farm: tuple[Path, Path]) -> None:
    producer, consumer = farm
    partition = newest_partition(producer)
    size = partition.stat().st_size
    with partition.open("ab") as handle:
        handle.write(b"\0" * (1 << 20))
    assert_refused(producer, consumer,
                   f"{partition.name} does not match its manifest \\({size + (1 << 20)} "
                   f"bytes, not {size}\\)")


def test_a_manifest_naming_a_missing_file_is_refused(farm: tuple[Path, Path]) -> None:
    producer, consumer = farm
    partition = newest_partition(producer)
    partition.unlink()
    assert_refused(producer, consumer, f"{partition.name} is missing")


def test_a_manifest_naming_a_file_twice_is_refused(farm: tuple[Path, Path]) -> None:
    producer, consumer = farm
    rewrite_index(producer, lambda partitions: partitions.append(dict(partitions[-1])))
    assert_refused(producer, consumer, "names .* twice")


def test_a_hostile_first_pull_leaves_no_mirror(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    rewrite_index(producer, lambda partitions: partitions[0].update(file="../escape.parquet"))
    with pytest.raises(data.StagedCopyInvalid, match="is not a partition file name"):
        hostile_pull(producer, consumer)
    assert data.locate(consumer, CANDLES) is None
    # Only the pull's own lock file remains, inside the mirror's dataset directory.
    files = [path for path in consumer.rglob("*") if not path.is_dir()]
    assert files == [mirror_dir(consumer) / ".pull.lock"]


@pytest.mark.parametrize("name", ["2024.g1.parquet", "2024-01.g12.parquet",
                                  "2024-01-05.g3.parquet"])
def test_the_store_own_partition_names_are_admitted(name: str) -> None:
    assert check_partition_file_name(name) == name
    with pytest.raises(ValueError):
        check_segment_file_name(name)
    assert check_segment_file_name("_index.all.g4.json") == "_index.all.g4.json"


@pytest.mark.parametrize("name", ["../2024.g1.parquet", "a/2024.g1.parquet", ".2024.g1.parquet",
                                  "2024.g1.parquet\n", "/2024.g1.parquet", "2024.g1.parquet/",
                                  "٢٠٢٤.g1.parquet", "2024.g1.json", "_manifest.json", ""])
def test_other_names_are_not_partition_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a partition file name"):
        check_partition_file_name(name)


def test_a_second_pull_of_one_dataset_waits_for_the_first(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, 3 * DAY))
    done = threading.Event()

    def second() -> None:
        pull(LocalConnection(), str(producer), NODE, CANDLES, consumer)
        done.set()

    with pull_lock(consumer, CANDLES, mirror_of=NODE):  # a first pull, in the middle of it
        thread = threading.Thread(target=second)
        thread.start()
        assert not done.wait(0.5)  # it shares no staging directory with the first
    thread.join(timeout=30)
    assert done.is_set()
    assert data.read(consumer, CANDLES, mirror_of=NODE).equals(data.read(producer, CANDLES))
    assert data.verify(consumer, CANDLES, mirror_of=NODE).ok
    assert not (mirror_dir(consumer) / ".incoming").exists()
    # The lock file stays beside the mirror's files; dataset listings do not see it.
    assert (mirror_dir(consumer) / ".pull.lock").is_file()
    assert [(info.id, info.node) for info in data.list_datasets(consumer)] == [(CANDLES, NODE)]


# A hostile producer that sends what it likes as fast as a fast network (rsync's own limit on
# the sending side: 100 MB/s).
FLOODING_SHELL = ("sh", "-c", 'shift; rsync="$1"; shift; exec "$rsync" --bwlimit=100m "$@"',
                  "flooding-producer")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_pull_that_would_fill_the_disk_is_stopped(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    with open(newest_partition(producer), "r+b") as partition:  # 200 MiB the manifest denies
        partition.truncate(200 << 20)
    consumer.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320m", "tmpfs", str(consumer)],
                   check=True)
    try:
        link = PeerLink(NODE, str(producer), FLOODING_SHELL, "producer")
        with pytest.raises(PullFailed, match="less than 256 MiB left"):
            pull_through(link, CANDLES, consumer)
        # The partial copy is gone (its space is back once rsync's killed processes exit).
        wait_for(lambda: shutil.disk_usage(consumer).free > 300 << 20, timeout_s=5,
                 what="the partial copy's space given back")
        assert data.locate(consumer, CANDLES) is None
    finally:
        subprocess.run(["umount", "--lazy", str(consumer)], check=True)


def test_a_stopping_resolver_ends_its_pulls(tmp_path: Path) -> None:
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, DAY))
    with open(newest_partition(producer), "r+b") as partition:
        partition.truncate(64 << 20)  # a minute's transfer at 1 MB/s
    slow = ("sh", "-c", 'shift; rsync="$1"; shift; exec "$rsync" --bwlimit=1m "$@"', "slow")
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            pull_through(PeerLink(NODE, str(producer), slow, "producer"), CANDLES, consumer)
        except BaseException as error:  # noted for the assertions below
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    staging = mirror_dir(consumer) / ".incoming"
    deadline = time.monotonic() + 30
    while not any(staging.glob(".*")) and time.monotonic() < deadline:  # rsync is writing
        time.sleep(0.05)
    started = time.monotonic()
    stop_pulls()
    thread.join(timeout=10)
    assert not thread.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome.get("error"), PullFailed)
    # rsync, its receiver and the producer's side all end (each cleans up on SIGTERM first).
    wait_for(lambda: not [path for path in Path("/proc").glob("[0-9]*/cmdline")
                          if b"--bwlimit=1m" in _read_quietly(path)],
             timeout_s=5, what="every process of the stopped pull to end")
    assert data.locate(consumer, CANDLES) is None


def _read_quietly(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""
