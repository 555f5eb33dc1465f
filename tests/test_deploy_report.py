"""Deploy as operators expect of pyinfra or Ansible: nodes in parallel up to --forks, a node that
fails or cannot be reached never stops the others, a recap at the end, exit 1 when any failed,
and the same in JSON for CI."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.inventory import load_inventory
from sfarm.remote.controller import FarmController
from tests.fixtures.cli import run_sfarm, sfarm_process
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.network import free_port

NODE = """
[networks.{network}.nodes.{name}]
host = "local"
tasks = [{tasks}]
"""
# Port 9 on loopback: nothing listens there (the discard service is long gone): refused at once.
GONE = """
[networks.{network}.nodes.gone]
host = "127.0.0.1"
port = 9
user = "nobody"
tasks = []
"""


def inventory_text(base: Path, nodes: list[str], *, gone: bool = False) -> str:
    text = (head("recap").format(base=base / "nodes") + SIM_EXCHANGE.format(port=free_port())
            + mine_task())
    for index, name in enumerate(nodes):
        text += NODE.format(network="lab", name=name, tasks='"mine"' if index == 0 else "")
    return text + (GONE.format(network="lab") if gone else "")


@pytest.fixture
def base() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="sfr-", dir="/tmp"))
    try:
        yield directory
    finally:
        if (directory / "sfarm.toml").exists():
            sfarm_process("down", "-i", str(directory / "sfarm.toml"), timeout=60)
        shutil.rmtree(directory, ignore_errors=True)


def test_an_unreachable_node_fails_alone_and_the_recap_names_it(base: Path) -> None:
    inventory = base / "sfarm.toml"
    inventory.write_text(inventory_text(base, ["lab"], gone=True))
    result = run_sfarm(inventory, "deploy", "--json", check=False)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    nodes = {node["node"]: node for node in report["nodes"]}
    assert nodes["lab"]["ok"] is True and nodes["lab"]["steps"]
    assert all(step["status"] == "changed" or step["status"] == "ok"
               for step in nodes["lab"]["steps"])
    assert (base / "nodes" / "lab" / "lab" / "supervisor").is_dir()  # really deployed
    assert nodes["gone"]["ok"] is False and "refused" in nodes["gone"]["error"]
    summary = report["summary"]
    assert (summary["nodes"], summary["ok"], summary["failed"]) == (2, 1, ["gone"])
    assert summary["steps"]["changed"] >= 1 and summary["steps"]["failed"] == 0
    # The text form ends with the recap.
    text = run_sfarm(inventory, "deploy", check=False)
    assert text.returncode == 1
    assert text.stdout.strip().splitlines()[-1].startswith(
        "deploy: 1 of 2 nodes failed (gone); steps: ")


def test_forks_bound_the_nodes_worked_on_at_once(base: Path) -> None:
    inventory = base / "sfarm.toml"
    inventory.write_text(inventory_text(base, [f"n{index}" for index in range(5)]))
    loaded = load_inventory(inventory)
    active, most = 0, 0
    lock = threading.Lock()

    def work(spec: object, agent: object) -> str:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.2)
        with lock:
            active -= 1
        return "done"

    for forks, expected in ((2, 2), (10, 5)):
        most = 0
        results = FarmController(loaded, "lab", forks=forks).each(work, lambda s, e: e)
        assert results == ["done"] * 5 and most == expected
    refused = sfarm_process("deploy", "-i", str(inventory), "--forks", "0")
    assert refused.returncode == 2 and "--forks" in refused.stderr


def test_a_task_is_controlled_on_its_node_alone(base: Path) -> None:
    inventory = base / "sfarm.toml"
    inventory.write_text(inventory_text(base, ["a", "b"]))  # `mine` runs on a
    run_sfarm(inventory, "deploy")
    stopped = json.loads(run_sfarm(inventory, "stop", "--task", "mine", "--json").stdout)
    assert [node["node"] for node in stopped["nodes"]] == ["a"]
    assert stopped["summary"]["nodes"] == 1
    everything = json.loads(run_sfarm(inventory, "stop", "--json").stdout)
    assert [node["node"] for node in everything["nodes"]] == ["a", "b"]
