"""Any node is a control point: on a deployed node, in its root, `sfarm` finds the inventory
deploy placed there and manages the whole network with the operator's own credentials (an
agent forwarded with `ssh -A`), checking every node's host key against what deploy shipped.

The nodes are user hosts (separate unix users with their own sshd): the node's user has no
known_hosts, no key of its own and cannot read the controller's identity_file, so what works
works through the forwarded agent and the shipped known_hosts alone."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures.flow_farm import CANDLES, flow_farm
from tests.fixtures.ssh_agent import ssh_agent
from tests.fixtures.ssh_farm import SSHFarm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.user_hosts import ssh
from tests.fixtures.waiting import wait_for

PLACEMENTS = {"miner": ["mine"], "quant": ["studies"]}


def on_node(server: SSHServer, root: Path, *args: str, agent: Path | None = None,
            ) -> tuple[int, str, str]:
    """`sfarm ARGS` run by the node's user in the node root (no -i), over ssh."""
    assert server.python is not None
    command = (f"cd {shlex.quote(str(root))} && NO_COLOR=1 COLUMNS=200 "
               f"{shlex.quote(server.python)} -m sfarm {shlex.join(args)}")
    result = ssh(server, command, agent=agent, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


def states(farm: SSHFarm) -> dict[str, str]:
    return {name: task["state"] for name, task in farm.tasks().items()}


def test_a_node_manages_the_network_with_the_operators_forwarded_agent(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    with flow_farm(user_hosts(2), PLACEMENTS) as (farm, servers):
        up = farm.sfarm("up", "--json", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        wait_for(farm.running_with_rows, timeout_s=120, interval_s=1.0, what="farm running")
        quant, root = servers["quant"], farm.root("quant")
        # What deploy shipped: the inventory, which node this root is, every node's host key.
        assert json.loads((root / "node.json").read_text())["node"] == "quant"
        shipped = (root / "known_hosts").read_text().splitlines()
        for server in servers.values():
            assert f"[127.0.0.1]:{server.port} {server.host_public_key}" in shipped
        assert not (quant.home / ".ssh" / "known_hosts").exists()

        with ssh_agent(quant.client_key.private) as agent:
            code, out, err = on_node(quant, root, "status", "--json", agent=agent)
            document: dict[str, Any] = json.loads(out)
            assert document["network"] == "flow", err
            assert {node["name"]: node["reachable"] for node in document["nodes"]} == {
                "miner": True, "quant": True}, err
            tasks = {task["name"]: task for node in document["nodes"] for task in node["tasks"]}
            assert tasks["mine"]["state"] == "running" and tasks["studies"]["state"] == "running"

            code, out, err = on_node(quant, root, "stop", "--task", "mine", agent=agent)
            assert code == 0, out + err
            assert states(farm)["mine"] == "stopped"  # the controller sees what quant did
            code, out, err = on_node(quant, root, "start", "--task", "mine", agent=agent)
            assert code == 0, out + err
            wait_for(lambda: farm.polled_tasks()["mine"]["state"] == "running", timeout_s=60,
                     what="mine running again")

            code, out, err = on_node(quant, root, "logs", "miner", "mine", "--lines", "5",
                                     agent=agent)
            assert code == 0 and out.strip(), out + err
            code, out, err = on_node(quant, root, "data", "pull", "miner", CANDLES, "--root",
                                     str(quant.home / "pulled"), "--json", agent=agent)
            assert code == 0, out + err
            (pulled,) = json.loads(out)["datasets"]
            assert pulled["id"] == CANDLES and pulled["rows"] > 0
            # Deploying from the node is deploying from the controller: nothing to change.
            code, out, err = on_node(quant, root, "deploy", "--json", agent=agent)
            assert code == 0, out + err
            report = json.loads(out)
            changed = [(node["node"], step) for node in report["nodes"]
                       for step in node["steps"] if step["status"] != "ok"]
            assert changed == [] and report["summary"]["failed"] == [], changed

        # Without an agent the node has no credentials of the operator's; the farm key in its
        # root is never tried, and the message says how to log in.
        code, out, err = on_node(quant, root, "status", "--json")
        assert code == 1
        document = json.loads(out)
        for node in document["nodes"]:
            assert node["reachable"] is False
            assert "authentication failed" in node["error"]
            assert "ssh -A" in node["error"] and "never with the farm key" in node["error"]
        assert states(farm) == {"mine": "running", "studies": "running"}


def test_a_changed_host_key_is_refused_from_a_node(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    """Host keys are checked strictly against the shipped known_hosts: a node whose key is not
    the one deploy checked is refused, never trusted on first use."""
    with flow_farm(user_hosts(2), {"miner": ["mine"], "quant": []}) as (farm, servers):
        deployed = farm.sfarm("deploy", "--json", check=False)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        quant, root = servers["quant"], farm.root("quant")
        known = root / "known_hosts"
        miner_line = f"[127.0.0.1]:{servers['miner'].port} {servers['miner'].host_public_key}"
        forged = servers["quant"].host_public_key  # a real key, but another host's
        known.write_text(known.read_text().replace(
            miner_line, f"[127.0.0.1]:{servers['miner'].port} {forged}"))
        with ssh_agent(quant.client_key.private) as agent:
            code, out, _ = on_node(quant, root, "status", "--json", agent=agent)
        nodes = {node["name"]: node for node in json.loads(out)["nodes"]}
        assert code == 1 and nodes["quant"]["reachable"] is True
        assert nodes["miner"]["reachable"] is False
        error = nodes["miner"]["error"]
        assert "HOST KEY CHANGED" in error and "refusing to connect" in error
        assert f"host keys deploy shipped to {known}" in error and "ssh-keyscan" not in error
