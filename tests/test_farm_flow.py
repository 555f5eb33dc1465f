"""The network's data flow (sfarm.farm.flow.data_flow) from hand-built plans and statuses: one
edge per transfer and per same-node read, and each edge's state."""

from __future__ import annotations

import pytest

from sfarm.farm.flow import FlowEdge, data_flow
from sfarm.plan import DatasetPlan, NodePlan, Plan, TaskRef, Transfer
from sfarm.status import DatasetStatus, InputStatus, NetworkStatus, NodeStatus, TaskStatus

CANDLES = "candles/sim/BTC-USDT/1m"
RSI = "indicators/sim/BTC-USDT/1m/rsi_14"
T = 1_700_000_000_000

# miner mines; quant computes RSI on the candles; trader reads both; miner also runs `check`
# on its own candles (a same-node read).
PLAN = Plan(
    network="flow",
    nodes=(NodePlan("miner", "h1", ("mine", "check")), NodePlan("quant", "h2", ("studies",)),
           NodePlan("trader", "h3", ("paper",))),
    datasets=(
        DatasetPlan(CANDLES, TaskRef("miner", "mine"),
                    (TaskRef("miner", "check"), TaskRef("quant", "studies"),
                     TaskRef("trader", "paper"))),
        DatasetPlan(RSI, TaskRef("quant", "studies"), (TaskRef("trader", "paper"),)),
        DatasetPlan("indicators/sim/BTC-USDT/1m/sma_5", None, (TaskRef("trader", "paper"),)),
    ),
    transfers=(Transfer(CANDLES, "miner", "quant"), Transfer(CANDLES, "miner", "trader"),
               Transfer(RSI, "quant", "trader")),
)


def task(name: str, outputs: dict[str, int | None] | None = None,
         inputs: list[InputStatus] | None = None) -> TaskStatus:
    return TaskStatus(name=name, kind="x", state="running",
                      datasets=[DatasetStatus(id=key, last_ts=value)
                                for key, value in (outputs or {}).items()],
                      inputs=inputs or [])


def node(name: str, *tasks: TaskStatus, reachable: bool = True) -> NodeStatus:
    return NodeStatus(name=name, host="h", reachable=reachable,
                      error=None if reachable else "unreachable", tasks=list(tasks))


def received(dataset: str, source: str, last_ts: int | None,
             stale_since: float | None = None) -> InputStatus:
    return InputStatus(id=dataset, source_node=source, last_ts=last_ts, stale_since=stale_since)


def healthy() -> dict[str, NodeStatus]:
    return {
        "miner": node("miner", task("mine", {CANDLES: T + 120_000}),
                      task("check", inputs=[received(CANDLES, "miner", T + 120_000)])),
        "quant": node("quant", task("studies", {RSI: T + 60_000},
                                    inputs=[received(CANDLES, "miner", T + 60_000)])),
        "trader": node("trader", task("paper", inputs=[
            received(CANDLES, "miner", T + 120_000), received(RSI, "quant", T + 60_000)])),
    }


def flow(nodes: dict[str, NodeStatus]) -> dict[tuple[str, str, str], FlowEdge]:
    edges = data_flow(PLAN, NetworkStatus(network="flow", nodes=list(nodes.values())))
    keys = [(edge.dataset, edge.producer, edge.consumer) for edge in edges]
    assert keys == sorted(keys)  # a stable order to draw
    return dict(zip(keys, edges, strict=True))


def test_every_transfer_and_same_node_read_is_an_edge_with_its_freshness() -> None:
    edges = flow(healthy())
    assert list(edges) == [(CANDLES, "miner", "miner"), (CANDLES, "miner", "quant"),
                           (CANDLES, "miner", "trader"), (RSI, "quant", "trader")]
    assert edges[CANDLES, "miner", "trader"] == FlowEdge(
        CANDLES, "miner", "trader", T + 120_000, T + 120_000, None, "current")
    assert edges[CANDLES, "miner", "miner"].state == "current"
    # quant holds the candles up to a minute before the miner's last: behind.
    behind = edges[CANDLES, "miner", "quant"]
    assert (behind.produced_last_ts, behind.received_last_ts, behind.state) == (
        T + 120_000, T + 60_000, "behind")
    assert edges[RSI, "quant", "trader"].state == "current"


def test_a_stale_input_is_stale_even_when_its_producer_is_down() -> None:
    nodes = healthy()
    nodes["quant"] = node("quant", reachable=False)
    nodes["trader"] = node("trader", task("paper", inputs=[
        received(CANDLES, "miner", T + 120_000),
        received(RSI, "quant", T, stale_since=1_700_000_100.5)]))
    edges = flow(nodes)
    rsi = edges[RSI, "quant", "trader"]
    assert (rsi.state, rsi.stale_since, rsi.produced_last_ts, rsi.received_last_ts) == (
        "stale", 1_700_000_100.5, None, T)
    # What quant itself holds is unknown: it does not answer.
    assert edges[CANDLES, "miner", "quant"].state == "unknown"
    assert edges[CANDLES, "miner", "trader"].state == "current"


@pytest.mark.parametrize("case", ["consumer down", "producer down", "no rows yet",
                                  "input not reported", "node missing"])
def test_what_cannot_be_known_is_unknown(case: str) -> None:
    nodes = healthy()
    if case == "consumer down":
        nodes["trader"] = node("trader", reachable=False)
    elif case == "producer down":
        nodes["miner"] = node("miner", reachable=False)
    elif case == "no rows yet":
        nodes["miner"] = node("miner", task("mine", {CANDLES: None}), task("check"))
    elif case == "input not reported":
        nodes["trader"] = node("trader", task("paper"))
    else:
        del nodes["trader"]
    edge = flow(nodes)[CANDLES, "miner", "trader"]
    assert edge.state == "unknown"


def test_an_input_with_nothing_received_yet_is_behind() -> None:
    nodes = healthy()
    nodes["trader"] = node("trader", task("paper", inputs=[
        received(CANDLES, "miner", None), received(RSI, "quant", T + 60_000)]))
    edge = flow(nodes)[CANDLES, "miner", "trader"]
    assert (edge.received_last_ts, edge.state) == (None, "behind")


def test_several_readers_on_one_node_count_as_the_slowest() -> None:
    plan = Plan("n", (NodePlan("a", "h", ("mine",)), NodePlan("b", "h", ("x", "y"))),
                (DatasetPlan(CANDLES, TaskRef("a", "mine"),
                             (TaskRef("b", "x"), TaskRef("b", "y"))),),
                (Transfer(CANDLES, "a", "b"),))
    status = NetworkStatus(network="n", nodes=[
        node("a", task("mine", {CANDLES: T + 60_000})),
        node("b", task("x", inputs=[received(CANDLES, "a", T + 60_000)]),
             task("y", inputs=[received(CANDLES, "a", T)]))])
    edge, = data_flow(plan, status)
    assert (edge.consumer, edge.received_last_ts, edge.state) == ("b", T, "behind")
