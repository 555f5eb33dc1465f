"""Live trading is armed only by an operator's act (issue 15): arming names the worker it was
given to (its pid), so it never survives that worker: after kill -9 of the node's supervisord
its workers die with it (no orphan trades on unsupervised), and the workers the next deploy
starts run disarmed although the old arm file is still there; `up` without --live leaves
them so. Orders are counted in the session's own orders dataset on the node; every arm,
disarm and deploy is in the node's audit log."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest

from sfarm import data
from sfarm.remote.agent import operator_identity
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import ALWAYS_IN, SIM_EXCHANGE, head, live_trade_task, mine_task
from tests.fixtures.processes import alive, pids_under
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

INVENTORY = (head("{network}") + SIM_EXCHANGE + mine_task("1h")
             + live_trade_task(cash=500.0) + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "trader"]
""")
ORDERS = "sessions/trader/orders"


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "armed", files={"always.toml": ALWAYS_IN}) as farm:
        yield farm


def _heartbeat(farm: Farm) -> dict[str, object]:
    try:
        beat: dict[str, object] = json.loads((farm.root / "run" / "trader.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return beat


def _orders(farm: Farm) -> int:
    manifest = data.load_manifest(farm.root, ORDERS, with_partitions=False)
    return manifest.rows if manifest is not None else 0


def _disarmed_worker(farm: Farm) -> int:
    """Wait until the trader's current worker refuses to trade; its pid."""
    wait_for(lambda: _heartbeat(farm).get("waiting_for") == "sfarm start --live",
             what="the live worker holding: not armed")
    pid = _heartbeat(farm).get("pid")
    assert isinstance(pid, int)
    return pid


def test_arming_does_not_survive_its_supervisord(farm: Farm) -> None:
    farm.sfarm("up")
    farm.sfarm("start", "--task", "trader", "--live")
    wait_for(lambda: _orders(farm) >= 1, what="the entry placed")
    armed_worker = farm.tasks()["trader"]["pid"]
    arm_file = farm.root / "run" / "trader.live"
    assert json.loads(arm_file.read_text())["pid"] == armed_worker
    placed = _orders(farm)

    supervisord = int((farm.root / "supervisor" / "supervisord.pid").read_text())
    supervised = [pid for pid in pids_under(farm.root) if pid != supervisord]
    workers = [task["pid"] for task in farm.tasks().values()]
    assert set(workers) < set(supervised)  # and the emulator, a service of the node
    os.kill(supervisord, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in supervised),
             what="every worker and service ending with its supervisord (no orphan)")
    assert arm_file.exists()  # what a crash leaves behind

    farm.sfarm("deploy")  # starts supervisord and its workers: the old arm names a dead pid
    restarted = _disarmed_worker(farm)
    assert restarted != armed_worker and arm_file.exists()
    assert _orders(farm) == placed

    farm.sfarm("up")  # without --live: disarmed, and says so
    assert not arm_file.exists()
    assert _disarmed_worker(farm) == restarted
    assert _orders(farm) == placed

    # Who armed, disarmed and deployed, and when: the node's audit log.
    audit = [json.loads(line) for line in
             (farm.root / "logs" / "audit.log").read_text().splitlines()]
    assert [entry["what"] for entry in audit] == [
        "deploy", "arm trader", "deploy", "deploy", "disarm trader"]
    assert {entry["who"] for entry in audit} == {operator_identity()}
    assert audit[1]["detail"] == f"sfarm start --live (pid {armed_worker})"
    assert audit[4]["detail"] == "sfarm up" and audit[0]["at"] <= audit[4]["at"]
    assert oct((farm.root / "logs" / "audit.log").stat().st_mode & 0o777) == "0o600"
