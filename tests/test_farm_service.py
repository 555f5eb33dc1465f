"""The farm service (sfarm.farm.Farm) called directly, as the command line and the dashboard do:
a real local farm brought up, its status with each dataset's lag behind the live edge, one task
stopped and started, logs, the node's datasets listed through the protocol and pulled, down;
live arming and the notes it gives, as data; the lag arithmetic, pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from sfarm import data
from sfarm.farm import Farm, Note, behind_live_edge_s, fill_lags, running_with_data
from sfarm.inventory import load_inventory
from sfarm.runtime.protocol import StepResult
from sfarm.status import DatasetStatus, NetworkStatus, NodeStatus, TaskStatus
from sfarm.trading.live_guard import HINT, arm
from tests.fixtures.farm import local_farm
from tests.fixtures.inventories import (
    ALWAYS_IN,
    SIM_EXCHANGE,
    head,
    live_trade_task,
    mine_task,
    studies_task,
)

MINUTE_MS = 60_000
FARM = (head("svc") + SIM_EXCHANGE + mine_task("2h") + studies_task(["sma(20)", "rsi(14)"])
        + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "studies"]
""")


@pytest.mark.slow
def test_up_status_stop_start_logs_pull_down(tmp_path: Path) -> None:
    with local_farm(FARM, "svc") as local:
        _drive_a_farm(Farm(load_inventory(local.inventory), "svc"), tmp_path)


def _drive_a_farm(farm: Farm, tmp_path: Path) -> None:
    """Every command of the service on the farm `farm`, in an operator's order."""
    up = farm.up()
    assert up.ok and up.command == "up" and up.notes == []
    (lab,) = up.nodes
    assert {"directories", "supervisord"} <= {step.step for step in lab.steps}
    assert {"start mine", "start studies"} <= {step.step for step in lab.steps}
    status, ready = farm.wait_until_running(150)
    assert ready, status

    # The lag: 1m candles mined up to the live edge are at most a few candles behind it.
    status = farm.status()
    tasks = {task.name: task for task in status.nodes[0].tasks}
    (candles,) = tasks["mine"].datasets
    assert candles.id == "candles/sim/BTC-USDT/1m" and candles.rows > 0
    assert candles.lag_s is not None and 0 <= candles.lag_s <= 5 * 60
    assert tasks["mine"].lag_s == candles.lag_s
    assert status.to_json()["nodes"][0]["tasks"][0]["datasets"][0]["lag_s"] == candles.lag_s
    # Seen an hour later, the data is an hour behind (less what was mined meanwhile).
    later = farm.status(now=candles.last_ts / 1000 + 3600 + 90)
    later_candles = {t.name: t for t in later.nodes[0].tasks}["mine"].datasets[0]
    assert later_candles.lag_s is not None and 3600 - 5 * 60 <= later_candles.lag_s <= 3600

    stopped = farm.stop("studies")
    assert stopped.ok and [(s.step, s.status) for s in stopped.nodes[0].steps] == [
        ("stop studies", "changed")]
    assert {t.name: t.state for t in farm.status().nodes[0].tasks}["studies"] == "stopped"
    started = farm.start("studies")
    assert started.ok and started.nodes[0].steps[0].step == "start studies"
    _, ready = farm.wait_until_running(60)
    assert ready

    with farm.logs("lab", "mine", lines=1000) as tail:
        (first,) = tail.read()
        assert first.task == "mine" and any("mining sim" in line for line in first.lines)
        (following,) = tail.read()  # only what was written since
        assert len(following.lines) < len(first.lines)
    with farm.logs("lab", lines=2) as tail:  # every task of the node, its last lines
        mine, studies = tail.read()
        assert (mine.task, studies.task) == ("mine", "studies")
        assert 0 < len(mine.lines) <= 2 and len(studies.lines) <= 2

    listed = farm.datasets("lab")
    assert "candles/sim/BTC-USDT/1m" in {summary.id for summary in listed}
    assert all(summary.node is None and summary.rows > 0 for summary in listed)
    consumer = tmp_path / "consumer"
    pulled = farm.pull("lab", [], consumer)
    assert [result.dataset_id for result in pulled] == [summary.id for summary in listed]
    for result in pulled:
        assert result.changed and data.verify(consumer, result.dataset_id, mirror_of="lab").ok

    down = farm.down()
    assert down.ok and down.command == "down"
    assert [step.step for step in down.nodes[0].steps] == ["supervisord"]
    assert all(task.state == "stopped" for task in farm.status().nodes[0].tasks)


LIVE = """
version = 1

[farm]
name = "live"

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:9"
credentials = "SIMFARM"

[tasks.mine]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
since = "1h"
""" + live_trade_task() + """

[networks.live.nodes.lab]
host = "local"
base_dir = "{base}"
tasks = ["mine", "trader"]
"""


