"""The resolver across three machines (user hosts: separate unix users, homes and sshd):
miner -> quant (RSI) -> trader (paper), with an inventory that says nothing about data moving.

Data flows by itself; the farm key lives only on the consumers and is authorized on the
producers behind the gate; a producer's outage makes its consumers' inputs stale (status names
it, exit 1) while everything else runs, and its return brings them back with no gap; moving a
task and removing a node rotates the key, and the removed node's copy opens nothing.
"""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sfarm import data
from sfarm.data.manifest import Manifest
from tests.fixtures.flow_farm import CANDLES, RSI, flow_farm, write_inventory
from tests.fixtures.ssh_farm import SSHFarm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.user_hosts import UserHostPool, ssh
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

MARKER = "sfarm-farm-key:flow/flow"


def _manifest(root: Path, dataset_id: str, node: str | None = None) -> Manifest | None:
    return data.load_manifest(root, dataset_id, mirror_of=node, with_partitions=False)


def _last_ts(root: Path, dataset_id: str, node: str | None = None) -> int:
    manifest = _manifest(root, dataset_id, node)
    return -1 if manifest is None or manifest.last_ts is None else manifest.last_ts


def _inputs(tasks: dict[str, dict[str, Any]], task: str) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in tasks.get(task, {}).get("inputs", [])}


def _trading(farm: SSHFarm) -> bool:
    """Every task running with rows, the paper session's inputs from their producers, fresh
    (polled in process: a wait condition)."""
    tasks = farm.polled_tasks()
    inputs = _inputs(tasks, "paper")
    return (farm.running_with_rows(tasks)
            and {key: (value["source_node"], value["stale_since"])
                 for key, value in inputs.items()} == {CANDLES: ("miner", None),
                                                       RSI: ("quant", None)})


def _authorized(server: SSHServer) -> list[str]:
    return [line for line in server.authorized_keys.read_text().splitlines()
            if line.endswith(MARKER)]


def test_data_flows_over_three_nodes_and_survives_a_producer_outage(
        user_hosts: Callable[[int], list[SSHServer]], user_host_pool: UserHostPool) -> None:
    with flow_farm(user_hosts(3)) as (farm, servers):
        up = farm.sfarm("up", "--json", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        wait_for(lambda: _trading(farm), timeout_s=150, interval_s=1.0,
                 what="the paper session trading on mirrored candles and RSI")
        miner, quant, trader = (farm.root(name) for name in ("miner", "quant", "trader"))

        # The farm key: private half on the consumers only (0600), authorized on producers.
        for root, holds in ((miner, False), (quant, True), (trader, True)):
            key = root / "secrets" / "farm_key"
            assert key.exists() == holds
            if holds:
                assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(_authorized(servers["miner"])) == 1 and str(miner) in \
            _authorized(servers["miner"])[0]
        assert len(_authorized(servers["quant"])) == 1 and str(quant) in \
            _authorized(servers["quant"])[0]
        assert _authorized(servers["trader"]) == []  # nobody reads the trader
        known = (trader / "known_hosts").read_text()
        assert servers["miner"].known_hosts_line in known
        assert servers["quant"].known_hosts_line in known
        # Mirrors are the producers' datasets, checked file by file.
        for root, dataset, node in ((quant, CANDLES, "miner"), (trader, CANDLES, "miner"),
                                    (trader, RSI, "quant")):
            assert data.verify(root, dataset, mirror_of=node).ok

        # The miner's machine becomes unreachable; its workers keep mining.
        user_host_pool.pause(servers["miner"])
        paused_at = time.time()

        def miner_stale() -> bool:
            status = farm.polled_status()
            nodes = {node["name"]: node for node in status["nodes"]}
            tasks = {task["name"]: task for node in status["nodes"] for task in node["tasks"]}
            studies, paper = _inputs(tasks, "studies"), _inputs(tasks, "paper")
            return (not nodes["miner"]["reachable"]
                    and studies[CANDLES]["stale_since"] is not None
                    and paper[CANDLES]["stale_since"] is not None
                    and paper[RSI]["stale_since"] is None
                    and tasks["studies"]["state"] == tasks["paper"]["state"] == "running")

        wait_for(miner_stale, timeout_s=60, interval_s=1.0,
                 what="the miner's consumers showing its candles stale, the rest running")
        down = farm.sfarm("status", check=False)
        assert down.returncode == 1 and "miner" in down.stdout + down.stderr
        stale = _inputs(farm.tasks(), "studies")[CANDLES]["stale_since"]
        assert paused_at - 10 < stale <= time.time()

        # Candles committed during the outage reach nobody until it ends.
        wait_for(lambda: _last_ts(miner, CANDLES) > _last_ts(quant, CANDLES, "miner"),
                 timeout_s=100, interval_s=0.5, what="a candle mined during the outage")
        user_host_pool.resume(servers["miner"])
        target = _last_ts(miner, CANDLES)
        wait_for(lambda: _last_ts(quant, CANDLES, "miner") >= target
                 and _last_ts(trader, CANDLES, "miner") >= target,
                 timeout_s=60, interval_s=0.2, what="the consumers catching up after the outage")
        wait_for(lambda: _trading(farm), timeout_s=60, interval_s=1.0,
                 what="every input fresh again")
        for root in (quant, trader):  # no gap, no duplicate: the mirror verifies
            report = data.verify(root, CANDLES, mirror_of="miner")
            assert report.ok, report
            held = _manifest(root, CANDLES, "miner")
            assert held is not None and held.last_ts is not None and not report.gaps
            assert held.rows == data.read(miner, CANDLES, end=held.last_ts + 1).height


def test_moving_a_task_and_removing_a_node_rotates_the_farm_key(
        user_hosts: Callable[[int], list[SSHServer]], tmp_path: Path) -> None:
    with flow_farm(user_hosts(3)) as (farm, servers):
        assert farm.sfarm("up", "--json", check=False).returncode == 0
        wait_for(lambda: _trading(farm), timeout_s=150, interval_s=1.0,
                 what="the paper session trading on mirrored candles and RSI")
        miner, quant = farm.root("miner"), farm.root("quant")
        old_key = tmp_path / "old_farm_key"
        old_key.write_bytes((farm.root("trader") / "secrets" / "farm_key").read_bytes())
        old_key.chmod(0o600)
        watch = f"sfarm-watch {miner} {CANDLES}"
        gated = ssh(servers["miner"], "id", identity=old_key)  # it logs in, to the gate only
        assert gated.returncode == 1 and "sfarm farm key:" in gated.stderr

        # The paper session moves to quant; the trader leaves the network.
        write_inventory(farm, servers, {"miner": ["mine"], "quant": ["studies", "paper"]},
                        port=_emulator_port(farm))
        moved = farm.sfarm("up", "--json", check=False)
        assert moved.returncode == 0, moved.stdout + moved.stderr

        def paper_on_quant() -> bool:
            status = farm.polled_status()
            nodes = {node["name"]: node for node in status["nodes"]}
            tasks = {task["name"]: task for task in nodes["quant"]["tasks"]}
            inputs = _inputs(tasks, "paper")
            return (set(nodes) == {"miner", "quant"}
                    and tasks.get("paper", {}).get("state") == "running"
                    and {key: (value["source_node"], value["stale_since"])
                         for key, value in inputs.items()} == {CANDLES: ("miner", None),
                                                               RSI: ("quant", None)})

        wait_for(paper_on_quant, timeout_s=120, interval_s=1.0,
                 what="the paper session running on quant, its RSI now local")
        new_key = (quant / "secrets" / "farm_key").read_bytes()
        assert new_key != old_key.read_bytes()  # a consumer left: the key was made anew
        (line,) = _authorized(servers["miner"])
        assert _public(old_key) not in line
        assert _authorized(servers["quant"]) == []  # nobody reads quant any more
        refused = ssh(servers["miner"], watch, identity=old_key, timeout=30)
        assert refused.returncode == 255 and "Permission denied" in refused.stderr

        # Deploy again: nothing changes, the key is kept. A new key only on demand, and only
        # with the whole network.
        again = farm.sfarm("deploy", "--json", check=False)
        assert again.returncode == 0
        assert [step for node in json.loads(again.stdout)["nodes"] for step in node["steps"]
                if step["status"] != "ok"] == []
        assert (quant / "secrets" / "farm_key").read_bytes() == new_key
        partial = farm.sfarm("deploy", "--node", "quant", "--rotate-farm-key", check=False)
        assert partial.returncode == 2 and "without --node" in partial.stderr
        assert farm.sfarm("deploy", "--rotate-farm-key", check=False).returncode == 0
        assert (quant / "secrets" / "farm_key").read_bytes() != new_key


def _public(private_key: Path) -> str:
    import subprocess

    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(private_key)], capture_output=True,
                             text=True, check=True).stdout.split()
    return derived[1]


