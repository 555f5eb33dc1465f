"""`transport = "sshfs"` in a farm: node quant reads node miner's candles through a read-only
sshfs mount of miner's data/, set up by deploy and kept by quant's resolver.

The miner is a user host (its own unix user and authorized_keys); quant is a root sshd server,
because FUSE here is open to root only (/dev/fuse 0600): a node whose user cannot mount is told
so by deploy (tested below). These are the only SSH tests that may skip, with FUSE's reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

import pytest

from sfarm import data
from sfarm.resolver.sshfs import fuse_problem, is_mounted
from tests.fixtures.flow_farm import CANDLES, flow_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.user_hosts import UserHostPool
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

PLACEMENTS = {"miner": ["mine"], "quant": ["studies"]}


def _candles_input(tasks: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    studies = tasks.get("studies", {})
    inputs = {entry["id"]: entry for entry in studies.get("inputs", [])}
    return inputs.get(CANDLES) if studies.get("state") == "running" else None


def test_a_node_reads_its_producer_through_a_read_only_mount(
        user_hosts: Callable[[int], list[SSHServer]],
        sshd_factory: Callable[[int], list[SSHServer]], user_host_pool: UserHostPool) -> None:
    problem = fuse_problem()
    if problem is not None:
        pytest.skip(f'transport = "sshfs" needs FUSE on this machine: {problem}')
    (miner_host,), (quant_host,) = user_hosts(1), sshd_factory(1)
    with flow_farm([miner_host, quant_host], PLACEMENTS, {"quant": "sshfs"}) as (farm, servers):
        up = farm.sfarm("up", "--json", check=False)
        assert up.returncode == 0, up.stdout + up.stderr

        def fed() -> bool:  # polled in process
            tasks = farm.polled_tasks()
            return (farm.running_with_rows(tasks)
                    and (_candles_input(tasks) or {}).get("stale_since", 1) is None)

        wait_for(fed, timeout_s=150, interval_s=1.0,
                 what="indicators on quant from mounted candles")
        miner, quant = farm.root("miner"), farm.root("quant")
        mountpoint = quant / "mirror" / "miner"
        assert is_mounted(mountpoint)
        source = _candles_input(farm.tasks())
        assert source is not None and source["source_node"] == "miner"

        # The SSHFS key: on the consumer only, 0600; on the producer a read-only sftp line.
        key = quant / "secrets" / "sshfs_key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert not (quant / "secrets" / "farm_key").exists()
        lines = servers["miner"].authorized_keys.read_text().splitlines()
        (line,) = [entry for entry in lines if entry.endswith("sfarm-sshfs-key:flow/flow")]
        assert line.startswith("restrict,command=") and "sftp-server -R" in line
        assert not [entry for entry in lines if "sfarm-farm-key:" in entry]

        # Through the mount, quant reads the miner's own files.
        held = data.read(quant, CANDLES, mirror_of="miner")
        assert held.height > 0
        assert held.equals(data.read(miner, CANDLES, end=int(held["ts"][-1]) + 1))

        # The miner goes away: the input is stale; it comes back: fresh again.
        user_host_pool.pause(servers["miner"])
        wait_for(lambda: (_candles_input(farm.polled_tasks()) or {}).get("stale_since")
                 is not None,
                 timeout_s=60, interval_s=1.0, what="quant's candles stale while miner is down")
        user_host_pool.resume(servers["miner"])
        wait_for(lambda: (_candles_input(farm.polled_tasks()) or {}).get("stale_since", 1)
                 is None,
                 timeout_s=60, interval_s=1.0, what="quant's candles fresh again")
        assert is_mounted(mountpoint)

        down = farm.sfarm("down", check=False)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not is_mounted(mountpoint)


def test_a_node_whose_user_cannot_mount_is_told_at_deploy(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    if os.stat("/dev/fuse").st_mode & 0o006 == 0o006:
        pytest.skip("/dev/fuse is open to every user on this machine: nothing to refuse")
    miner_host, quant_host = user_hosts(2)  # quant's user is not root
    with flow_farm([miner_host, quant_host], PLACEMENTS, {"quant": "sshfs"}) as (farm, _):
        deployed = farm.sfarm("deploy", check=False)
    said = deployed.stdout + deployed.stderr
    assert deployed.returncode == 1, said
    assert "needs FUSE" in said and "/dev/fuse" in said, said
