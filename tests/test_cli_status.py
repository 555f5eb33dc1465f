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
