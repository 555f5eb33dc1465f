"""Concurrent commands on one node take turns (issue 16, item 6): three `sfarm up` of one local
node at once, as real processes, all succeed with one supervisord and one worker per task (before
the node lock two of them ended in a traceback: two supervisords started on one socket); a
command that cannot get its turn in time fails naming who holds the node."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.errors import RunError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import Holder, wait_lock
from sfarm.runtime.node_lock import node_turn
from sfarm.runtime.supervisor import DAEMON_MODULE, Supervisor
from sfarm.runtime.task_lock import task_holder
from tests.fixtures.cli import sfarm_env
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import TWO_MINERS
from tests.fixtures.processes import PROJECT, processes_under, start_python
from tests.fixtures.waiting import wait_for


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(TWO_MINERS, "turns") as farm:
        yield farm


@pytest.mark.slow
def test_three_concurrent_ups_of_one_node_take_turns(farm: Farm) -> None:
    ups = [subprocess.Popen([sys.executable, "-m", "sfarm", "up", "-i", str(farm.inventory)],
                            cwd=PROJECT, env=sfarm_env(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE) for _ in range(3)]
    results = [(up.wait(timeout=300), *up.communicate()) for up in ups]
    for code, stdout, stderr in results:
        assert "Traceback" not in stderr and "unexpected" not in stderr + stdout
        assert code == 0, stdout + stderr
    # Whoever waited said for whom: the pid and command of an up holding the node.
    waits = [line for _, _, stderr in results for line in stderr.splitlines()
             if "waiting up to" in line]
    others = {str(up.pid) for up in ups}
    for line in waits:
        holder = re.search(r"for pid (\d+) \((.*)\)", line)
        assert holder is not None and holder.group(1) in others, line
        assert f"`sfarm up -i {farm.inventory}`" in holder.group(2)

    commands = processes_under(farm.root)
    assert sum(DAEMON_MODULE in command for command in commands) == 1
    for task in ("mine", "other"):
        assert sum(command.rstrip().endswith(f"--task {task}") for command in commands) == 1
    wait_for(lambda: {task["state"] for task in farm.polled_tasks().values()} == {"running"},
             what="both tasks running")
    # each run by supervisord's worker, which holds the task's lock
    programs = Supervisor(NodeRoot(farm.root)).processes()
    for name, task in farm.tasks().items():
        holder = task_holder(NodeRoot(farm.root), name)
        assert holder is not None and holder.pid == task["pid"] == programs[name]["pid"]
        assert task["last_error"] is None


def test_a_node_held_too_long_fails_naming_its_holder(tmp_path: Path) -> None:
    root = NodeRoot(tmp_path / "lab")
    root.path.mkdir()
    holder = start_python(
        "import sys, time\n"
        "from sfarm.runtime.layout import NodeRoot\n"
        "from sfarm.runtime.node_lock import node_turn\n"
        "with node_turn(NodeRoot(__import__('pathlib').Path(sys.argv[1])), 'ann@lab'):\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(600)\n", str(root.path))
    try:
        with pytest.raises(RunError) as refused, node_turn(root, wait_s=0.5):
            pytest.fail("the turn was taken while another process held the node")
        message = refused.value.message
        assert message.startswith(f"{root.path} is busy: pid {holder.pid} (ann@lab, ")
        assert refused.value.hint is not None and str(root.node_lock) in refused.value.hint
    finally:
        holder.kill()
        holder.wait()
    with node_turn(root, wait_s=0.5) as turn:  # its holder gone: taken at once
        assert turn.steps() == []


def test_a_waiter_names_a_holder_that_writes_itself_late(tmp_path: Path) -> None:
    # A holder takes the flock first and writes who it is just after: a waiter arriving in
    # between names it once written, and says nothing of an unnamed one meanwhile.
    path = tmp_path / "node.lock"
    holder = start_python(
        "import fcntl, json, os, sys, time\n"
        "from sfarm.runtime.locks import Holder\n"
        "from dataclasses import asdict\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('ready', flush=True)\n"
        "time.sleep(0.5)\n"
        "os.pwrite(fd, json.dumps(asdict(Holder.of_this_process('ann@lab'))).encode(), 0)\n"
        "time.sleep(0.7)\n", str(path))
    told: list[Holder | None] = []
    try:
        with wait_lock(path, 30, on_wait=told.append):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert [who.pid if who is not None else None for who in told] == [holder.pid]
