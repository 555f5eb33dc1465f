"""A node root is its user's alone (issue 15, item 5): the root and its directories 0700, its
files 0600, for a local root and an SSH one; supervisord and the workers write under umask 077;
deploy tightens a root left looser; another user of the machine can read nothing of a running
node and cannot open a dataset's lock (who can open it can hold it forever); two writers of one
heartbeat never tear it.

The other user is a real unix user (tests/fixtures/unix_users.py: root only)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sfarm import data
from sfarm.context import ProgressBoard
from sfarm.data import fsio
from sfarm.data.fsio import WriterLock, write_atomic
from sfarm.data.layout import LOCK_NAME, MANIFEST_NAME, is_temp_file
from sfarm.data.mirror import PULL_LOCK_NAME, pull_lock
from sfarm.errors import UsageError
from sfarm.status import Heartbeat
from tests.fixtures.data_helpers import make_candles
from tests.fixtures.farm import Farm, local_farm, running_with_rows
from tests.fixtures.file_tree import open_to_others
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.unix_users import UnixUser, missing_tools, stranger
from tests.fixtures.waiting import wait_for

CANDLES = "candles/sim/BTC-USDT/1m"
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HAMMER_S = 1.5

INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("2h") + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def _umask(mask: int) -> Iterator[None]:
    """This process's umask for the block (the tests run in one thread)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


# --- what the store writes, whatever the umask ------------------------------------------------


def test_the_store_writes_private_files_even_under_umask_0(tmp_path: Path) -> None:
    """A process that forgot its umask (0: everything world-writable) still writes files only
    its user can open: data, manifests, lock files, pull locks, mirrors' directories."""
    root = tmp_path / "node"
    with _umask(0):
        data.append(root, CANDLES, make_candles(T0, 90, "1m"))
        with pull_lock(root, CANDLES, mirror_of="miner-1"):
            pass
        write_atomic(tmp_path, "beat.json", b"{}")
    directory = data.dataset_dir(root, CANDLES)
    assert (directory / LOCK_NAME).exists() and (directory / MANIFEST_NAME).exists()
    assert (data.dataset_dir(root, CANDLES, mirror_of="miner-1") / PULL_LOCK_NAME).exists()
    assert open_to_others(root) == {}
    assert _mode(tmp_path / "beat.json") == 0o600
    with _umask(0):
        fsio.make_private_dirs(tmp_path / "a" / "b")
    assert _mode(tmp_path / "a") == _mode(tmp_path / "a" / "b") == 0o700
    lock_dir = tmp_path / "locked"
    lock_dir.mkdir()
    with _umask(0), WriterLock(lock_dir):
        assert _mode(lock_dir / LOCK_NAME) == 0o600


@pytest.mark.parametrize("bad", ["indicators/sim/BTC-USDT/1m/..", "candles/sim/../1m",
                                 "sessions/./equity", "sessions/t/.."])
def test_a_dataset_id_with_a_dot_part_is_never_written(tmp_path: Path, bad: str) -> None:
    """Reading such ids is refused in tests/test_data_locate.py; writing and pulling too, and
    nothing is made anywhere."""
    with pytest.raises(UsageError, match="bad dataset id"):
        data.append(tmp_path, bad, make_candles(T0, 2, "1m"))
    with pytest.raises(UsageError, match="bad dataset id"), pull_lock(tmp_path, bad,
                                                                      mirror_of="miner-1"):
        pass
    assert list(tmp_path.iterdir()) == []


# --- one heartbeat, two writers ---------------------------------------------------------------


