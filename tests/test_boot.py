"""`sfarm deploy --boot`: the systemd user unit (rendered by a pure function, checked by
systemd's own parser), the commands it and the crontab fallback run (run here for real: they
start the very supervisord deploy talks to, and disarm live tasks first), and a node without
systemd, where the boot step fails with what to do instead and every other step stands.

This machine runs no systemd (no /run/systemd/system), so the unit is never enabled here: no
test fakes systemctl.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.runtime.boot import (
    SYSTEMD_RUNNING,
    BootFacts,
    boot_changes,
    crontab_line,
    read_facts,
    render_unit,
    unit_name,
    unit_path,
    wants_link,
)
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.supervisor import DAEMON_MODULE, Supervisor, daemon_command
from sfarm.trading.live_guard import arm, arm_file
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.file_tree import file_tree
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.processes import PROJECT, processes_under
from tests.fixtures.waiting import wait_for

INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("3h") + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
"""
ODD_ROOT = NodeRoot(Path('/srv/sf 100%/$HOME "q"/alpha/lab'))


def _setting(unit: str, key: str) -> str:
    (value,) = [line.split("=", 1)[1] for line in unit.splitlines()
                if line.startswith(f"{key}=")]
    return value


def _exec_words(value: str) -> list[str]:
    """The words systemd reads in an Exec line that holds only double-quoted words."""
    return shlex.split(value.replace("$$", "$").replace("%%", "%"))


# --- the unit and the crontab line, pure ------------------------------------------------------


def test_the_unit_runs_supervisord_in_the_foreground_as_deploy_starts_it() -> None:
    unit = render_unit(ODD_ROOT, "alpha", "lab", "/opt/py 3/bin/python")
    assert _exec_words(_setting(unit, "ExecStart")) == [
        *daemon_command(ODD_ROOT, "/opt/py 3/bin/python"), "--nodaemon"]
    assert _setting(unit, "WorkingDirectory") == str(ODD_ROOT.path).replace("%", "%%")
    assert _setting(unit, "Environment") == "PYTHONUNBUFFERED=1"
    assert _setting(unit, "UMask") == "0077"  # what supervisord writes is the user's alone
    assert _setting(unit, "Restart") == "on-failure"  # `sfarm down`'s clean exit stays down
    assert _setting(unit, "WantedBy") == "default.target"
    condition = _exec_words(_setting(unit, "ExecCondition"))
    assert condition[0] == "/opt/py 3/bin/python"
    assert condition[-1] == str(ODD_ROOT.supervisor / "supervisor.sock")
    pre = _exec_words(_setting(unit, "ExecStartPre"))
    assert pre[:2] == ["/bin/sh", "-c"] and pre[3] == str(arm_file(ODD_ROOT.path, "x").parent)


def test_unit_names_and_places() -> None:
    assert unit_name("prod", "miner-1") == "sfarm-prod-miner-1.service"
    for bad in ("", "a b", "../x", "a/b"):
        with pytest.raises(ValueError):
            unit_name(bad, "lab")
    home = Path("/home/op")
    assert unit_path(home, "prod", "m") == home / ".config/systemd/user/sfarm-prod-m.service"
    assert wants_link(home, "prod", "m") == (
        home / ".config/systemd/user/default.target.wants/sfarm-prod-m.service")
    with pytest.raises(ValueError):
        render_unit(NodeRoot(Path("/a\nb")), "alpha", "lab", "/usr/bin/python3")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_parses_the_unit(tmp_path: Path) -> None:
    """systemd's own parser (`systemd-analyze verify`, no running systemd needed) accepts the
    unit of a root whose path needs quoting; the same check refuses a unit spoilt on purpose."""
    root = NodeRoot(tmp_path / "sf 100%" / "alpha" / "lab")
    (root.path / "run").mkdir(parents=True)
    good = tmp_path / unit_name("alpha", "lab")
    good.write_text(render_unit(root, "alpha", "lab", sys.executable))
    result = subprocess.run(["systemd-analyze", "verify", str(good)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert str(good) not in result.stderr  # no warning about any line of it
    spoilt = tmp_path / unit_name("alpha", "spoilt")
    spoilt.write_text(good.read_text().replace('ExecStart="', 'ExecStart=relative"'))
    refused = subprocess.run(["systemd-analyze", "verify", str(spoilt)], capture_output=True,
                             text=True, check=False)
    assert refused.returncode != 0 and str(spoilt) in refused.stderr


def test_the_crontab_line_escapes_cron_and_the_shell() -> None:
    line = crontab_line(ODD_ROOT, "/usr/bin/python3")
    assert line.startswith("@reboot ")
    command = line.removeprefix("@reboot ")
    assert "%" not in command.replace("\\%", "")  # a bare % would end cron's command
    words = shlex.split(command.replace("\\%", "%"))
    assert words[:3] == ["cd", str(ODD_ROOT.path), "&&"]
    assert words[words.index("umask"):words.index("umask") + 2] == ["umask", "077;"]
    assert words[-len(daemon_command(ODD_ROOT, "/usr/bin/python3")):] == daemon_command(
        ODD_ROOT, "/usr/bin/python3")


def test_what_is_missing_for_a_boot_start() -> None:
    unit = "the unit\n"
    done = BootFacts(systemd=True, unit_text=unit, enabled=True, lingering=True)
    assert boot_changes(done, unit) == []
    assert boot_changes(BootFacts(True, None, False, False), unit) == [
        "write unit", "enable unit", "enable lingering"]
    assert boot_changes(BootFacts(True, "an older unit\n", True, True), unit) == ["rewrite unit"]
    assert boot_changes(BootFacts(True, unit, True, False), unit) == ["enable lingering"]


def test_the_facts_come_from_the_unit_file_and_its_wants_link(tmp_path: Path) -> None:
    facts = read_facts(tmp_path, "alpha", "lab")
    assert (facts.unit_text, facts.enabled) == (None, False)
    assert facts.systemd == SYSTEMD_RUNNING.is_dir()
    unit = unit_path(tmp_path, "alpha", "lab")
    unit.parent.mkdir(parents=True)
    unit.write_text("x\n")
    link = wants_link(tmp_path, "alpha", "lab")
    link.parent.mkdir()
    link.symlink_to(unit)
    assert (read_facts(tmp_path, "alpha", "lab").unit_text,
            read_facts(tmp_path, "alpha", "lab").enabled) == ("x\n", True)


# --- real nodes ---------------------------------------------------------------------------------


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "alpha") as farm:
        yield farm


# What systemd or cron gives the command: a bare PATH, and this checkout's sfarm where a node
# has its own installed (supervisord is sfarm.runtime.supervisord).
BOOT_ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT)}


