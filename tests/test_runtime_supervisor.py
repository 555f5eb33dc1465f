"""A real supervisord per node root: config rendering, restart after kill -9, stop, shutdown."""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.supervisor import (
    Program,
    Supervisor,
    render_config,
    socket_path,
    write_config,
)
from tests.fixtures.processes import alive
from tests.fixtures.waiting import wait_for

SLEEPER = [sys.executable, "-c", "import time; [time.sleep(0.2) for _ in iter(int, 1)]"]


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervisor]:
    # AF_UNIX paths are limited to ~100 bytes; pytest's tmp paths can be long.
    root = NodeRoot(Path(os.path.realpath(tmp_path)))
    write_config(root, render_config(root, "test", "lab", [
        Program("sleeper", SLEEPER, environment={"SFARM_TEST": "50%"}),
    ]))
    supervisor = Supervisor(root)
    try:
        supervisor.start_daemon()
        yield supervisor
    finally:
        supervisor.shutdown()


def state(supervisor: Supervisor, name: str) -> str:
    return supervisor.processes()[name]["statename"]


def test_render_is_pure_and_escapes_percent(tmp_path: Path) -> None:
    root = NodeRoot(tmp_path)
    text = render_config(root, "test", "lab", [Program("a", ["echo", "100%"], {"K": "v%"})])
    assert text == render_config(root, "test", "lab", [Program("a", ["echo", "100%"],
                                                               {"K": "v%"})])
    assert "command=echo 100%%" in text
    assert 'environment=K="v%%"' in text
    assert "chmod=0700" in text
    assert "inet_http_server" not in text  # no TCP listener, only the unix socket


def test_write_config_reports_change(tmp_path: Path) -> None:
    root = NodeRoot(tmp_path)
    assert write_config(root, "x") is True
    assert write_config(root, "x") is False
    assert stat.S_IMODE(root.supervisor.stat().st_mode) == 0o700


@pytest.mark.slow
def test_supervised_process_restarts_after_kill_and_stops(supervised: Supervisor) -> None:
    assert stat.S_IMODE(os.stat(socket_path(supervised.root)).st_mode) & 0o077 == 0
    wait_for(lambda: state(supervised, "sleeper") == "RUNNING")
    pid = supervised.processes()["sleeper"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: state(supervised, "sleeper") == "RUNNING"
             and supervised.processes()["sleeper"]["pid"] not in (0, pid))
    supervised.stop("sleeper")
    assert state(supervised, "sleeper") == "STOPPED"
    supervised.start("sleeper")
    wait_for(lambda: state(supervised, "sleeper") == "RUNNING")
    last_pid = supervised.processes()["sleeper"]["pid"]
    daemon_pid = int((supervised.root.supervisor / "supervisord.pid").read_text())
    supervised.shutdown()
    # gone when shutdown returns: supervisord removes its socket and pid file before it exits
    assert not alive(daemon_pid) and not alive(last_pid)


@pytest.mark.slow
def test_another_sfarm_build_restarts_the_programs_on_the_next_apply(
        supervised: Supervisor) -> None:
    """A deploy that installs other code (same version string) names another build in every
    program's environment: supervisord's update restarts them on it; the same build, never."""
    root = supervised.root
    wait_for(lambda: state(supervised, "sleeper") == "RUNNING")
    pid = supervised.processes()["sleeper"]["pid"]
    programs = [Program("sleeper", SLEEPER, environment={"SFARM_TEST": "50%"})]
    for build, restarted in (("aaaa", True), ("aaaa", False), ("bbbb", True)):
        text = render_config(root, "test", "lab", programs, build=build)
        assert f'SFARM_BUILD="{build}"' in text
        assert write_config(root, text) is restarted
        supervised.apply_config()
        wait_for(lambda: state(supervised, "sleeper") == "RUNNING")
        now = supervised.processes()["sleeper"]["pid"]
        assert (now != pid) is restarted
        pid = now
