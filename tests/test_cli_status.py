"""How `sfarm status` draws a network: every node appears, reachable or not."""

from __future__ import annotations

from rich.console import Console

from sfarm.cli.farm import render_status
from sfarm.status import NetworkStatus, NodeStatus, TaskStatus


def rendered(status: NetworkStatus) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(render_status(status))
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
    console = Console(record=True, width=200, color_system=None)
    console.print(render_status(status, now=1_090.0))
    text = console.export_text()
    assert "candles/sim/BTC-USDT/1m from miner stale for 90s (+1 more)" in text
    assert not status.healthy  # `sfarm status` exits 1
    assert NetworkStatus(network="prod", nodes=[node.model_copy(
        update={"tasks": [fresh]})]).healthy
