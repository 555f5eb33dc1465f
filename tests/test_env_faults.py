"""Environment faults are messages, not tracebacks (issue 16, item 3), made real: a full tmpfs and
a read-only bind mount in a private mount namespace, a directory root may not write once its
capabilities are dropped, a deleted logs/ under a running supervisord, a node root never made.

Each names the path and what to do, the data committed before stays as it was (its manifest
byte for byte, and it verifies), and a worker goes on by itself once the condition clears.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sfarm import data
from sfarm.data.layout import MANIFEST_NAME
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import node_task_status
from tests.fixtures.cli import run
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.emulator import RunningEmulator
from tests.fixtures.farm import Farm, local_farm, running_with_rows
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.mount_namespace import MountNamespace, sfarm_argv, without_caps
from tests.fixtures.waiting import wait_for

CANDLES = "candles/binance/BTC-USDT/1m"
NO_TRACEBACK = "Traceback"


@pytest.fixture
def root() -> Iterator[Path]:
    """A node root in a short directory (tmp_path may be long; the worker's test needs none
    of supervisord's limits, but keeps to the farm's conventions)."""
    base = Path(tempfile.mkdtemp(prefix="sf-env-", dir="/tmp"))
    try:
        yield base / "node"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _mine(namespace: MountNamespace, root: Path, emulator: RunningEmulator,
          *window: str) -> subprocess.CompletedProcess[str]:
    return namespace.run(sfarm_argv("mine", "--exchange", "binance", "--url", emulator.url,
                                    "--market", "BTC/USDT", "--timeframe", "1m", "--root",
                                    str(root), *window))


def _committed(namespace: MountNamespace, root: Path) -> bytes:
    """The dataset's manifest, as the namespace sees it: its last commit."""
    return (namespace.path(data.dataset_dir(root, CANDLES)) / MANIFEST_NAME).read_bytes()


def _verified_rows(namespace: MountNamespace, root: Path) -> int:
    report = data.verify(namespace.path(root), CANDLES)
    assert report.ok, report.to_dict()
    manifest = data.load_manifest(namespace.path(root), CANDLES)
    assert manifest is not None
    return manifest.rows


