"""`sfarm.data.locate`: a node root's own dataset, a producer's mirror of it, or nowhere; the
choice among several mirrors is the caller's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sfarm import data
from sfarm.errors import RunError, UsageError
from tests.fixtures.data_helpers import T0, make_candles

CANDLES = "candles/sim/BTC-USDT/1h"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A producer's root holding CANDLES."""
    root = tmp_path / "producer"
    data.append(root, CANDLES, make_candles(T0, 30, "1h"))
    return root


def mirror(source: Path, root: Path, node: str) -> Path:
    """A copy of the producer's dataset in `root`'s mirror of `node` (as a pull leaves it)."""
    directory = data.dataset_dir(root, CANDLES, mirror_of=node)
    shutil.copytree(data.dataset_dir(source, CANDLES), directory)
    return directory


def test_own_data(source: Path) -> None:
    location = data.locate(source, CANDLES)
    assert location == data.DatasetLocation(CANDLES, None, data.dataset_dir(source, CANDLES))


def test_a_mirror_when_the_root_has_no_own_copy(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "consumer"
    directory = mirror(source, root, "miner-1")
    location = data.locate(root, CANDLES)
    assert location == data.DatasetLocation(CANDLES, "miner-1", directory)
    # The location is what the readers take.
    assert data.read(root, CANDLES, mirror_of=location.node).equals(data.read(source, CANDLES))


def test_nowhere(source: Path, tmp_path: Path) -> None:
    assert data.locate(tmp_path / "no-such-root", CANDLES) is None
    assert data.locate(source, "candles/sim/ETH-USDT/1h") is None
    mirror(source, tmp_path / "consumer", "miner-1")
    assert data.locate(tmp_path / "consumer", "candles/sim/ETH-USDT/1h") is None


def test_own_data_comes_before_mirrors(source: Path, tmp_path: Path) -> None:
    mirror(source, source, "miner-1")
    mirror(source, source, "miner-2")
    location = data.locate(source, CANDLES)
    assert location is not None and location.node is None


def test_several_mirrors_and_no_choice_is_an_error(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "consumer"
    for node in ("miner-2", "miner-1"):
        mirror(source, root, node)
    with pytest.raises(data.AmbiguousDataset,
                       match=f"{CANDLES} is not produced here but mirrored from miner-1, miner-2"
                       ) as raised:
        data.locate(root, CANDLES)
    assert raised.value.nodes == ("miner-1", "miner-2")
    assert isinstance(raised.value, UsageError)


def test_mirror_of_looks_at_that_mirror_only(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "consumer"
    data.append(root, CANDLES, make_candles(T0, 5, "1h"))  # an own copy too
    for node in ("miner-1", "miner-2"):
        mirror(source, root, node)
    location = data.locate(root, CANDLES, mirror_of="miner-2")
    assert location == data.DatasetLocation(
        CANDLES, "miner-2", data.dataset_dir(root, CANDLES, mirror_of="miner-2"))
    assert data.locate(root, CANDLES, mirror_of="miner-3") is None
    assert data.locate(source, CANDLES, mirror_of="miner-1") is None  # own data is not a mirror


def test_a_dataset_exists_from_its_first_commit(tmp_path: Path, source: Path) -> None:
    """Files of an unfinished first write, or a pull's staged copy, are no dataset yet."""
    own = data.dataset_dir(tmp_path / "consumer", CANDLES)
    own.mkdir(parents=True)
    (own / "2024-01.g1.parquet").write_bytes(b"not committed")
    staging = data.staging_dir(tmp_path / "consumer", CANDLES, mirror_of="miner-1")
    shutil.copytree(data.dataset_dir(source, CANDLES), staging, dirs_exist_ok=True)
    assert data.locate(tmp_path / "consumer", CANDLES) is None


def test_locating_reads_no_index(source: Path) -> None:
    """Every poll locates its inputs: the partition index (O(history)) stays closed. An index
    that cannot be read does not stop the locating; the read that follows says what is wrong."""
    directory = data.dataset_dir(source, CANDLES)
    for index in directory.glob("_index.*.json"):
        index.write_text("{broken")
    assert data.locate(source, CANDLES) == data.DatasetLocation(CANDLES, None, directory)
    with pytest.raises(RunError, match="not a valid index segment"):
        data.read(source, CANDLES)


@pytest.mark.parametrize("bad", ["candles/sim/BTC-USDT/7x", "sessions/../..",
                                 "sessions/x/..", "candles/../BTC-USDT/1h", "sessions/./x"])
def test_a_bad_id_is_a_usage_error(source: Path, bad: str) -> None:
    with pytest.raises(UsageError):  # `..` would name a directory outside data/ or mirror/
        data.locate(source, bad)


def test_commit_marks_change_with_each_commit_here_or_in_a_mirror(source: Path,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "consumer"
    before = data.commit_marks(root, [CANDLES])
    assert before == (None,)  # nothing yet, and no mirror directory at all
    mirror(source, root, "miner-1")
    mirrored = data.commit_marks(root, [CANDLES])
    assert mirrored != before and data.commit_marks(root, [CANDLES]) == mirrored  # stable
    data.append(root, CANDLES, make_candles(T0 + 30 * 3_600_000, 2, "1h"))  # own data now
    assert data.commit_marks(root, [CANDLES]) != mirrored


def test_sleep_until_commit_wakes_on_a_commit(source: Path) -> None:
    import threading
    import time

    from sfarm.context import TaskContext
    from sfarm.tasks import MineTask

    task = MineTask(kind="mine", exchange="sim", markets=["BTC/USDT"], timeframes=["1h"],
                    since="2024-01-01")
    context = TaskContext(source, "mine", task)
    writer = threading.Timer(0.3, data.append,
                             (source, CANDLES, make_candles(T0 + 30 * 3_600_000, 1, "1h")))
    started = time.monotonic()
    writer.start()
    assert context.sleep_until_commit([CANDLES], 10.0) is False
    assert 0.25 < time.monotonic() - started < 3.0  # woken by the commit, not the timeout
    writer.join()
    context.stop.set()
    assert context.sleep_until_commit([CANDLES], 10.0) is True  # stopped: the engine ends