def _emulator_port(farm: SSHFarm) -> int:
    import tomllib

    url = tomllib.loads(farm.inventory.read_text())["exchanges"]["sim"]["url"]
    return int(url.rsplit(":", 1)[1])


def test_a_producer_behind_a_jump_host_is_read_through_it(
        user_hosts: Callable[[int], list[SSHServer]], tmp_path: Path) -> None:
    miner_host, quant_host, bastion = user_hosts(3)
    placements = {"miner": ["mine"], "quant": ["studies"]}
    with flow_farm([miner_host, quant_host], placements,
                   jumps={"miner": bastion}) as (farm, _servers):
        up = farm.sfarm("up", "--json", check=False)
        assert up.returncode == 0, up.stdout + up.stderr

        def fed() -> bool:
            tasks = farm.polled_tasks()
            inputs = _inputs(tasks, "studies")
            return farm.running_with_rows(tasks) and inputs.get(CANDLES, {}).get(
                "stale_since", 1) is None

        wait_for(fed, timeout_s=120, interval_s=1.0, what="quant fed by miner via the bastion")
        # The bastion (no node) forwards the farm key to the miner only, and runs nothing.
        (line,) = [entry for entry in bastion.authorized_keys.read_text().splitlines()
                   if entry.endswith("sfarm-farm-jump-key:flow/flow")]
        assert line.startswith("restrict,port-forwarding,")
        assert f'permitopen="127.0.0.1:{miner_host.port}",command="/bin/false"' in line
        # And quant's farm key really went through it.
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", str(farm.root("quant") / "secrets" / "farm_key")],
            capture_output=True, text=True, check=True).stdout.split()[1]
        assert f"Accepted publickey for {bastion.user}" in bastion.log.read_text()
        assert fingerprint in bastion.log.read_text()
        key = tmp_path / "farm_key"  # a copy this process's ssh accepts as its own
        key.write_bytes((farm.root("quant") / "secrets" / "farm_key").read_bytes())
        key.chmod(0o600)
        gated = ssh(bastion, "id", identity=key)
        assert (gated.returncode, gated.stdout) == (1, "")  # /bin/false ran, not `id`
        # Deploying again changes nothing there, and the bastion's other lines stay.
        again = farm.sfarm("deploy", "--json", check=False)
        steps = [step for node in json.loads(again.stdout)["nodes"] for step in node["steps"]]
        assert again.returncode == 0 and all(step["status"] == "ok" for step in steps), steps
        assert any(step["step"] == f"jump host 127.0.0.1:{bastion.port}" for step in steps)
        assert bastion.client_key.public_line in bastion.authorized_keys.read_text()