def _supervisords(root: Path) -> list[str]:
    return [line for line in processes_under(root) if DAEMON_MODULE in line]


def _deploy(farm: Farm, home: Path, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    from tests.fixtures.cli import run_sfarm

    result = run_sfarm(farm.inventory, "deploy", "--json", *args, check=False,
                       env={"HOME": str(home)})
    report = json.loads(result.stdout)
    return result.returncode, {step["step"]: step for step in report["nodes"][0]["steps"]}


@pytest.mark.slow
def test_the_units_command_runs_the_supervisord_deploy_talks_to(farm: Farm) -> None:
    """What systemd would run at boot, run here in the foreground: it disarms live tasks,
    serves the node's socket, deploy finds it running and starts no second one, the unit's
    condition would skip a second start, and `sfarm down` ends it with a clean exit
    (Restart=on-failure leaves it down)."""
    farm.sfarm("deploy")
    farm.sfarm("down")
    root = NodeRoot(farm.root)
    unit = render_unit(root, "alpha", "lab", sys.executable)
    condition = _exec_words(_setting(unit, "ExecCondition"))
    assert subprocess.run(condition, check=False).returncode == 0  # no supervisord: start
    arm(root.path, "mine", 4242, "sfarm start --live")
    subprocess.run(_exec_words(_setting(unit, "ExecStartPre")), check=True)
    assert not arm_file(root.path, "mine").exists()

    process = subprocess.Popen(_exec_words(_setting(unit, "ExecStart")), cwd=root.path,
                               env={**BOOT_ENV, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for(Supervisor(root).is_running, what="the unit's supervisord")
        report = json.loads(farm.sfarm("deploy", "--json").stdout)
        steps = {step["step"]: step for step in report["nodes"][0]["steps"]}
        assert (steps["supervisord"]["status"], steps["supervisord"]["detail"]) == (
            "ok", "running")
        (only,) = _supervisords(root.path)
        assert "--nodaemon" in only  # deploy's, not a second one
        # systemd skips the unit (exit 1..254) while a supervisord serves the root.
        assert subprocess.run(condition, check=False).returncode == 1
        wait_for(lambda: farm.polled_tasks()["mine"]["state"] == "running", what="mine running")
        farm.sfarm("down")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
@pytest.mark.skipif(SYSTEMD_RUNNING.is_dir(), reason="this machine runs systemd")
def test_without_systemd_the_boot_step_fails_with_what_to_do_and_the_rest_stands(
        farm: Farm, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    empty = file_tree(home)
    code, dry = _deploy(farm, home, "--boot", "--dry-run")
    assert code == 1 and dry["boot"]["status"] == "failed"
    assert not farm.root.exists()

    code, steps = _deploy(farm, home, "--boot")
    assert code == 1  # asked to start at boot, and nothing will: the deploy says so
    boot = steps.pop("boot")
    line = crontab_line(NodeRoot(farm.root), sys.executable)
    assert boot["status"] == "failed" and "systemd does not run here" in boot["detail"]
    assert boot["detail"].endswith(line) and "crontab" in boot["detail"]
    assert all(step["status"] != "failed" for step in steps.values())
    assert steps["supervisord"]["status"] == "changed"  # the node itself is deployed
    assert file_tree(home) == empty  # no unit written anywhere

    # What the step says to do works: the line's command starts the same supervisord.
    farm.sfarm("down")
    arm(farm.root, "mine", 4242, "sfarm start --live")
    command = line.removeprefix("@reboot ").replace("\\%", "%")
    subprocess.run(["sh", "-c", command], check=True, env=BOOT_ENV)
    wait_for(Supervisor(NodeRoot(farm.root)).is_running, what="cron's supervisord")
    assert not arm_file(farm.root, "mine").exists()
    code, again = _deploy(farm, home)
    assert code == 0 and again["supervisord"]["detail"] == "running"
    assert len(_supervisords(farm.root)) == 1
