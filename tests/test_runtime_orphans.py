"""No orphan workers (issue 16, items 1 and 8), with real processes: a task never runs twice
(each worker holds run/<task>.lock; a second one refuses naming the holder and, under
supervisord, ends for good instead of being restarted), `status` tells who runs a task (a
worker outside supervisord, a task not deployed, a heartbeat that cannot be read), and `down`
ends every process of the node root even after its supervisord was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfarm.errors import RunError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import process_start, read_holder, try_lock
from sfarm.runtime.node import control, read_heartbeat, shutdown
from sfarm.runtime.supervisor import Supervisor, socket_path
from sfarm.status import TASK_HELD_EXIT
from tests.fixtures.cli import sfarm_env, sfarm_process
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import TWO_MINERS
from tests.fixtures.processes import PROJECT, alive, pids_under, processes_under, start_python
from tests.fixtures.waiting import wait_for


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(TWO_MINERS, "orphans") as farm:
        yield farm


def _worker_command(farm: Farm, task: str) -> list[str]:
    return [sys.executable, "-m", "sfarm", "worker", "run", "--root", str(farm.root),
            "--task", task]


def _workers_of(farm: Farm, task: str) -> list[str]:
    return [command for command in processes_under(farm.root)
            if "worker run" in command and command.rstrip().endswith(f"--task {task}")]


def _own_heartbeat_state(farm: Farm, task: str, pid: int) -> str | None:
    """The state the worker `pid` wrote in the task's heartbeat (None before it beats)."""
    heartbeat, _ = read_heartbeat(NodeRoot(farm.root), task)
    return heartbeat.state if heartbeat is not None and heartbeat.pid == pid else None


def _running_supervised(tasks: dict[str, dict[str, Any]]) -> dict[str, int]:
    """task -> pid, once every task runs under supervisord and says so in its heartbeat."""
    if not all(task["state"] == "running" and task["pid"] and not task["last_error"]
               for task in tasks.values()):
        return {}
    return {name: task["pid"] for name, task in tasks.items()}


def _program(farm: Farm, name: str) -> dict[str, object]:
    return Supervisor(NodeRoot(farm.root)).processes().get(name, {})


def _spawn(command: list[str], **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, **options)  # type: ignore[call-overload]


# -- the lock files ---------------------------------------------------------------------------

def test_a_lock_names_its_live_holder_and_nobody_once_it_died(tmp_path: Path) -> None:
    path = tmp_path / "run" / "t.lock"
    holder = start_python(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sfarm.runtime.locks import try_lock\n"
        "lock = try_lock(Path(sys.argv[1]), operator='ann@lab')\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n", str(path))
    try:
        assert try_lock(path) is None  # held by the other process
        named = read_holder(path)
        assert named is not None and named.pid == holder.pid and named.operator == "ann@lab"
        assert f"pid {holder.pid} (ann@lab, " in named.describe()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    finally:
        holder.kill()
        holder.wait()
    assert read_holder(path) is None  # the kernel dropped the flock; the file names a dead pid
    lock = try_lock(path)
    assert lock is not None
    mine = read_holder(path)
    assert mine is not None and mine.pid == os.getpid()
    lock.release()
    assert read_holder(path) is None


def test_a_reused_pid_is_not_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "t.lock"
    start = process_start(os.getpid())
    assert start is not None
    # This process's pid, but another start time: a pid the kernel gave again after the
    # holder died.
    path.write_text(json.dumps({"pid": os.getpid(), "start": start - 1, "since": 0.0}))
    assert read_holder(path) is None
    path.write_text("{\"pid\": 12")  # a holder killed while it wrote itself
    assert read_holder(path) is None


