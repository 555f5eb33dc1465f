"""Task state from the supervisor's process state and the worker's heartbeat."""

from __future__ import annotations

import pytest

from sfarm.status import DatasetProgress, Heartbeat, NetworkStatus, NodeStatus, task_status

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
