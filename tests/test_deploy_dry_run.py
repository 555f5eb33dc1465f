"""`sfarm deploy --dry-run`: every step as a deploy would take it, and nothing changed anywhere.

Real nodes: a local node (real supervisord, real workers) and nodes reached over SSH on user
hosts (each a unix user with its own home and sshd). A dry run on a fresh node leaves its whole
tree as it was (kinds, modes, contents) and says what would change; after a deploy it finds
nothing to do; after an inventory edit it names what would change and leaves it as it is; on a
fresh SSH node it installs nothing and says what a deploy would do there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sfarm import __version__
from sfarm.remote.connection import LocalConnection
from sfarm.remote.jump_hosts import JUMP_LINE_CHECK, JUMP_LINE_SCRIPT
from sfarm.remote.provision import STAMP, install_digest, pinned_requirements, provision_needed
from sfarm.remote.wheel import running_sfarm
from sfarm.resolver.authorized import sync_authorized_keys
from sfarm.runtime.envelope import decode_request, encode_request
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import ApplyRequest, Deployment
from sfarm.runtime.supervisor import Supervisor
from tests.fixtures.farm import local_farm
from tests.fixtures.file_tree import file_tree
from tests.fixtures.flow_farm import flow_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task, studies_task
from tests.fixtures.processes import processes_under
from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer

INVENTORY = (head("{network}") + SIM_EXCHANGE + mine_task("3h")
             + studies_task(["sma(20)", "rsi(14)"]) + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "studies"]
""")


def _steps(report: dict[str, Any], node: int = 0) -> dict[str, dict[str, str]]:
    return {step["step"]: step for step in report["nodes"][node]["steps"]}


def _changed(report: dict[str, Any]) -> dict[str, str]:
    """Every step that would change, by name, with its detail."""
    return {step["step"]: step["detail"] for node in report["nodes"] for step in node["steps"]
            if step["status"] == "changed"}


