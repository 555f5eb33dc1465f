"""A farm whose nodes are reached over SSH: real sshd servers on loopback, real supervisord.

Each node runs `sfarm node call` through its own sshd (strict host keys: the servers' keys are
in the known_hosts of a temporary HOME). Most tests give the nodes the interpreter running the
tests as `python` (it has this sfarm); one lets `deploy` install sfarm into the node's venv.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm import data
from tests.fixtures.processes import processes_under
from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

@pytest.fixture
def servers(sshd_factory: Callable[[int], list[SSHServer]]) -> list[SSHServer]:
    return sshd_factory(2)


def test_up_status_control_down_over_ssh(servers: list[SSHServer],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with ssh_farm(servers) as farm:
        up = json.loads(farm.sfarm("up", "--json").stdout)
        assert up["ok"] is True, up
        wait_for(farm.running_with_rows, what="every task on both nodes running")

        # In-process, as `status --watch` and the dashboard poll: one connection per node.
        from sfarm.inventory import load_inventory
        from sfarm.remote.controller import FarmController

        monkeypatch.setenv("HOME", str(farm.home))
        controller = FarmController(load_inventory(farm.inventory), "edge",
                                    keep_connections=True)
        try:
            first, second = controller.status(), controller.status()
            assert first.healthy and second.healthy
            agents = list(controller._open.values())  # type: ignore[union-attr]
            controller.status()
            assert list(controller._open.values()) == agents  # reused, not reopened
        finally:
            controller.close()

        status = farm.status()
        assert [node["name"] for node in status["nodes"]] == ["node-a", "node-b"]
        assert all(node["reachable"] and node["error"] is None for node in status["nodes"])
        root_a = farm.root("node-a")
        assert data.verify(root_a, "candles/sim-a/BTC-USDT/1m").ok
        assert data.verify(farm.root("node-b"), "candles/sim-b/ETH-USDT/1m").ok
        # Deployed over SSH like a local node: secrets dir private, supervisor socket 0700.
        assert (root_a / "inventory.toml").read_bytes() == farm.inventory.read_bytes()
        assert oct((root_a / "supervisor").stat().st_mode & 0o777) == "0o700"

        redeploy = json.loads(farm.sfarm("deploy", "--json").stdout)
        assert all(step["status"] == "ok" for node in redeploy["nodes"]
                   for step in node["steps"]), redeploy

        farm.sfarm("stop", "--node", "node-b", "--task", "mine-b")
        assert farm.tasks()["mine-b"]["state"] == "stopped"
        assert farm.tasks()["mine-a"]["state"] == "running"
        farm.sfarm("start", "--node", "node-b", "--task", "mine-b")
        wait_for(lambda: farm.polled_tasks()["mine-b"]["state"] == "running", what="mine-b again")

        assert "mining sim-a" in farm.sfarm("logs", "node-a", "mine-a").stdout
        every = farm.sfarm("logs", "node-a", "--lines", "5").stdout.splitlines()
        assert every and {line.split()[0] for line in every} <= {"mine-a", "studies-a"}
        assert any(line.startswith("mine-a ") for line in every)

        farm.sfarm("down")
        wait_for(lambda: not processes_under(farm.base), what="no process left")
        assert all(task["state"] == "stopped" for task in farm.tasks().values())


def test_unknown_host_key_is_refused_per_node(servers: list[SSHServer]) -> None:
    with ssh_farm(servers, trusted=False) as farm:
        result = farm.sfarm("status", "--json", check=False)
        assert result.returncode == 1
        nodes = json.loads(result.stdout)["nodes"]
        assert all(not node["reachable"] and "host key" in node["error"] for node in nodes)
        deploy = farm.sfarm("deploy", check=False)
        assert deploy.returncode == 1 and not (farm.base / "edge").exists()


def test_deploy_installs_sfarm_into_the_node_venv(servers: list[SSHServer],
                                                  node_index: str) -> None:
    """A node with a bare python: deploy makes <root>/venv with the controller's dependency
    versions (from the node's package index, on 127.0.0.1) and source, a redeploy finds nothing
    to do, and the workers run from the venv."""
    bare = shutil.which("python3") or "python3"
    with ssh_farm(servers[:1], python=bare) as farm:
        before = farm.status()["nodes"][0]
        assert not before["reachable"] and "sfarm deploy" in before["error"]

        first = json.loads(farm.sfarm("deploy", "--json").stdout)["nodes"][0]
        assert first["ok"] and first["steps"][0]["step"] == "sfarm venv"
        assert first["steps"][0]["status"] == "changed", first
        venv_python = farm.root("node-a") / "venv" / "bin" / "python"
        version = subprocess.run([str(venv_python), "-m", "sfarm", "--version"],
                                 capture_output=True, text=True, check=True).stdout.split()
        import sfarm

        assert version == ["sfarm", sfarm.__version__]
        polars_version = subprocess.run(
            [str(venv_python), "-c", "import polars; print(polars.__version__)"],
            capture_output=True, text=True, check=True).stdout.strip()
        import polars

        assert polars_version == polars.__version__  # the controller's versions, pinned

        again = json.loads(farm.sfarm("deploy", "--json").stdout)["nodes"][0]
        assert all(step["status"] == "ok" for step in again["steps"]), again

        farm.sfarm("start")
        wait_for(farm.running_with_rows, what="tasks running from the venv")
        assert any(str(venv_python) in line and "worker run" in line
                   for line in processes_under(farm.base))
        farm.sfarm("down")


def test_a_python_that_cannot_make_a_venv_is_named(servers: list[SSHServer]) -> None:
    with ssh_farm(servers[:1], python="/nonexistent/python3") as farm:
        result = farm.sfarm("deploy", "--json", check=False)
        assert result.returncode == 1
        error = json.loads(result.stdout)["nodes"][0]["error"]
        assert "cannot create" in error and "/nonexistent/python3" in error, error


def test_live_tasks_are_armed_and_disarmed_on_the_node(sshd: SSHServer, tmp_path: Path) -> None:
    """`--live` reaches SSH nodes: arming asks the node's supervisord for the worker (none
    runs here: refused, with the reason), disarming removes the arm file from the node's root,
    and the node's audit log names who did it."""
    from sfarm.remote.agent import NodeAgent, operator_identity
    from sfarm.remote.ssh import SSHConnection
    from sfarm.remote.ssh_transport import SSHTransport
    from sfarm.trading.live_guard import arm

    spec = sshd.node("trader-1", base_dir=str(tmp_path), python=sys.executable)
    connection = SSHConnection(spec, known_hosts=sshd.known_hosts)
    agent = NodeAgent(spec, SSHTransport(spec, connection))
    arm_file = tmp_path / "test" / "trader-1" / "run" / "btc-live.live"
    arm_file.parent.parent.mkdir(parents=True)  # a deployed node's root (a missing one refuses)
    try:
        steps = agent.set_live(["btc-live"], True, "sfarm start --live")
        assert [(s.step, s.status) for s in steps] == [("arm btc-live", "failed")]
        assert "its worker is not running" in steps[0].detail and not arm_file.exists()
        arm(arm_file.parent.parent, "btc-live", 4242)  # a worker armed earlier
        steps = agent.set_live(["btc-live"], False, "sfarm stop")
        assert [(s.step, s.status) for s in steps] == [("disarm btc-live", "changed")]
        assert not arm_file.exists()
        assert agent.set_live(["btc-live"], False, "sfarm down")[0].status == "ok"
        (entry,) = [json.loads(line) for line in (arm_file.parent.parent / "logs" /
                                                   "audit.log").read_text().splitlines()]
        assert (entry["who"], entry["what"], entry["detail"]) == (
            operator_identity(), "disarm btc-live", "sfarm stop")
    finally:
        agent.close()


