"""The local farm with real processes: supervisord, workers, the emulator as a service.

up, status shows every task running and datasets growing, kill -9 a worker and see it
restarted with data that verifies, stop/start one task, down leaves no process behind; and two
networks side by side on one machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sfarm import data

pytestmark = pytest.mark.slow

INVENTORY = """
version = 1

[farm]
name = "{network}"

[defaults]
base_dir = "{base}"

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:{port}"
emulate = true

[tasks.mine]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
since = "3h"

[tasks.studies]
kind = "indicators"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
indicators = ["sma(20)", "rsi(14)", "macd(12,26,9)"]

[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "studies"]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_sfarm(inventory: Path, *args: str, check: bool = True, timeout: float = 120,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`sfarm ARGS -i INVENTORY` as a process; never a traceback, exit 0 unless not `check`."""
    result = subprocess.run([sys.executable, "-m", "sfarm", *args, "-i", str(inventory)],
                            capture_output=True, text=True, timeout=timeout, check=False,
                            env=env)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    return result


@dataclass
class Farm:
    inventory: Path
    root: Path  # the node root of `lab`
    network: str

    def sfarm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_sfarm(self.inventory, *args, check=check)

    def status(self) -> dict[str, Any]:
        result = self.sfarm("status", "--json", check=False)
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def tasks(self) -> dict[str, dict[str, Any]]:
        return {task["name"]: task for task in self.status()["nodes"][0]["tasks"]}


def wait_for(condition: Callable[[], bool], timeout_s: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def processes_under(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (our workers, supervisord)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


def make_farm(network: str) -> Iterator[Farm]:
    # Short base path: supervisord's unix socket path must fit in ~100 bytes.
    base = Path(tempfile.mkdtemp(prefix="sf-", dir="/tmp"))
    inventory = base / "sfarm.toml"
    inventory.write_text(INVENTORY.format(network=network, base=base / "nodes", port=free_port()))
    farm = Farm(inventory, base / "nodes" / network / "lab", network)
    try:
        yield farm
    finally:
        subprocess.run([sys.executable, "-m", "sfarm", "down", "-i", str(inventory)],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def farm() -> Iterator[Farm]:
    yield from make_farm("alpha")


def running_with_rows(farm: Farm) -> bool:
    tasks = farm.tasks()
    return all(task["state"] == "running" and task["datasets"]
               and all(d["rows"] > 0 for d in task["datasets"]) for task in tasks.values())


def test_up_status_kill_restart_stop_start_down(farm: Farm) -> None:
    up = farm.sfarm("up", "--json")
    assert json.loads(up.stdout)["ok"] is True
    wait_for(lambda: running_with_rows(farm), what="every task running with data")

    status = farm.status()
    assert status["network"] == "alpha"
    node = status["nodes"][0]
    assert node["reachable"] is True and node["error"] is None
    mine = {t["name"]: t for t in node["tasks"]}["mine"]
    assert mine["kind"] == "mine" and isinstance(mine["pid"], int)
    assert mine["heartbeat_age_s"] < 15
    candles = "candles/sim/BTC-USDT/1m"
    assert [d["id"] for d in mine["datasets"]] == [candles]
    assert data.verify(farm.root, candles).ok
    heartbeat = json.loads((farm.root / "run" / "mine.json").read_text())
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
    wait_for(lambda: farm.tasks()["mine"]["pid"] not in (None, mine["pid"])
             and farm.tasks()["mine"]["state"] == "running", what="the miner restarted")
    assert data.verify(farm.root, candles).ok

    # stop one task for good, then start it again.
    farm.sfarm("stop", "--task", "studies")
    assert farm.tasks()["studies"]["state"] == "stopped"
    time.sleep(3)
    assert farm.tasks()["studies"]["state"] == "stopped"  # not restarted behind our back
    assert farm.tasks()["mine"]["state"] == "running"
    farm.sfarm("start", "--task", "studies")
    wait_for(lambda: farm.tasks()["studies"]["state"] == "running", what="studies running")

    # logs of a worker
    logs = farm.sfarm("logs", "lab", "mine").stdout
    assert "mining sim" in logs

    farm.sfarm("down")
    wait_for(lambda: not processes_under(farm.root), timeout_s=20, what="no process left")
    assert all(t["state"] == "stopped" for t in farm.tasks().values())
    # SIGTERM made every worker finish its step and exit 0 within supervisord's 10 s.
    supervisord_log = (farm.root / "logs" / "supervisord.log").read_text()
    for task in ("mine", "studies"):
        assert f"stopped: {task} (exit status 0)" in supervisord_log
    # Our own kill -9 above reads "(terminated by SIGKILL; not expected)"; a stop never may.
    assert "(terminated by SIGKILL)" not in supervisord_log


def test_two_networks_side_by_side() -> None:
    alpha_farm, beta_farm = make_farm("alpha"), make_farm("beta")
    alpha, beta = next(alpha_farm), next(beta_farm)
    try:
        alpha.sfarm("up")
        beta.sfarm("up")
        wait_for(lambda: running_with_rows(alpha) and running_with_rows(beta),
                 what="both networks running with data")
        # Separate roots, sockets and processes: taking one down leaves the other running.
        assert alpha.root != beta.root
        assert (alpha.root / "supervisor" / "supervisor.sock").exists()
        assert (beta.root / "supervisor" / "supervisor.sock").exists()
        assert not any(str(beta.root) in line for line in processes_under(alpha.root))
        alpha.sfarm("down")
        wait_for(lambda: not processes_under(alpha.root), timeout_s=20, what="alpha down")
        assert all(t["state"] == "running" for t in beta.tasks().values())
        assert data.list_datasets(alpha.root) and data.list_datasets(beta.root)
    finally:
        for generator in (alpha_farm, beta_farm):
            generator.close()
