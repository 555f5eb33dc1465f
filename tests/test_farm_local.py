"""The local farm with real processes: supervisord, workers, the emulator as a service.

up, status shows every task running and datasets growing, kill -9 a worker and see it
restarted with data that verifies, stop/start one task, down leaves no process behind; and two
networks side by side on one machine.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from sfarm import data
from tests.fixtures.farm import Farm, local_farm, running_with_rows
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task, studies_task
from tests.fixtures.processes import processes_under
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

INVENTORY = (head("{network}") + SIM_EXCHANGE + mine_task("3h")
             + studies_task(["sma(20)", "rsi(14)", "macd(12,26,9)"]) + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "studies"]
""")


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "alpha") as farm:
        yield farm


def test_up_status_kill_restart_stop_start_down(farm: Farm) -> None:
    up = farm.sfarm("up", "--json")
    assert json.loads(up.stdout)["ok"] is True
    wait_for(lambda: running_with_rows(farm.polled_tasks()), what="every task running with data")

    status = farm.status()
    assert status["network"] == "alpha"
    node = status["nodes"][0]
    assert node["reachable"] is True and node["error"] is None
    mine = {t["name"]: t for t in node["tasks"]}["mine"]
    assert mine["kind"] == "mine" and isinstance(mine["pid"], int)
    assert mine["heartbeat_age_s"] >= 0
    candles = "candles/sim/BTC-USDT/1m"
    assert [d["id"] for d in mine["datasets"]] == [candles]
    assert data.verify(farm.root, candles).ok
    heartbeat = json.loads((farm.root / "run" / "mine.json").read_text())
    wait_for(lambda: json.loads((farm.root / "run" / "mine.json").read_text())["heartbeat"]
             > heartbeat["heartbeat"], what="the miner's next heartbeat")  # it keeps beating
    assert heartbeat["counters"]["requests"] > 0
    assert heartbeat["counters"]["candles_added"] > 0
    studies = json.loads((farm.root / "run" / "studies.json").read_text())
    assert [d["id"] for d in studies["inputs"]] == [candles]  # input freshness
    assert studies["inputs"][0]["rows"] > 0

    # A second deploy changes nothing.
    redeploy = json.loads(farm.sfarm("deploy", "--json").stdout)
    assert all(step["status"] == "ok" for step in redeploy["nodes"][0]["steps"])

    # kill -9 the miner: supervisord restarts it, the data still verifies, and it resumes.
    os.kill(mine["pid"], signal.SIGKILL)
    wait_for(lambda: farm.polled_tasks()["mine"]["pid"] not in (None, mine["pid"])
             and farm.polled_tasks()["mine"]["state"] == "running", what="the miner restarted")
    assert data.verify(farm.root, candles).ok

    # stop one task for good, then start it again.
    farm.sfarm("stop", "--task", "studies")
    assert farm.tasks()["studies"]["state"] == "stopped"
    time.sleep(3)
    assert farm.tasks()["studies"]["state"] == "stopped"  # not restarted behind our back
    assert farm.tasks()["mine"]["state"] == "running"
    farm.sfarm("start", "--task", "studies")
    wait_for(lambda: farm.polled_tasks()["studies"]["state"] == "running", what="studies running")

    # logs of a worker
    logs = farm.sfarm("logs", "lab", "mine").stdout
    assert "mining sim" in logs

    farm.sfarm("down")
    assert processes_under(farm.root) == []  # supervisord included: down waits for its exit
    assert all(t["state"] == "stopped" for t in farm.tasks().values())
    # SIGTERM made every worker finish its step and exit 0 within supervisord's 10 s.
    supervisord_log = (farm.root / "logs" / "supervisord.log").read_text()
    for task in ("mine", "studies"):
        assert f"stopped: {task} (exit status 0)" in supervisord_log
    # Our own kill -9 above reads "(terminated by SIGKILL; not expected)"; a stop never may.
    assert "(terminated by SIGKILL)" not in supervisord_log


def test_two_networks_side_by_side() -> None:
    with local_farm(INVENTORY, "alpha") as alpha, local_farm(INVENTORY, "beta") as beta:
        alpha.sfarm("up")
        beta.sfarm("up")
        wait_for(lambda: running_with_rows(alpha.polled_tasks())
                 and running_with_rows(beta.polled_tasks()), what="both networks running with data")
        # Separate roots, sockets and processes: taking one down leaves the other running.
        assert alpha.root != beta.root
        assert (alpha.root / "supervisor" / "supervisor.sock").exists()
        assert (beta.root / "supervisor" / "supervisor.sock").exists()
        assert not any(str(beta.root) in line for line in processes_under(alpha.root))
        alpha.sfarm("down")
        wait_for(lambda: not processes_under(alpha.root), what="alpha down")
        assert all(t["state"] == "running" for t in beta.tasks().values())
        assert data.list_datasets(alpha.root) and data.list_datasets(beta.root)
