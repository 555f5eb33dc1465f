"""Task state from the supervisor's process state and the worker's heartbeat."""

from __future__ import annotations

import pytest

from sfarm.status import (
    TASK_HELD_EXIT,
    TASK_STATES,
    DatasetProgress,
    Heartbeat,
    NetworkStatus,
    NodeStatus,
    Observed,
    task_status,
)

NOW = 1_700_000_000.0


def beat(age: float, state: str = "running", **extra: object) -> Heartbeat:
    return Heartbeat(task="mine", kind="mine", state=state, pid=4242, started_at=NOW - 600,
                     heartbeat=NOW - age, interval_s=5.0, **extra)


@pytest.mark.parametrize(
    ("supervisor", "heartbeat", "expected"),
    [
        ("RUNNING", beat(1.0), "running"),
        ("RUNNING", beat(14.9), "running"),
        ("RUNNING", beat(15.1), "stale"),  # three 5 s intervals without a heartbeat
        ("RUNNING", None, "running"),  # just started, no heartbeat yet
        ("STARTING", None, "starting"),
        ("BACKOFF", beat(30.0), "starting"),  # supervisor is restarting it after a crash
        ("FATAL", beat(30.0), "failed"),
        ("STOPPED", beat(300.0), "stopped"),
        (None, None, "stopped"),  # never deployed or supervisor down
        ("RUNNING", beat(1.0, state="failed", last_error="boom"), "failed"),
        ("RUNNING", beat(1.0, state="halted"), "halted"),
        ("STOPPED", beat(99.0, state="halted"), "halted"),  # the kill switch outlives the process
    ],
)
def test_state_combines_process_and_heartbeat(supervisor: str | None,
                                              heartbeat: Heartbeat | None,
                                              expected: str) -> None:
    assert task_status("mine", "mine", supervisor, heartbeat, NOW).state == expected


def test_status_carries_heartbeat_age_error_and_datasets() -> None:
    heartbeat = beat(2.5, last_error="ccxt.NetworkError: timeout",
                     outputs=[DatasetProgress(id="candles/sim/BTC-USDT/1m", last_ts=1, rows=10)])
    status = task_status("mine", "mine", "RUNNING", heartbeat, NOW)
    assert status.heartbeat_age_s == 2.5
    assert status.pid == 4242
    assert status.last_error == "ccxt.NetworkError: timeout"
    assert status.datasets[0].rows == 10


def test_stopped_task_has_no_pid() -> None:
    assert task_status("mine", "mine", "STOPPED", beat(100.0), NOW).pid is None


def test_network_status_json_has_the_contract_keys() -> None:
    status = NetworkStatus(network="local", nodes=[NodeStatus(
        name="lab", host="local", reachable=True,
        tasks=[task_status("mine", "mine", "RUNNING", beat(1.0), NOW)])])
    document = status.to_json()
    assert set(document) >= {"network", "nodes"}
    node = document["nodes"][0]
    assert set(node) >= {"name", "host", "reachable", "error", "tasks"}
    task = node["tasks"][0]
    assert set(task) >= {"name", "kind", "state", "heartbeat_age_s", "datasets", "pid",
                         "last_error"}
    assert status.healthy


def test_spec_states_are_all_known() -> None:
    assert set(TASK_STATES) == {"running", "stopped", "starting", "failed", "stale", "halted",
                                "not deployed", "unknown"}


def test_a_task_missing_from_the_deployed_config_reads_not_deployed() -> None:
    status = task_status("mine", "mine", None, None, NOW, Observed(deployed=False))
    assert status.state == "not deployed"
    assert "sfarm deploy" in (status.last_error or "")


@pytest.mark.parametrize("supervisor", ["RUNNING", "STARTING", "STOPPED", None])
@pytest.mark.parametrize("problem", ["its heartbeat run/mine.json cannot be read (EOF)",
                                     "its heartbeat run/mine.json cannot be read (garbage)"])
def test_a_damaged_heartbeat_is_never_running(supervisor: str | None, problem: str) -> None:
    status = task_status("mine", "mine", supervisor, None, NOW,
                         Observed(supervisor_pid=4242, heartbeat_problem=problem))
    assert status.state == ("unknown" if supervisor in ("RUNNING", "STARTING") else "stopped")
    assert status.last_error == problem


def test_an_unsupervised_lock_holder_is_running_and_said_so() -> None:
    # supervisord down (killed), the task's lock held by a live worker started by hand
    status = task_status("mine", "mine", None, beat(1.0), NOW, Observed(holder_pid=777))
    assert status.state == "running" and status.pid == 777
    assert "outside this node's supervisord" in (status.last_error or "")
    # supervisord's own worker of the task is another process (refused, still exiting)
    status = task_status("mine", "mine", "RUNNING", beat(1.0), NOW,
                         Observed(supervisor_pid=888, holder_pid=777))
    assert status.state == "running" and status.pid == 777
    assert "pid 777 runs outside" in (status.last_error or "")
    # even in a root not deployed (a worker run by hand there)
    status = task_status("mine", "mine", None, None, NOW, Observed(deployed=False, holder_pid=7))
    assert status.state == "running"


def test_the_supervised_lock_holder_is_plainly_running() -> None:
    status = task_status("mine", "mine", "RUNNING", beat(1.0), NOW,
                         Observed(supervisor_pid=4242, holder_pid=4242))
    assert (status.state, status.pid, status.last_error) == ("running", 4242, None)


def test_a_worker_refused_for_a_task_run_elsewhere_reads_failed() -> None:
    status = task_status("mine", "mine", "EXITED", beat(60.0, state="stopped"), NOW,
                         Observed(exit_status=TASK_HELD_EXIT))
    assert status.state == "failed"
    assert "refused to start" in (status.last_error or "")
    assert task_status("mine", "mine", "EXITED", None, NOW, Observed(exit_status=0)).state \
        == "stopped"


def test_the_previous_workers_heartbeat_says_nothing_of_the_new_one() -> None:
    # `up` right after `down`: supervisord runs a new worker (pid 5151) and the heartbeat on
    # disk is still the old one's (4242), rows and all: `up --wait` must not take it as ready.
    old = beat(1.0, outputs=[DatasetProgress(id="candles/sim/BTC-USDT/1m", last_ts=1, rows=10)])
    status = task_status("mine", "mine", "RUNNING", old, NOW, Observed(supervisor_pid=5151))
    assert (status.pid, status.datasets, status.heartbeat_age_s) == (None, [], None)
    assert status.state == "running"
    own = task_status("mine", "mine", "RUNNING", old, NOW, Observed(supervisor_pid=4242))
    assert (own.pid, own.datasets[0].rows) == (4242, 10)
    halted = task_status("mine", "mine", "RUNNING", beat(1.0, state="halted"), NOW,
                         Observed(supervisor_pid=5151))
    assert halted.state == "halted"
    # supervisord killed, a worker started by hand (pid 777) holds the task: until it beats,
    # the dead worker's heartbeat is not its own either (not its rows, not `running` from it)
    hand = task_status("mine", "mine", None, old, NOW, Observed(holder_pid=777))
    assert (hand.state, hand.pid, hand.datasets, hand.heartbeat_age_s) == \
        ("running", 777, [], None)
    starting = task_status("mine", "mine", None, beat(1.0, state="starting").model_copy(
        update={"pid": 777}), NOW, Observed(holder_pid=777))
    assert (starting.state, starting.pid) == ("starting", 777)