def _beat(board: ProgressBoard, size: int) -> bytes:
    """A heartbeat whose text is about `size` bytes: writers of different sizes show a torn
    file as JSON that does not parse."""
    board.set_counters({f"c{i}": i for i in range(size // 12)})
    return board.heartbeat("mine", "mine", time.time(), 1.0).model_dump_json().encode()


def test_two_threads_hammering_one_heartbeat_never_tear_it(tmp_path: Path) -> None:
    """A worker's heartbeat thread and its main thread write run/<task>.json at once: every
    write succeeds, a reader always finds a whole heartbeat, and no temp file is left."""
    run = tmp_path / "run"
    run.mkdir()
    target = run / "mine.json"
    write_atomic(run, target.name, _beat(ProgressBoard(), 100))
    stop = threading.Event()
    errors: list[BaseException] = []
    writes = [0, 0]

    def guarded(work: Callable[[], None]) -> Callable[[], None]:
        def loop() -> None:
            try:
                while not stop.is_set():
                    work()
            except BaseException as error:  # reported by the test
                errors.append(error)
                stop.set()
        return loop

    def writer(index: int, size: int) -> Callable[[], None]:
        board = ProgressBoard()  # each thread its own board: the bytes differ in length

        def write() -> None:
            write_atomic(run, target.name, _beat(board, size), sync_dir=False)
            writes[index] += 1
        return write

    def read() -> None:
        Heartbeat.model_validate_json(target.read_bytes())  # never missing, never torn

    threads = [threading.Thread(target=guarded(work)) for work in
               (writer(0, 40), writer(1, 4000), read)]
    for thread in threads:
        thread.start()
    stop.wait(HAMMER_S)
    stop.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert min(writes) > 50, writes  # both really wrote, many times
    assert [name for name in os.listdir(run) if is_temp_file(name)] == []
    assert _mode(target) == 0o600


# --- a running local node and another user ----------------------------------------------------


def _skip_without_users() -> None:
    if os.geteuid() != 0:
        pytest.skip("another unix user is made with useradd: the tests must run as root")
    if missing_tools():
        pytest.skip(f"no {', '.join(missing_tools())} here")


def _what_others_can_open(user: UnixUser, paths: list[Path]) -> list[str]:
    """Those of `paths` that `user` can open for reading (a shell redirection: what `flock`
    or any reader needs) or list, as `user` really (its uid, no other group)."""
    opened = []
    for path in paths:
        test = 'test -d "$1" && exec ls "$1"; exec 3< "$1"'
        result = user.run(["/bin/sh", "-c", test, "sh", str(path)])
        if result.returncode == 0:
            opened.append(str(path))
    return opened


def _deploy_steps(farm: Farm) -> dict[str, dict[str, str]]:
    report = json.loads(farm.sfarm("deploy", "--json").stdout)
    return {step["step"]: step for step in report["nodes"][0]["steps"]}


@pytest.fixture
def farm() -> Iterator[Farm]:
    _skip_without_users()
    with local_farm(INVENTORY, "alpha") as farm:
        # The directory above the nodes' base is open (as /srv or a home could be): only the
        # node root stands between another user and the node's files.
        farm.inventory.parent.chmod(0o755)
        yield farm


@pytest.mark.slow
def test_another_user_can_read_nothing_of_a_running_local_node(farm: Farm) -> None:
    up = json.loads(farm.sfarm("up", "--json").stdout)
    assert up["ok"] is True, up
    wait_for(lambda: running_with_rows(farm.polled_tasks()), what="the miner running with data")
    root = farm.root
    directory = data.dataset_dir(root, CANDLES)
    secret_paths = [root, root / "logs" / "mine.log", root / "logs" / "supervisord.log",
                    root / "run" / "mine.json", root / "inventory.toml", root / "node.json",
                    root / "data", directory / MANIFEST_NAME, directory / LOCK_NAME,
                    root / "supervisor" / "supervisord.conf"]
    assert all(path.exists() for path in secret_paths), secret_paths
    # Everything sfarm, supervisord and the worker wrote is the user's alone, even what the
    # worker writes while it runs: partitions, heartbeats, logs, supervisord's pid and socket.
    assert _mode(root) == 0o700
    assert open_to_others(root) == {}
    assert (root.parent.stat().st_mode & 0o005) == 0o005  # the way up to the root is open
    with stranger() as other:
        assert _what_others_can_open(other, [root.parent]) == [str(root.parent)]  # sees it
        assert _what_others_can_open(other, secret_paths) == []

        # A root loosened (an older sfarm, a hand): the next deploy closes it, and says so.
        way_down = [parent for parent in directory.parents if parent.is_relative_to(root)]
        for path in [*way_down, directory, root / "logs", root / "logs" / "mine.log",
                     directory / LOCK_NAME, root / "inventory.toml"]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        assert _what_others_can_open(other, [directory / LOCK_NAME]) != []  # as it was
        steps = _deploy_steps(farm)
        assert steps["directories"]["status"] == "changed"
        assert "root mode" in steps["directories"]["detail"]
        assert steps["private files"]["status"] == "changed", steps
        assert "logs/mine.log" in steps["private files"]["detail"]
        assert open_to_others(root) == {}
        assert _what_others_can_open(other, secret_paths) == []
    again = _deploy_steps(farm)
    assert all(step["status"] == "ok" for step in again.values()), again


# --- an SSH node ------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_ssh_node_root_is_private(sshd_factory: Callable[[int], list[SSHServer]]) -> None:
    """Deployed and running over SSH (whose sessions have umask 022): the same modes."""
    with ssh_farm(sshd_factory(1)) as farm:
        up = json.loads(farm.sfarm("up", "--json").stdout)
        assert up["ok"] is True, up
        wait_for(farm.running_with_rows, what="mine-a and studies-a running over SSH")
        root = farm.root("node-a")
        assert (root / "logs" / "mine-a.log").exists()
        assert (root / "run" / "studies-a.json").exists()
        assert _mode(root) == 0o700
        assert open_to_others(root) == {}
        redeploy = json.loads(farm.sfarm("deploy", "--json").stdout)
        assert all(step["status"] == "ok" for step in redeploy["nodes"][0]["steps"]), redeploy
