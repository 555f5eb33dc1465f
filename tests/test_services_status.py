"""The services sfarm supervises on a node (the exchange emulator first) are visible: `sfarm
status` lists them with their state, restarts and last error; one that cannot start turns its
node red and makes `up --wait` fail naming it; `sfarm logs NODE SERVICE` reads its log.

The farm test holds the emulator's port with a plain socket before `up`: a real supervisord
keeps restarting the real emulator, which cannot bind it, until the test lets the port go."""

from __future__ import annotations

import json
import socket

import pytest
from rich.console import Console

from sfarm.cli.farm import render_status
from sfarm.farm import Farm as FarmService
from sfarm.farm.status import running_with_data, services_that_cannot_start
from sfarm.status import NetworkStatus, NodeStatus, ServiceStatus, TaskStatus
from sfarm.status.services import (
    ServiceHistory,
    is_service,
    logged_error,
    service_history,
    service_status,
)
from tests.fixtures.cli import run_here, run_sfarm
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for

# supervisord's own log, as it words the life of a program that cannot bind its port.
STARTED = "2026-12-02 15:00:00,000 INFO supervisord started with pid 100"
SPAWNED = "2026-12-02 15:00:01,000 INFO spawned: 'sim-sim' with pid {pid}"
TOO_QUICK = "2026-12-02 15:00:02,000 WARN exited: sim-sim (exit status 1; not expected)"
BACKOFF = "2026-12-02 15:00:02,001 INFO gave up: sim-sim entered FATAL state, too many start " \
          "retries too quickly"
SUCCESS = "2026-12-02 15:00:05,000 INFO success: sim-sim entered RUNNING state, process has " \
          "stayed up for > than 2 seconds (startsecs)"
EMULATOR_LOG = ["error: port 127.0.0.1:8900 is in use by another process",
                "hint: stop that process (`ss -ltnp 'sport = :8900'` names it), or serve on "
                "another port"]


def spawned(pid: int) -> str:
    return SPAWNED.format(pid=pid)


# --- pure: restarts, state and reason from supervisord's info and the logs --------------------


def test_restarts_count_the_starts_that_followed_an_unexpected_exit_since_supervisord_started(
) -> None:
    other = "2026-12-02 15:00:02,000 WARN exited: sim-simx (exit status 1; not expected)"
    lines = [spawned(1), TOO_QUICK, spawned(2), STARTED,  # an older supervisord's: forgotten
             spawned(3), TOO_QUICK, spawned(4), TOO_QUICK, spawned(5), other, spawned(6)]
    # Each run ended 1 s after its spawn: the service fails to start.
    assert service_history(lines, "sim-sim") == ServiceHistory(restarts=2, failed_run_s=1.0)
    # supervisord's "success" (2 s up) proves nothing: a loaded machine starts Python slower.
    assert service_history([*lines, SUCCESS], "sim-sim").failing
    # A run that lasted, then crashed, is restarted: counted, but no start failed.
    crashed = TOO_QUICK.replace("15:00:02", "15:30:00")
    assert service_history([*lines, SUCCESS, crashed, spawned(7)], "sim-sim") \
        == ServiceHistory(3, failed_run_s=None)
    # A stop by hand, or an expected exit, is no failure and is not followed by a restart.
    stopped = "2026-12-02 15:00:09,000 INFO stopped: sim-sim (terminated by SIGTERM)"
    assert service_history([STARTED, spawned(1), TOO_QUICK, stopped, spawned(2)], "sim-sim") \
        == ServiceHistory(0, None)
    expected = TOO_QUICK.replace("exit status 1; not expected", "exit status 69; expected")
    assert service_history([STARTED, spawned(1), expected], "sim-sim") == ServiceHistory(0, None)
    assert service_history([STARTED, spawned(1), TOO_QUICK, BACKOFF], "sim-sim") \
        == ServiceHistory(0, failed_run_s=1.0)
    assert service_history([], "sim-sim") == ServiceHistory(0, None)


def test_the_reason_is_sfarms_error_line_with_its_hint_else_the_last_line() -> None:
    assert logged_error(["sfarm sim: listening on http://127.0.0.1:8900", *EMULATOR_LOG]) == (
        "port 127.0.0.1:8900 is in use by another process",
        "stop that process (`ss -ltnp 'sport = :8900'` names it), or serve on another port")
    assert logged_error(["Traceback (most recent call last):", "ImportError: no sfarm", ""]) \
        == ("ImportError: no sfarm", None)
    assert logged_error([]) is None


@pytest.mark.parametrize(("statename", "age_s", "failed_run_s", "expected"), [
    ("RUNNING", 100, None, "running"),
    ("RUNNING", 100, 12.0, "running"),  # it has run twice as long as its failed start: up
    ("RUNNING", 20, 12.0, "failed"),  # not yet: its last run failed after as long
    ("STARTING", 1, None, "starting"),
    ("STARTING", 1, 1.0, "failed"),  # a retry of a service that keeps failing: still failed
    ("BACKOFF", 0, 1.0, "failed"),
    ("FATAL", 0, 1.0, "failed"),
    ("EXITED", 0, 1.0, "failed"),
    ("EXITED", 0, None, "stopped"),
    ("STOPPED", 0, None, "stopped"),
    ("UNKNOWN", 0, None, "unknown"),
    (None, 0, None, "stopped"),  # supervisord does not run
])
def test_the_state_of_a_service(statename: str | None, age_s: int, failed_run_s: float | None,
                                expected: str) -> None:
    process = None if statename is None else {"statename": statename, "pid": 77,
                                              "start": 1_000, "now": 1_000 + age_s}
    status = service_status("sim-sim", process, ServiceHistory(3, failed_run_s), EMULATOR_LOG)
    assert status.state == expected and status.restarts == 3
    assert (status.last_error is not None) == (expected == "failed")
    assert status.pid == (77 if statename in ("RUNNING", "STARTING") else None)


