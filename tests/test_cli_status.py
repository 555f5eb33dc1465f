"""How `sfarm status` draws a network: every node appears, reachable or not."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from sfarm.cli.farm import render_status
from sfarm.status import DatasetStatus, NetworkStatus, NodeStatus, TaskStatus, TradeProgress
from tests.fixtures.cli import sfarm_env
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.network import free_port


def rendered(status: NetworkStatus, width: int = 160, now: float | None = None) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render_status(status, now, width=width))
    return console.export_text()


def test_an_unreachable_node_is_shown_with_its_reason_beside_a_reachable_one() -> None:
    up = NodeStatus(name="node-a", host="10.0.0.1", reachable=True,
                    tasks=[TaskStatus(name="mine", kind="mine", state="running")])
    down = NodeStatus(name="node-b", host="10.0.0.2", reachable=False,
                      error="node node-b (sfarm@10.0.0.2:22): connection refused")
    text = rendered(NetworkStatus(network="prod", nodes=[up, down]))
    assert "node-a 10.0.0.1" in text and "running" in text
    assert "node-b 10.0.0.2 unreachable: node node-b (sfarm@10.0.0.2:22): connection refused" \
        in text


def test_a_stale_input_is_named_with_its_producer_and_age_and_makes_the_network_unhealthy() -> None:
    from sfarm.status import InputStatus

    studies = TaskStatus(name="studies", kind="indicators", state="running", inputs=[
        InputStatus(id="candles/sim/BTC-USDT/1m", source_node="miner", last_ts=0,
                    stale_since=1_000.0),
        InputStatus(id="candles/sim/ETH-USDT/1m", source_node="miner", stale_since=1_030.0)])
    fresh = TaskStatus(name="paper", kind="trade", state="running", inputs=[
        InputStatus(id="candles/sim/BTC-USDT/1m", source_node="miner")])
    node = NodeStatus(name="quant", host="10.0.0.3", reachable=True, tasks=[studies, fresh])
    status = NetworkStatus(network="prod", nodes=[node])
    text = rendered(status, width=200, now=1_090.0)
    assert "candles/sim/BTC-USDT/1m from miner stale for 90s (+1 more)" in text
    assert not status.healthy  # `sfarm status` exits 1
    assert NetworkStatus(network="prod", nodes=[node.model_copy(
        update={"tasks": [fresh]})]).healthy


def _farm_of_four() -> NetworkStatus:
    candles = [DatasetStatus(id="candles/sim/BTC-USDT/1m", last_ts=1_796_212_020_000,
                             rows=8_788)]
    return NetworkStatus(network="prod", nodes=[NodeStatus(
        name="lab", host="local", reachable=True, tasks=[
            TaskStatus(name="mine", kind="mine", state="running", heartbeat_age_s=4,
                       datasets=candles),
            TaskStatus(name="rsi-paper", kind="trade", state="running", heartbeat_age_s=2,
                       waiting_for="new candles",
                       trade=TradeProgress(equity=10_250.5, position=0.1, pnl=250.5)),
            TaskStatus(name="old-paper", kind="trade", state="stopped", heartbeat_age_s=7200,
                       waiting_for="new candles", datasets=candles,
                       trade=TradeProgress(equity=9_000.0, position=0.0, pnl=-1_000.0)),
            TaskStatus(name="studies-with-a-long-name", kind="indicators", state="failed",
                       last_error="OSError: [Errno 28] No space left on device: "
                                  "'/srv/sfarm/prod/lab/data/indicators/sim/BTC-USDT/1m'"),
        ])])


def test_a_running_trade_task_shows_its_equity_and_pnl_and_waiting_is_no_error() -> None:
    text = rendered(_farm_of_four())
    row = next(line for line in text.splitlines() if "rsi-paper" in line)
    assert "equity 10,250.50 (+250.50); waiting for new candles" in row
    assert "last error" not in text  # waiting is a note, not an error


def test_a_stopped_task_shows_no_stale_live_values() -> None:
    row = next(line for line in rendered(_farm_of_four()).splitlines() if "old-paper" in line)
    assert "stopped" in row and "12-02 11:47" in row and "8,788" in row  # its data stays
    assert "2.0h" not in row and "equity" not in row and "waiting" not in row


def test_status_stays_one_line_per_task_at_80_columns() -> None:
    text = rendered(_farm_of_four(), width=80)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for task in ("mine ", "rsi-paper", "old-paper", "studies-with-"):
        assert sum(task in line for line in lines) == 1, task
    failed = next(line for line in lines if "studies-with-" in line)
    assert "failed" in failed and "OSError" in failed  # cut, not wrapped onto more lines
    assert failed.count("…") == 2  # the long name and the long error
    assert "indicators" not in text  # the kind column goes first
    assert "indicators" in rendered(_farm_of_four(), width=120)


def test_watch_into_a_pipe_prints_one_table_per_refresh(tmp_path: Path) -> None:
    """`status --watch` with stdout not a terminal (a log, `| tee`): each refresh is printed,
    under its time, instead of a live view nobody sees; Ctrl-C ends it quietly."""
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text((head("watch") + SIM_EXCHANGE + mine_task() + """
[networks.lab.nodes.one]
host = "local"
tasks = ["mine"]
""").format(base=tmp_path / "nodes", port=free_port()), encoding="utf-8")
    watch = subprocess.Popen(
        [sys.executable, "-m", "sfarm", "status", "-i", str(inventory), "--watch",
         "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=sfarm_env())
    assert watch.stdout is not None
    seen: list[str] = []
    while sum("one local" in line for line in seen) < 3:
        line = watch.stdout.readline()
        assert line, "status --watch ended: " + (watch.stderr.read() if watch.stderr else "")
        seen.append(line)
    watch.send_signal(signal.SIGINT)
    rest, errors = watch.communicate(timeout=30)
    assert watch.returncode == 0 and "Traceback" not in errors
    text = "".join(seen) + rest
    assert text.count("UTC\none local") >= 3 and text.count("│ mine ") >= 3