def _dry_run(run: Callable[..., Any]) -> dict[str, Any]:
    result = run("deploy", "--dry-run", "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["dry_run"] is True and report["command"] == "deploy", report
    return report


MARK = "sfarm-farm-key:flow/flow"
LINE = f"restrict,command=\"/bin/false\" ssh-ed25519 AAAAC3Nz {MARK}"
# authorized_keys files as a node or a jump host may hold them (None: no file).
STARTS = [None, "", "ssh-ed25519 AAAAop operator\n", f"ssh-ed25519 AAAAop operator\n{LINE}\n",
          f"restrict ssh-ed25519 AAAAold {MARK}\nssh-ed25519 AAAAop operator",
          f"{LINE}\n{LINE}\n"]


def _stat(path: Path) -> tuple[bytes, int, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mode, info.st_mtime_ns, info.st_ino


@pytest.mark.slow
def test_a_dry_run_on_a_fresh_local_node_changes_nothing_and_says_what_would() -> None:
    with local_farm(INVENTORY, "alpha") as farm:
        base = farm.inventory.parent
        before = file_tree(base)

        report = _dry_run(farm.sfarm)
        assert report["ok"] is True
        steps = _steps(report)
        assert steps["directories"]["status"] == "changed"
        assert "would make" in steps["directories"]["detail"]
        assert "secrets" in steps["directories"]["detail"]
        assert (steps["file inventory.toml"]["status"],
                steps["file inventory.toml"]["detail"]) == ("changed", "would write")
        assert steps["supervisor config"]["status"] == "changed"
        assert (steps["supervisord"]["status"],
                steps["supervisord"]["detail"]) == ("changed", "would start")

        text = farm.sfarm("deploy", "--dry-run")
        assert text.stdout.startswith("dry run: nothing was changed")
        assert "would change" in text.stdout and "inventory.toml" in text.stdout

        # Nothing under the farm's folder changed: no node root, no file, no mode.
        assert file_tree(base) == before
        assert not farm.root.exists()
        assert not processes_under(farm.root)  # no supervisord started


@pytest.mark.slow
def test_after_a_deploy_a_dry_run_finds_nothing_and_an_edit_is_named_not_applied() -> None:
    with local_farm(INVENTORY, "alpha") as farm:
        farm.sfarm("deploy")
        routes = farm.root / "routes.json"
        supervisor = Supervisor(NodeRoot(farm.root))
        pid = (farm.root / "supervisor" / "supervisord.pid").read_text()

        again = _dry_run(farm.sfarm)
        assert again["ok"] is True and _changed(again) == {}, again
        assert _steps(again)["supervisord"]["detail"] == "running"

        # A task added to the node: the dry run names the inventory and supervisord's config.
        deployed = {path: _stat(path) for path in (
            farm.root / "inventory.toml", routes, farm.root / "supervisor" / "supervisord.conf")}
        text = farm.inventory.read_text()
        text = text.replace('tasks = ["mine", "studies"]', 'tasks = ["mine", "studies", "sma"]')
        text += studies_task(["sma(50)"], name="sma")
        farm.inventory.write_text(text)
        programs = set(supervisor.processes())
        root_tree = {path: entry for path, entry in file_tree(farm.root).items()
                     if not path.startswith(("data", "logs", "run"))}  # the workers' own

        edited = _dry_run(farm.sfarm)
        assert edited["ok"] is True
        # (routes.json: the new task's inputs, read from this node's own data; the new
        # worker is added, and no other restarted: their definitions did not change.)
        assert _changed(edited) == {"file inventory.toml": "would rewrite",
                                    "file routes.json": "would rewrite",
                                    "supervisor config": "would write",
                                    "add sma": "would add it: new on this node"}
        assert _steps(edited)["supervisord"] == {
            "step": "supervisord", "status": "ok", "detail": "running, would load the new config"}

        # Untouched: the files (content, mode, even the inode), supervisord and its programs.
        assert {path: _stat(path) for path in deployed} == deployed
        assert {path: entry for path, entry in file_tree(farm.root).items()
                if not path.startswith(("data", "logs", "run"))} == root_tree
        assert (farm.root / "supervisor" / "supervisord.pid").read_text() == pid
        assert set(supervisor.processes()) == programs and "sma" not in programs

        # The real deploy then does what the dry run said, and nothing else.
        applied = json.loads(farm.sfarm("deploy", "--json").stdout)
        assert applied["dry_run"] is False
        assert set(_changed(applied)) == {"file inventory.toml", "file routes.json",
                                          "supervisor config", "add sma"}
        assert "sma" in supervisor.processes()


@pytest.mark.slow
def test_a_fresh_ssh_node_dry_run_installs_nothing(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    """A node whose python has no sfarm: the dry run says it would make the venv and install
    sfarm, and what the deploy would then do, without asking the node (it could not answer)."""
    (server,) = user_hosts(1)
    assert server.home is not None
    with ssh_farm([server], python="/usr/bin/python3") as farm:
        before = file_tree(server.home)

        report = _dry_run(farm.sfarm)
        assert report["ok"] is True, report
        steps = report["nodes"][0]["steps"]
        assert [(step["step"], step["status"]) for step in steps] == [
            ("sfarm venv", "changed"), ("node root", "changed")]
        venv = farm.root("node-a") / "venv"
        assert steps[0]["detail"].startswith(f"would create {venv} with /usr/bin/python3")
        assert "not compared" in steps[1]["detail"]
        assert "inventory.toml" in steps[1]["detail"]
        assert "start supervisord" in steps[1]["detail"]

        assert file_tree(server.home) == before  # no venv, no root, no cache, no key line
        assert not farm.root("node-a").exists()
        assert not processes_under(server.home)


@pytest.mark.slow
def test_a_dry_run_names_an_install_that_would_fail_and_stops_there(sshd: SSHServer) -> None:
    with ssh_farm([sshd], python="/nonexistent/python3") as farm:
        result = farm.sfarm("deploy", "--dry-run", "--json", check=False)
        assert result.returncode == 1
        (step,) = json.loads(result.stdout)["nodes"][0]["steps"]
        assert (step["step"], step["status"]) == ("sfarm venv", "failed")
        assert "/nonexistent/python3" in step["detail"]
        assert not farm.base.exists()


@pytest.mark.slow
def test_an_ssh_node_is_asked_over_the_wire_and_a_deploy_leaves_nothing_to_do(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    """A node whose python runs this sfarm answers the dry run itself (over `sfarm node
    call`); after a deploy its dry run reports every step ok."""
    (server,) = user_hosts(1)
    assert server.home is not None
    with ssh_farm([server]) as farm:
        before = file_tree(server.home)
        report = _dry_run(farm.sfarm)
        assert report["ok"] is True, report
        steps = _steps(report)
        assert steps["sfarm"]["status"] == "ok"
        assert steps["file inventory.toml"]["detail"] == "would write"
        assert steps["supervisord"]["detail"] == "would start"
        assert file_tree(server.home) == before

        farm.sfarm("deploy")
        again = _dry_run(farm.sfarm)
        assert again["ok"] is True and _changed(again) == {}, again
        assert os.path.exists(farm.root("node-a") / "supervisor" / "supervisor.sock")


@pytest.mark.slow
def test_a_wired_network_dry_run_makes_no_key_and_touches_no_authorized_keys(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    """Data crossing nodes through a jump host (a bastion, no node): the dry run plans a new
    farm key but sends none, and leaves every home as it was (the producer's and the
    bastion's authorized_keys included); after a deploy it finds nothing to do."""
    miner_host, quant_host, bastion = user_hosts(3)
    with flow_farm([miner_host, quant_host], {"miner": ["mine"], "quant": ["studies"]},
                   jumps={"miner": bastion}) as (farm, _servers):
        homes = [server.home for server in (miner_host, quant_host, bastion)]
        assert all(home is not None for home in homes)
        before = [file_tree(home) for home in homes if home is not None]

        report = _dry_run(farm.sfarm)
        assert report["ok"] is True, report
        quant, miner = _steps(report, 1), _steps(report, 0)
        assert quant["farm key"]["status"] == "changed"
        assert "never sent" in quant["farm key"]["detail"]
        assert quant["file secrets/farm_key"]["detail"] == "would write"
        assert miner["farm key authorized"]["status"] == "changed"
        jumps = {step["detail"].removeprefix("would update: "): step["status"]
                 for step in report["nodes"][0]["steps"]
                 if step["step"] == f"jump host 127.0.0.1:{bastion.port}"}
        assert jumps == {"sfarm-farm-jump-key:flow/flow": "changed",  # the line it would add
                         "sfarm-sshfs-jump-key:flow/flow (none)": "ok"}  # none, none there
        text = farm.sfarm("deploy", "--dry-run").stdout
        assert text.startswith("dry run: nothing was changed")
        assert "deploy (dry run): 2 nodes ok; steps: " in text and " would change" in text
        assert [file_tree(home) for home in homes if home is not None] == before

        farm.sfarm("deploy")
        again = _dry_run(farm.sfarm)
        assert again["ok"] is True and _changed(again) == {}, again


@pytest.mark.slow
def test_up_dry_run_is_deploys_and_starts_nothing() -> None:
    with local_farm(INVENTORY, "alpha") as farm:
        before = file_tree(farm.inventory.parent)
        result = farm.sfarm("up", "--dry-run", "--json")
        report = json.loads(result.stdout)
        assert (report["command"], report["dry_run"], report["ok"]) == ("up", True, True)
        assert "would then start every worker" in report["notes"][0]["message"]
        assert "a restarted one comes up disarmed" in report["notes"][0]["message"]
        assert _steps(report)["supervisord"]["detail"] == "would start"
        assert file_tree(farm.inventory.parent) == before
        assert not processes_under(farm.root)


# --- check-only modes, against what the real change does ------------------------------------


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("wanted", [LINE, None])
def test_authorized_keys_check_only_agrees_with_the_change_and_touches_nothing(
        tmp_path: Path, start: str | None, wanted: str | None) -> None:
    path = tmp_path / ".ssh" / "authorized_keys"
    if start is not None:
        path.parent.mkdir(mode=0o700)
        path.write_text(start)
        path.chmod(0o644)
    before = file_tree(tmp_path)
    would = sync_authorized_keys(path, MARK, wanted, check_only=True)
    assert file_tree(tmp_path) == before
    assert sync_authorized_keys(path, MARK, wanted) is would


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize("wanted", [LINE, None])
def test_the_jump_hosts_check_script_agrees_with_the_change_and_touches_nothing(
        tmp_path: Path, start: str | None, wanted: str | None) -> None:
    """The scripts a jump host runs (real sh and awk), its home as HOME."""
    path = tmp_path / ".ssh" / "authorized_keys"
    if start is not None:
        path.parent.mkdir(mode=0o700)
        path.write_text(start)

    def run(script: str) -> str:
        result = subprocess.run(["sh", "-c", script, "sfarm-jump", MARK, wanted or ""],
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, check=True)
        return result.stdout.strip()

    before = file_tree(tmp_path)
    would = run(JUMP_LINE_CHECK)
    assert file_tree(tmp_path) == before
    assert run(JUMP_LINE_SCRIPT) == would
    assert run(JUMP_LINE_CHECK) == "ok"  # and once done, nothing more would change


def test_an_apply_request_without_the_new_flags_reads_as_before() -> None:
    deployment = Deployment(network="n", node="a", files=(), programs=())
    raw = json.loads(encode_request(ApplyRequest(deployment=deployment)))
    del raw["request"]["dry_run"], raw["request"]["boot"]
    request = decode_request(json.dumps(raw).encode())
    assert isinstance(request, ApplyRequest)
    assert (request.dry_run, request.boot) == (False, False)
    dry = decode_request(encode_request(ApplyRequest(deployment=deployment, dry_run=True)))
    assert isinstance(dry, ApplyRequest) and dry.dry_run and not dry.boot


def test_the_install_check_says_what_provision_would_do_and_makes_nothing(
        tmp_path: Path) -> None:
    """On this machine (LocalConnection: real processes and files), a node root in each state
    the install can find."""
    root = tmp_path / "root"
    venv = root / "venv"
    with LocalConnection() as connection:
        def check(python: str = "/usr/bin/python3") -> tuple[str, str]:
            before = file_tree(tmp_path)
            step = provision_needed(connection, str(root), python)
            assert file_tree(tmp_path) == before  # nothing made, not even the root
            return step.status, step.detail

        status, detail = check()
        assert status == "changed"
        assert detail.startswith(f"would create {venv} with /usr/bin/python3 and install "
                                 f"sfarm {__version__}")

        status, detail = check("/nonexistent/python3")
        assert status == "failed" and "cannot" in detail and "/nonexistent/python3" in detail

        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
        assert check() == ("changed", f"would install sfarm {__version__} (wheel "
                           f"{running_sfarm().digest[:12]}) in {venv}, which runs no "
                           "complete install")
        (venv / STAMP).write_text("an older build")
        assert check()[1].endswith("which runs another build")

        (venv / STAMP).write_text(install_digest(running_sfarm(), pinned_requirements()))
        status, detail = check()
        assert status == "ok" and detail.endswith(f"in {venv}")