def test_a_failed_service_says_why_and_what_supervisord_does() -> None:
    backoff = {"statename": "BACKOFF", "pid": 0,
               "spawnerr": "Exited too quickly (process log may have details)"}
    status = service_status("sim-sim", backoff, ServiceHistory(4, 1.0), EMULATOR_LOG)
    assert status.last_error == (
        "port 127.0.0.1:8900 is in use by another process; supervisord keeps restarting it "
        "(hint: stop that process (`ss -ltnp 'sport = :8900'` names it), or serve on another "
        "port)")
    # Without a log, supervisord's own reason.
    fatal = {"statename": "FATAL", "spawnerr": "can't find command 'python9'"}
    assert service_status("sim-sim", fatal, ServiceHistory(0, 0.0)).last_error == \
        "can't find command 'python9'; supervisord gave up restarting it"


def test_services_are_known_by_name() -> None:
    assert all(map(is_service, ["sim-binance", "sfarm-resolver", "sfarm-agent"]))
    assert not any(map(is_service, ["mine", "sfarm-agents", "simulator"]))


def test_a_failed_service_turns_its_node_red_unhealthy_and_ends_up_waiting() -> None:
    task = TaskStatus(name="mine", kind="mine", state="running")
    failed = ServiceStatus(name="sim-sim", state="failed", restarts=2,
                           last_error="port 127.0.0.1:8900 is in use by another process")
    node = NodeStatus(name="lab", host="local", reachable=True, tasks=[task], services=[failed])
    status = NetworkStatus(network="svc", nodes=[node])
    console = Console(record=True, width=160, color_system=None)
    console.print(render_status(status, 0.0, width=160))
    text = console.export_text()
    assert "lab local failing: sim-sim" in text
    assert "sim-sim" in text and "failed" in text and "in use by another process" in text
    assert not status.healthy and not running_with_data(status)
    assert services_that_cannot_start(status) == [("lab", failed)]
    # Waiting since a status where it had failed as often: not yet (its cause may be gone by
    # its next retry); once more since, it is still there.
    assert services_that_cannot_start(status, since=status) == []
    earlier = node.model_copy(update={"services": [failed.model_copy(update={"restarts": 1})]})
    assert services_that_cannot_start(status, since=NetworkStatus(
        network="svc", nodes=[earlier])) == [("lab", failed)]
    # One failed start is not yet a reason to stop waiting; a running service is healthy.
    once = failed.model_copy(update={"restarts": 1})
    assert services_that_cannot_start(NetworkStatus(network="svc", nodes=[
        node.model_copy(update={"services": [once]})])) == []
    running = ServiceStatus(name="sim-sim", state="running", restarts=3)
    assert NetworkStatus(network="svc", nodes=[
        node.model_copy(update={"services": [running]})]).healthy


# --- a real farm whose emulator's port is taken -----------------------------------------------

INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("1h") + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
"""


def emulator(farm: Farm) -> ServiceStatus:
    """The farm's emulator as the farm service sees it (in this process: polled, cheaply)."""
    with FarmService.open(farm.inventory, farm.network) as service:
        (node,) = service.status().nodes
    (found,) = node.services
    return found


@pytest.mark.slow
def test_an_emulator_whose_port_is_taken_is_shown_failing_until_the_port_is_free() -> None:
    with local_farm(INVENTORY, "svc") as farm:
        in_use = f"port 127.0.0.1:{farm.port} is in use by another process"
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            holder.bind(("127.0.0.1", farm.port))
            holder.listen()

            # What a script sees: processes, their exit status and output.
            up = run_sfarm(farm.inventory, "up", "--wait", "240", check=False, timeout=300)
            assert up.returncode == 1, up.stderr + up.stdout
            assert f"error: service sim-sim on node lab cannot start: {in_use}" in up.stderr
            assert "sfarm logs lab sim-sim" in up.stderr
            shown = farm.sfarm("status", "--json", check=False)
            assert shown.returncode == 1
            (node,) = json.loads(shown.stdout)["nodes"]
            (service,) = node["services"]
            assert set(service) >= {"name", "state", "restarts", "last_error"}
            assert service["name"] == "sim-sim" and service["state"] == "failed"
            assert service["restarts"] >= 2 and in_use in service["last_error"]
            assert [task["name"] for task in node["tasks"]] == ["mine"]  # a task is no service

            # What a person reads (the same entry point, in this process).
            inventory = str(farm.inventory)
            text = run_here("status", "-i", inventory)
            assert text.returncode == 1
            assert "lab local failing: sim-sim" in text.stdout and in_use in text.stdout
            log = run_here("logs", "-i", inventory, "lab", "sim-sim")
            assert log.returncode == 0 and f"error: {in_use}" in log.stdout
            unknown = run_here("logs", "-i", inventory, "lab", "sim-simm")
            assert unknown.returncode == 2
            assert "no task or service 'sim-simm' on node 'lab'" in unknown.stderr
            assert "known services: sim-sim" in unknown.stderr
        finally:
            holder.close()

        # supervisord retries: once the port is free, the emulator runs.
        wait_for(lambda: emulator(farm).state == "running", what="the emulator running")
        running = emulator(farm)
        assert running.last_error is None and running.restarts >= 2