# -- the farm ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(600)  # a dozen sfarm processes one after another, on a shared machine
def test_a_task_never_runs_twice_and_down_ends_what_a_crash_left(farm: Farm) -> None:
    assert {task["state"] for task in farm.tasks().values()} == {"not deployed"}

    farm.sfarm("up")
    wait_for(lambda: _running_supervised(farm.polled_tasks()),
             what="both workers running, supervised")
    supervised = _running_supervised(farm.tasks())

    # A second worker of a running task refuses at once, naming the holder, and exits.
    refused = sfarm_process(*_worker_command(farm, "mine")[3:])
    assert refused.returncode == TASK_HELD_EXIT
    assert "Traceback" not in refused.stderr
    first_line = refused.stderr.splitlines()[0]
    assert first_line.startswith("error: task mine already runs on this node")
    assert f"pid {supervised['mine']} (" in first_line
    assert _workers_of(farm, "mine") and len(_workers_of(farm, "mine")) == 1

    # supervisord killed outright: its workers end with it (issue 15); then a worker of `mine`
    # started by hand, and a process supervisord started that outlived it, run unsupervised.
    supervisord = int((farm.root / "supervisor" / "supervisord.pid").read_text())
    before = [pid for pid in pids_under(farm.root) if pid != supervisord]
    os.kill(supervisord, signal.SIGKILL)
    wait_for(lambda: not any(alive(pid) for pid in before), what="the supervised ones ending")
    orphan = _spawn(_worker_command(farm, "mine"), cwd=PROJECT, env=sfarm_env())
    survivor = _spawn(["sleep", "600"], env={
        **os.environ, "SUPERVISOR_SERVER_URL": f"unix://{socket_path(NodeRoot(farm.root))}"})
    bystander = _spawn(["sleep", "601"], cwd=farm.root)  # an operator's shell in the root
    try:
        # Its heartbeat says `starting` until its first step is done (slow on a loaded
        # machine); the dead worker's heartbeat before it is not the status of this one.
        wait_for(lambda: _own_heartbeat_state(farm, "mine", orphan.pid) == "running",
                 what="the hand-started worker's heartbeat saying running")
        mine = farm.tasks()["mine"]
        assert (mine["state"], mine["pid"]) == ("running", orphan.pid)
        assert "outside this node's supervisord" in mine["last_error"]
        assert farm.tasks()["other"]["state"] == "stopped"

        # The next up starts one worker per task: the one supervisord starts for `mine`
        # refuses and is left EXITED (not restarted over and over); `other` runs supervised.
        farm.sfarm("up")
        wait_for(lambda: _program(farm, "mine").get("statename") == "EXITED",
                 what="supervisord's worker of mine refused and left exited")
        assert _program(farm, "mine")["exitstatus"] == TASK_HELD_EXIT
        log = (farm.root / "logs" / "mine.log").read_text()
        assert f"task mine already runs on this node: its worker is pid {orphan.pid}" in log
        supervisord_log = (farm.root / "logs" / "supervisord.log").read_text()
        assert f"exit status {TASK_HELD_EXIT}; expected" in supervisord_log
        wait_for(lambda: farm.polled_tasks()["other"]["state"] == "running", what="other running")
        assert len(_workers_of(farm, "mine")) == 1 and len(_workers_of(farm, "other")) == 1
        mine = farm.tasks()["mine"]
        assert (mine["state"], mine["pid"]) == ("running", orphan.pid)
        assert _program(farm, "mine")["statename"] == "EXITED"  # still: never restarted

        # down ends every process of the root, says which, and leaves others alone.
        down = farm.sfarm("down")
        assert f"pid {orphan.pid} (holds run/mine.lock)" in down.stdout
        assert f"pid {survivor.pid} (started by its supervisord)" in down.stdout
        assert orphan.wait(timeout=30) == 0  # SIGTERM: its step finished, exit 0
        assert survivor.wait(timeout=30) == -signal.SIGTERM
        assert pids_under(farm.root) == []
        assert alive(bystander.pid)
        assert {task["state"] for task in farm.tasks().values()} == {"stopped"}
    finally:
        for process in (orphan, survivor, bystander):
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_damaged_heartbeat_reads_unknown_never_running(farm: Farm) -> None:
    farm.sfarm("up")
    wait_for(lambda: _running_supervised(farm.polled_tasks()), what="both workers running")
    worker = _running_supervised(farm.tasks())["mine"]
    heartbeat = farm.root / "run" / "mine.json"
    for damage in (b'{"task": "mine", "kind": "mi', b"\x00\xffnot json"):  # truncated, garbage
        os.kill(worker, signal.SIGSTOP)  # it stays running for supervisord, cannot rewrite
        try:
            heartbeat.write_bytes(damage)
            mine = farm.tasks()["mine"]
            assert mine["state"] == "unknown"
            assert mine["last_error"].startswith(f"its heartbeat {heartbeat} cannot be read (")
        finally:
            os.kill(worker, signal.SIGCONT)
        wait_for(lambda: farm.polled_tasks()["mine"]["state"] == "running",
                 what="the worker's next heartbeat mending it")


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"task": "mine", "ki', "Invalid JSON: EOF while parsing"),
    (b"\x00\xffgarbage", "Invalid JSON: expected value"),
    (b"{}", "task: Field required"),
    (None, "Is a directory"),
])
def test_a_heartbeat_that_cannot_be_read_says_why(tmp_path: Path, content: bytes | None,
                                                   reason: str) -> None:
    root = NodeRoot(tmp_path)
    root.run.mkdir()
    assert read_heartbeat(root, "mine") == (None, None)  # none yet: no problem
    if content is None:
        root.heartbeat("mine").mkdir()
    else:
        root.heartbeat("mine").write_bytes(content)
    heartbeat, problem = read_heartbeat(root, "mine")
    assert heartbeat is None and problem is not None
    assert problem.startswith(f"its heartbeat {root.heartbeat('mine')} cannot be read ({reason}")


def test_a_root_never_deployed_is_left_as_it_is(tmp_path: Path) -> None:
    root = NodeRoot(tmp_path / "nodes" / "lab")
    assert [step.detail for step in shutdown(root)] == ["not running (never deployed here)"]
    with pytest.raises(RunError, match="it is not deployed"):
        control(root, "start", ["mine"])
    assert not root.path.exists()  # neither made it