def _refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """A one-message failure: exit 1, no traceback, `words` in what it said."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert NO_TRACEBACK not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# ---- disk full ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_mine_on_a_full_disk_says_where_and_keeps_the_commit(
        mount_namespace: MountNamespace, root: Path, emulator: RunningEmulator) -> None:
    data_dir = root / "data"
    mount_namespace.mount_tmpfs(data_dir, 1024)
    first = _mine(mount_namespace, root, emulator, "--since", "3h", "--until", "2h")
    assert first.returncode == 0, first.stderr
    committed = _committed(mount_namespace, root)
    rows = _verified_rows(mount_namespace, root)
    assert rows > 0

    mount_namespace.fill(data_dir)
    full = _mine(mount_namespace, root, emulator, "--since", "3h")
    _refused(full, "no space left", str(data.dataset_dir(root, CANDLES)), "df -h")
    assert _committed(mount_namespace, root) == committed
    assert _verified_rows(mount_namespace, root) == rows

    mount_namespace.free(data_dir)
    again = _mine(mount_namespace, root, emulator, "--since", "3h")
    assert again.returncode == 0, again.stderr
    assert _verified_rows(mount_namespace, root) > rows


def _worker_inventory(root: Path, emulator: RunningEmulator) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "inventory.toml").write_text(
        head("env", base_dir=False)
        + f'\n[exchanges.binance]\nccxt = "binance"\nurl = "{emulator.url}"\n'
        + '\n[tasks.mine]\nkind = "mine"\nexchange = "binance"\nmarkets = ["BTC/USDT"]\n'
          'timeframes = ["1m"]\nsince = "3h"\n'
        + f'\n[networks.env.nodes.lab]\nhost = "local"\nbase_dir = "{root.parent}"\n'
          'tasks = ["mine"]\n')


def _heartbeat(root: Path) -> dict[str, Any]:
    try:
        beat: dict[str, Any] = json.loads(NodeRoot(root).heartbeat("mine").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return beat


def _rows_in(beat: dict[str, Any]) -> int:
    return sum(output["rows"] for output in beat.get("outputs", []))


@pytest.mark.slow
def test_a_worker_shows_a_full_disk_and_goes_on_once_space_is_freed(
        mount_namespace: MountNamespace, root: Path, emulator: RunningEmulator) -> None:
    _worker_inventory(root, emulator)
    data_dir = root / "data"  # its own small device; run/ (the heartbeat) is on the root's
    mount_namespace.mount_tmpfs(data_dir, 1024)
    assert _mine(mount_namespace, root, emulator, "--since", "3h", "--until", "2h").returncode == 0
    committed = _committed(mount_namespace, root)
    rows = _verified_rows(mount_namespace, root)
    mount_namespace.fill(data_dir)

    worker = mount_namespace.popen(sfarm_argv("worker", "run", "--root", str(root), "--task",
                                              "mine"), stderr=subprocess.PIPE)
    try:
        wait_for(lambda: "no space left" in (_heartbeat(root).get("last_error") or ""),
                 what="the full disk in the worker's heartbeat")
        error = _heartbeat(root)["last_error"]
        assert str(data.dataset_dir(root, CANDLES)) in error and "df -h" in error
        status = node_task_status(NodeRoot(root), {"mine": "mine"})[0]
        assert status.last_error is not None and "no space left" in status.last_error
        assert _committed(mount_namespace, root) == committed  # nothing half-written

        mount_namespace.free(data_dir)
        wait_for(lambda: _rows_in(_heartbeat(root)) > rows
                 and _heartbeat(root).get("last_error") is None
                 and _heartbeat(root).get("state") == "running",
                 what="new candles committed and the error gone")
        assert worker.poll() is None  # the same worker, never restarted
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 0
    assert NO_TRACEBACK not in stderr, stderr
    assert _verified_rows(mount_namespace, root) > rows


# ---- read-only and not permitted ---------------------------------------------------------------

def _csv(path: Path, start_ms: int, count: int) -> Path:
    make_candles(start_ms, count).with_columns(pl.col("ts") // 1000).write_csv(path)
    return path


def _first_import(namespace: MountNamespace, root: Path) -> tuple[list[str], bytes]:
    """Import 30 candles (committed), and return the command that would import 30 more and
    the manifest of that commit."""
    first = namespace.run(_import(root, _csv(root.parent / "a.csv", T0, 30)))
    assert first.returncode == 0, first.stderr
    return _import(root, _csv(root.parent / "b.csv", T0 + 1_800_000, 30)), _committed(namespace,
                                                                                      root)


def _import(root: Path, csv: Path) -> list[str]:
    return sfarm_argv("data", "import", str(csv), "--id", CANDLES, "--root", str(root))


def _still_committed(namespace: MountNamespace, root: Path, committed: bytes) -> None:
    assert _committed(namespace, root) == committed
    assert _verified_rows(namespace, root) == 30


def test_import_into_a_read_only_dataset_says_so(mount_namespace: MountNamespace,
                                                 root: Path) -> None:
    second, committed = _first_import(mount_namespace, root)
    directory = data.dataset_dir(root, CANDLES)
    mount_namespace.read_only(directory)
    refused = mount_namespace.run(second)
    _refused(refused, "read-only", str(directory), "remount it read-write")
    _still_committed(mount_namespace, root, committed)


def test_import_into_a_directory_it_may_not_write_says_so(mount_namespace: MountNamespace,
                                                          root: Path) -> None:
    second, committed = _first_import(mount_namespace, root)
    directory = data.dataset_dir(root, CANDLES)
    directory.chmod(0o500)  # binds root only without its capabilities (below)
    try:
        refused = mount_namespace.run(without_caps(second))
    finally:
        directory.chmod(0o700)
    _refused(refused, "permission denied", str(directory))
    _still_committed(mount_namespace, root, committed)



def test_a_pull_into_a_mirror_this_node_may_not_write_is_a_storage_error(tmp_path: Path) -> None:
    """The resolver's install of a pulled copy meets this machine's refusal as any write does:
    a StorageError naming the directory (the resolver then fails that dataset, not the peer),
    nothing installed."""
    producer, consumer = tmp_path / "producer", tmp_path / "consumer"
    data.append(producer, CANDLES, make_candles(T0, 30))
    staging = data.staging_dir(consumer, CANDLES, mirror_of="miner")
    for path in data.dataset_dir(producer, CANDLES).glob("[!.]*"):
        shutil.copyfile(path, staging / path.name)
    mirror = staging.parent
    install = ("import sys; from sfarm import data; from sfarm.data.fsio import StorageError\n"
               "try:\n"
               f"    data.install_staged({str(consumer)!r}, {CANDLES!r}, mirror_of='miner',\n"
               "                        transferred=sys.argv[1:])\n"
               "except StorageError as error:\n"
               "    sys.exit(f'StorageError: {error.message}')\n")
    mirror.chmod(0o500)  # binds root only without its capabilities (below)
    try:
        refused = subprocess.run(without_caps([sys.executable, "-c", install,
                                               *(p.name for p in staging.iterdir())]),
                                 capture_output=True, text=True, timeout=60, check=False)
    finally:
        mirror.chmod(0o700)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith(f"StorageError: installing {CANDLES} pulled from miner: "
                                     f"permission denied at {mirror}"), refused.stderr
    assert data.locate(consumer, CANDLES, mirror_of="miner") is None

# ---- a deleted logs/ ---------------------------------------------------------------------------

LOGS_INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("1h") + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
"""


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(LOGS_INVENTORY, "logs") as farm:
        yield farm


