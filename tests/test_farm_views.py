"""The dashboard's data through `Farm`, against real farms (supervisord, workers, the emulator):
a dataset's last rows and a paper session's view equal what the store holds; the data flow of
two nodes; actions on one node of a network; and, over SSH, views through a kept connection."""

from __future__ import annotations

import json
from collections.abc import Callable

import polars as pl
import pytest

from sfarm import data
from sfarm.data.ids import session_id
from sfarm.data.layout import format_ts
from sfarm.errors import UsageError
from sfarm.farm import Farm
from sfarm.farm.flow import data_flow
from sfarm.plan import plan_network
from sfarm.trading.metrics import max_drawdown
from tests.fixtures.farm import Farm as LocalFarm
from tests.fixtures.farm import local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task, studies_task
from tests.fixtures.ssh_farm import ssh_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

CANDLES = "candles/sim/BTC-USDT/1m"
STRATEGY = """\
[strategy]
name = "rsi-flip"
indicators = ["rsi(14)"]
entry_long = "rsi_14 < 50"
exit_long = "rsi_14 > 50"
fee = 0.001
"""
PAPER = (head("{network}") + SIM_EXCHANGE + mine_task("2h") + """
[tasks.paper]
kind = "trade"
mode = "paper"
exchange = "sim"
market = "BTC/USDT"
timeframe = "1m"
strategy = "flip.toml"
cash = 1000.0
since = "2h"

[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "paper"]
""")
DUO = (head("duo") + SIM_EXCHANGE + mine_task("3h") + studies_task(["rsi(14)"]) + """
[networks.{network}.nodes.miner]
host = "local"
tasks = ["mine"]

[networks.{network}.nodes.quant]
host = "local"
tasks = ["studies"]
""")


def test_tail_and_session_of_a_paper_farm_are_what_the_store_holds() -> None:
    with local_farm(PAPER, "views", files={"flip.toml": STRATEGY}) as local, \
            Farm.open(local.inventory, None, keep_connections=True) as farm:
        assert farm.session("lab", "paper") is None  # nothing deployed, nothing started
        local.sfarm("up")

        def traded() -> bool:
            view = farm.session("lab", "paper")
            return view is not None and view.trade_count >= 3

        wait_for(traded, what="the paper session's first trades", explain=local.explain)
        kept = dict(farm.controller._open or {})
        farm.control("stop")  # still data from here on: views and store compare exactly

        tail = farm.tail("lab", CANDLES, 50)
        assert tail.error is None
        stored = data.read_tail(local.root, CANDLES, 50)
        assert tail.ts == stored["ts"].to_list() and len(tail.ts) == 50
        assert set(tail.columns) == {"open", "high", "low", "close", "volume"}
        assert all(tail.columns[name] == stored[name].to_list() for name in tail.columns)

        missing = farm.tail("lab", "candles/sim/ETH-USDT/1m")
        assert missing.ts == [] and "no dataset candles/sim/ETH-USDT/1m" in (missing.error or "")

        view = farm.session("lab", "paper", points=30, trades=2)
        assert view is not None
        equity = data.read(local.root, session_id("paper", "equity"))
        trades = data.read(local.root, session_id("paper", "trades"))
        assert (view.mode, view.strategy, view.cash) == ("paper", "rsi-flip", 1000.0)
        assert view.equity == pytest.approx(equity["equity"][-1])
        assert view.pnl == pytest.approx(view.equity - 1000.0)
        assert view.last_ts == equity["ts"][-1]
        assert (view.equity_ts[0], view.equity_ts[-1]) == (equity["ts"][0], equity["ts"][-1])
        assert len(view.equity_ts) <= 30
        by_ts = dict(zip(equity["ts"].to_list(), equity["equity"].to_list(), strict=True))
        assert view.equity_values == [by_ts[ts] for ts in view.equity_ts]
        assert view.trade_count == trades.height
        assert [(trade.entry_ts, trade.exit_ts, trade.pnl) for trade in view.trades] == \
            list(trades.tail(2).select("entry_ts", "exit_ts", "pnl").iter_rows())
        last_position = equity["position"][-1]
        assert view.position == pytest.approx(last_position)
        assert (view.entry_price is None) == (last_position == 0)

        facts = farm.facts("lab")
        assert facts.root == str(local.root)
        assert farm.controller._open == kept  # every view on the one kept agent

        _check_report(local, equity, trades)