def test_live_arming_and_its_notes_are_data(tmp_path: Path) -> None:
    """Arming is the running worker's (its pid: live_guard): with no worker, nothing is armed
    and the node says why; disarming removes whatever arm file is there."""
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(LIVE.format(base=tmp_path / "nodes"))
    (tmp_path / "always.toml").write_text(ALWAYS_IN)
    farm = Farm(load_inventory(inventory), "live")
    root = tmp_path / "nodes" / "live" / "lab"
    root.mkdir(parents=True)  # deployed, no worker started
    arm_file = root / "run" / "trader.live"

    armed = farm.set_live(True, command="start")
    assert not armed.ok and not arm_file.exists()
    assert armed.nodes[0].steps == [StepResult(
        "arm trader", "failed", "its worker is not running: start it first "
                                "(`sfarm start --task trader --live` does both)")]
    assert armed.notes == [Note("error", "could not arm its live tasks: a step failed", "lab")]

    arm(root, "trader", 4242, "sfarm start --live")  # a worker armed earlier
    restarted = farm.set_live(False, command="restart")  # a restart without --live
    assert not arm_file.exists()
    assert restarted.notes == [
        Note("note", f"live task trader on lab places no order: {HINT}", "lab")]

    stopped = farm.stop()  # a stop disarms, says nothing of it, and stops every task
    assert stopped.ok and stopped.notes == []
    assert [(s.step, s.detail) for s in stopped.nodes[0].steps] == [
        ("stop mine", "not running"), ("stop trader", "not running")]

    only_miner = farm.set_live(True, "mine", command="start")
    assert only_miner.nodes[0].steps == []  # the node was not asked
    assert only_miner.notes == [
        Note("note", "--live: none of the tasks started is a live trade task")]
    assert only_miner.to_json()["notes"] == [
        {"level": "note", "node": None,
         "message": "--live: none of the tasks started is a live trade task"}]


def test_a_node_that_cannot_be_disarmed_is_an_error_note(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the node's base_dir should be")
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(LIVE.format(base=blocker))
    (tmp_path / "always.toml").write_text(ALWAYS_IN)
    report = Farm(load_inventory(inventory), "live").set_live(False, command="up")
    assert not report.ok
    (note,) = report.notes
    assert note.level == "error" and note.node == "lab"
    assert note.message.startswith("could not disarm its live tasks: unexpected ")


def _dataset(dataset_id: str, last_ts: int | None, rows: int = 10) -> DatasetStatus:
    return DatasetStatus(id=dataset_id, last_ts=last_ts, rows=rows)


def test_lag_is_measured_from_the_last_closed_candle() -> None:
    opened = 1_704_067_200_000  # a 1h candle open (2024-01-01 00:00 UTC)
    hourly = _dataset("candles/sim/BTC-USDT/1h", opened)
    # 2h 10m later, the last closed 1h candle opened at 01:00: one candle behind.
    assert behind_live_edge_s(hourly, opened + 130 * MINUTE_MS) == 3600.0
    assert behind_live_edge_s(hourly, opened + 119 * MINUTE_MS) == 0.0  # up to date
    indicator = _dataset("indicators/sim/BTC-USDT/1m/rsi_14", opened)
    assert behind_live_edge_s(indicator, opened + 3 * MINUTE_MS) == 120.0
    assert behind_live_edge_s(_dataset("sessions/paper/equity", opened), opened * 2) is None
    assert behind_live_edge_s(_dataset("candles/sim/BTC-USDT/1m", None), opened) is None
    assert behind_live_edge_s(_dataset("not an id", opened), opened) is None


def test_fill_lags_sets_every_dataset_and_the_task_lag_is_the_largest() -> None:
    opened = 1_704_067_200_000
    task = TaskStatus(name="studies", kind="indicators", state="running", datasets=[
        _dataset("indicators/sim/BTC-USDT/1m/sma_20", opened),
        _dataset("indicators/sim/BTC-USDT/1m/rsi_14", opened - 5 * MINUTE_MS)])
    status = NetworkStatus(network="n", nodes=[
        NodeStatus(name="lab", host="local", reachable=True, tasks=[task]),
        NodeStatus(name="far", host="10.0.0.1", reachable=False, error="unreachable")])
    filled = fill_lags(status, opened + 2 * MINUTE_MS)
    lags = [dataset.lag_s for dataset in filled.nodes[0].tasks[0].datasets]
    assert lags == [60.0, 360.0] and filled.nodes[0].tasks[0].lag_s == 360.0
    assert not running_with_data(filled)  # a node is unreachable
    assert running_with_data(NetworkStatus(network="n", nodes=filled.nodes[:1]))