def test_a_python_with_the_same_version_of_other_code_is_not_used_as_is(
        sshd: SSHServer, tmp_path: Path, third_party: Path) -> None:
    """A node's python is used as it is only when it runs this very sfarm, code included: one
    whose sfarm has the same version string but other code (an older image) gets a venv."""
    from sfarm.remote.ssh import SSHConnection
    from sfarm.remote.ssh_transport import SSHTransport
    from tests.fixtures.node_python import node_python
    from tests.fixtures.projects import copy_project, edit
    from tests.fixtures.venvs import make_venv, site_packages

    other = copy_project(tmp_path / "other")
    edit(other, "not the controller's code")
    image_python = make_venv(tmp_path / "image", third_party)
    (site_packages(tmp_path / "image") / "other-sfarm.pth").write_text(f"{other}\n")
    # node_python(): a python running this very sfarm over SSH, PYTHONPATH or not.
    for python, expected in ((node_python(), "sfarm"), (str(image_python), "sfarm venv")):
        spec = sshd.node("image", base_dir=str(tmp_path / "nodes"), python=python)
        transport = SSHTransport(spec, SSHConnection(spec, known_hosts=sshd.known_hosts))
        try:
            steps, _ = transport.check_install()  # what a deploy would do, doing nothing
        finally:
            transport.close()
        assert steps[-1].step == expected, steps
    assert not (tmp_path / "nodes").exists()