@pytest.mark.slow
def test_a_deleted_logs_directory_comes_back_and_workers_restart(farm: Farm) -> None:
    farm.sfarm("up")
    wait_for(lambda: running_with_rows(farm.polled_tasks()), what="the miner running with data")
    logs = NodeRoot(farm.root).logs

    # Deleted under running workers: supervisord opens the logs again, in a logs/ made again.
    shutil.rmtree(logs)
    wait_for(lambda: (logs / "supervisord.log").exists() and (logs / "mine.log").exists(),
             timeout_s=30, what="logs/ and its files made again")
    assert "opened again" in (logs / "supervisord.log").read_text()
    assert (logs.stat().st_mode & 0o777) == 0o700

    # Deleted, then the worker dies: its respawn must not fail for want of logs/.
    pid = farm.tasks()["mine"]["pid"]
    shutil.rmtree(logs)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: farm.polled_tasks()["mine"]["pid"] not in (None, pid)
             and farm.polled_tasks()["mine"]["state"] == "running", timeout_s=30,
             what="the miner respawned without an operator")
    assert (logs / "mine.log").exists()

    # Deleted while supervisord is down: `start` starts it all the same.
    farm.sfarm("down")
    shutil.rmtree(logs)
    farm.sfarm("start")
    wait_for(lambda: farm.polled_tasks()["mine"]["state"] == "running", timeout_s=60,
             what="the miner started again")
    assert (logs / "supervisord.log").exists()


# ---- a missing node root -----------------------------------------------------------------------

MISSING_INVENTORY = head("missing") + SIM_EXCHANGE + mine_task() + """
[networks.missing.nodes.lab]
host = "local"
tasks = ["mine"]
"""


def test_node_commands_on_a_missing_root_say_deploy_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(MISSING_INVENTORY.format(base=tmp_path / "nodes", port=1))
    node_root = tmp_path / "nodes" / "missing" / "lab"
    # status: the node answers, its tasks are not deployed, and say why (the table cuts long
    # notes to keep a task on one line: the whole message is in --json's last_error).
    code, out, err = run(capsys, "status", "-i", str(inventory))
    assert code == 1 and NO_TRACEBACK not in out + err and "not deployed" in out
    for command in (["status", "--json"], ["logs", "lab"], ["logs", "lab", "mine"],
                    ["stop"], ["start", "--task", "mine"], ["restart"]):
        code, out, err = run(capsys, *command, "-i", str(inventory))
        said = out + err
        assert code == 1, (command, said)
        assert NO_TRACEBACK not in said and f"no node root at {node_root}" in said, said
        assert "sfarm up" in said, said
        assert not node_root.exists()  # asking does not make it
    code, _, err = run(capsys, "down", "-i", str(inventory))  # nothing runs: nothing to stop
    assert code == 0, err


def test_data_commands_on_a_missing_root_say_deploy_first(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    for command in (["ls"], ["verify"], ["show", CANDLES], ["relayout", CANDLES]):
        code, out, err = run(capsys, "data", *command, "--root", str(missing))
        assert code == 2, (command, out + err)
        assert f"--root {missing}: no such directory" in err and "sfarm up" in err, err