def _check_report(local: LocalFarm, equity: pl.DataFrame, trades: pl.DataFrame) -> None:
    """`sfarm report` of the stopped paper session: the store's figures, its trades with dates,
    and the chart; --json with the equity curve; a task that is not a trade task is refused."""
    document = json.loads(local.sfarm("report", "paper", "--json", "--trades", "3").stdout)
    assert (document["node"], document["mode"], document["task"]) == ("lab", "paper", "paper")
    assert document["equity"] == pytest.approx(equity["equity"][-1])
    assert document["max_drawdown"] == pytest.approx(
        max_drawdown(equity["equity"].to_numpy(), 1000.0))
    assert document["max_drawdown"] > 0  # an RSI flip on a random walk loses some of the way
    assert document["trade_count"] == trades.height and len(document["trades"]) == 3
    curve = document["equity_curve"]
    assert curve[0] == [equity["ts"][0], equity["equity"][0]]
    assert curve[-1] == [equity["ts"][-1], equity["equity"][-1]]

    text = local.sfarm("report", "paper").stdout
    assert "paper on node lab" in text
    assert f"{document['max_drawdown']:.2%} at worst" in text
    last = trades.row(-1, named=True)
    assert f"{format_ts(last['exit_ts'])} {last['exit_price']:,.2f}" in text  # dates, not ms
    assert "paper equity" in text and any("\u2800" <= char <= "\u28ff" for char in text)

    refused = local.sfarm("report", "mine", check=False)
    assert refused.returncode == 2
    assert "'mine' is a mine task" in refused.stderr and "paper" in refused.stderr


def test_flow_tail_and_actions_on_one_node_of_two() -> None:
    with local_farm(DUO, "duo", node="quant") as local, \
            Farm.open(local.inventory, None, keep_connections=True) as farm:
        miner, quant = local.root.parent / "miner", local.root
        local.sfarm("up")
        plan = plan_network(farm.inventory, "duo")

        def flow_state() -> str:
            status = farm.status()
            edges = data_flow(plan, status)
            assert farm.flow(status) == edges
            assert [(edge.dataset, edge.producer, edge.consumer) for edge in edges] == [
                (CANDLES, "miner", "quant")]
            return edges[0].state

        wait_for(lambda: flow_state() == "current", timeout_s=150, interval_s=0.5,
                 what="quant holding the miner's last candle")
        edge, = data_flow(plan, farm.status())
        assert edge.produced_last_ts is not None and edge.received_last_ts is not None

        # quant reads its mirror of the miner's candles: rows as the mirror holds them.
        tail = farm.tail("quant", CANDLES, 20)
        assert tail.error is None and len(tail.ts) == 20
        mirrored = data.read(quant, CANDLES, tail.ts[0], tail.ts[-1] + 1, mirror_of="miner")
        assert tail.ts == mirrored["ts"].to_list()
        assert tail.columns["close"] == mirrored["close"].to_list()
        assert farm.tail("quant", CANDLES, 1, mirror_of="miner").ts[0] >= tail.ts[-1]

        # Stopping one node's workers leaves the other's running, and contacts only it.
        stopped = farm.control("stop", node="quant")
        assert [outcome.node for outcome in stopped.nodes] == ["quant"] and stopped.ok
        states = {task.name: task.state for node in farm.status().nodes for task in node.tasks}
        assert states == {"mine": "running", "studies": "stopped"}
        with pytest.raises(UsageError, match="no task 'mine' on node 'quant'"):
            farm.control("start", "mine", node="quant")
        with pytest.raises(UsageError, match="no node 'nowhere'"):
            farm.control("start", node="nowhere")
        started = farm.control("start", "studies", node="quant")
        assert [outcome.node for outcome in started.nodes] == ["quant"] and started.ok
        wait_for(lambda: {task.name: task.state for node in farm.status().nodes
                          for task in node.tasks} == {"mine": "running", "studies": "running"},
                 what="studies running again")

        # Deploying one node writes that node's root only.
        for root in (miner, quant):
            (root / "node.json").unlink()
        deployed = farm.deploy(node="miner")
        assert [outcome.node for outcome in deployed.nodes] == ["miner"] and deployed.ok
        assert (miner / "node.json").is_file() and not (quant / "node.json").exists()
        assert farm.deploy(node="quant").ok and (quant / "node.json").is_file()


def test_views_over_ssh_go_through_the_kept_connection(
        sshd_factory: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    with ssh_farm(sshd_factory(1)) as remote:
        remote.sfarm("up")
        wait_for(remote.running_with_rows, what="node-a mining and computing")
        monkeypatch.setenv("HOME", str(remote.home))  # its known_hosts trusts the server
        with Farm.open(remote.inventory, None, keep_connections=True) as farm:
            facts = farm.facts("node-a")
            assert facts.root == str(remote.root("node-a"))
            agent = (farm.controller._open or {})["node-a"]
            rsi = "indicators/sim-a/BTC-USDT/1m/rsi_14"
            tail = farm.tail("node-a", rsi, 30)
            assert tail.error is None and len(tail.ts) == 30 and list(tail.columns) == ["rsi_14"]
            stored = data.read(remote.root("node-a"), rsi, tail.ts[0], tail.ts[-1] + 1)
            assert tail.columns["rsi_14"] == stored["rsi_14"].to_list()
            assert "no dataset" in (farm.tail("node-a", CANDLES).error or "")
            assert farm.session("node-a", "mine-a") is None  # no session of that name
            assert (farm.controller._open or {})["node-a"] is agent  # one connection for all
