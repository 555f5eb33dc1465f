"""Farms of several SSH nodes, one of them unreachable: a host that accepts the connection and
never answers (tests/fixtures/black_hole.py, on 127.0.0.2). It is reported unreachable within
its connect timeout (5 s by default, `sfarm status --timeout S`), and the other nodes' rows come
complete and no later than that: every node is asked in parallel.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm.remote.controller import FarmController
from sfarm.remote.defaults import CONNECT_TIMEOUT_S
from sfarm.status import NodeStatus
from tests.fixtures.black_hole import BlackHole, black_hole
from tests.fixtures.cli import run_sfarm
from tests.fixtures.scale_farm import ScaleFarm, scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

SLACK_S = 2.0  # thread start, a loaded machine: the test is about 5 s, never 10


def _with_dead_node(farm: ScaleFarm, hole: BlackHole) -> Path:
    """The farm's inventory plus node `dead` at the black hole."""
    inventory = farm.inventory.with_name("with-dead.toml")
    inventory.write_text(farm.inventory.read_text() + (
        f'\n[networks.scale.nodes.dead]\nhost = "{hole.host}"\nport = {hole.port}\n'
        f'user = "nobody"\ntasks = []\n'))
    return inventory


def _timed_status(inventory: Path, connect_timeout: float = CONNECT_TIMEOUT_S
                  ) -> tuple[float, dict[str, NodeStatus]]:
    """How long a status of every node of `inventory` took, and its rows by node."""
    from sfarm.inventory import load_inventory

    controller = FarmController(load_inventory(inventory), "scale",
                                connect_timeout=connect_timeout)
    began = time.monotonic()
    status = controller.status()
    return time.monotonic() - began, {node.name: node for node in status.nodes}


def test_an_unreachable_node_is_reported_within_its_timeout(
        sshd_factory: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    with scale_farm(sshd_factory(2)) as farm, black_hole() as hole:
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="both nodes mining")
        monkeypatch.setenv("HOME", str(farm.home))
        inventory = _with_dead_node(farm, hole)

        alone, _ = _timed_status(farm.inventory)  # the reachable nodes, nothing in the way
        elapsed, nodes = _timed_status(inventory)  # the default timeout: 5 s
        dead = nodes.pop("dead")
        assert not dead.reachable and "timed out after 5 s" in (dead.error or ""), dead
        assert all(node.reachable and node.error is None and node.tasks
                   and node.tasks[0].state == "running" for node in nodes.values()), nodes
        assert elapsed < max(5.0, alone) + SLACK_S, (elapsed, alone)

        elapsed, nodes = _timed_status(inventory, connect_timeout=1.0)
        assert "timed out after 1 s" in (nodes["dead"].error or "")
        assert elapsed < max(1.0, alone) + SLACK_S, (elapsed, alone)

        # The command line: --timeout, the row of the node that never answered, exit 1.
        result = run_sfarm(inventory, "status", "--json", "--timeout", "1.5", check=False,
                           env=farm.env())
        assert result.returncode == 1
        rows = {row["name"]: row for row in json.loads(result.stdout)["nodes"]}
        assert "timed out after 1.5 s" in rows["dead"]["error"]
        assert [rows[name]["reachable"] for name in farm.nodes] == [True, True]
        assert "--timeout" in farm.sfarm("status", "--help").stdout


def test_kept_refreshes_are_not_held_up_by_a_dead_node(
        sshd_factory: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    """status --watch and the dashboard poll with kept connections: after the first refresh
    (which waits for every node, up to the connect timeout), a node that never answers is shown
    with its last reason while the others' rows keep coming at once."""
    from sfarm.inventory import load_inventory
    from sfarm.remote.refresh import REFRESH_WAIT_S

    with scale_farm(sshd_factory(2)) as farm, black_hole() as hole:
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="both nodes mining")
        monkeypatch.setenv("HOME", str(farm.home))
        controller = FarmController(load_inventory(_with_dead_node(farm, hole)), "scale",
                                    keep_connections=True, connect_timeout=4.0)
        try:
            for refresh in range(4):
                began = time.monotonic()
                nodes = {node.name: node for node in controller.status().nodes}
                elapsed = time.monotonic() - began
                dead = nodes.pop("dead")
                assert not dead.reachable and "timed out after 4 s" in (dead.error or ""), dead
                assert all(node.reachable and node.tasks[0].state == "running"
                           for node in nodes.values()), nodes
                if refresh == 0:
                    assert elapsed >= 4.0  # the first screen is whole
                else:
                    assert elapsed < REFRESH_WAIT_S + 1.0, elapsed  # never the 4 s again
        finally:
            began = time.monotonic()
            controller.close()  # ends the kept agents; the dead node's attempt is not waited for
            assert time.monotonic() - began < 3.0
