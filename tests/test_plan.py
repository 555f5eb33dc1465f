"""sfarm.plan: datasets, producers, consumers, transfers and problems of a network, on the
example inventories and on small inventories built for one rule each."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sfarm.errors import UsageError
from sfarm.inventory import Inventory, LoadedInventory, load_inventory
from sfarm.plan import Plan, TaskRef, Transfer, plan_network, task_inputs, task_outputs

PROJECT = Path(__file__).parent.parent


def strategy_indicators_from_toml(path: Path) -> tuple[str, ...]:
    """The strategy's declared indicators, without the trading package (plan tests only)."""
    return tuple(tomllib.loads(path.read_text(encoding="utf-8"))["strategy"].get("indicators", ()))


@pytest.fixture(scope="module")
def farm() -> LoadedInventory:
    return load_inventory(PROJECT / "inventory" / "farm.toml",
                          strategy_reader=strategy_indicators_from_toml)


@pytest.fixture(scope="module")
def local() -> LoadedInventory:
    return load_inventory(PROJECT / "inventory" / "local.toml",
                          strategy_reader=strategy_indicators_from_toml)


def transfers_of(plan: Plan) -> set[tuple[str, str, str]]:
    return {(t.dataset, t.source, t.target) for t in plan.transfers}


# --- the example farm ----------------------------------------------------------------------------


def test_farm_prod_nodes_follow_the_inventory(farm: LoadedInventory) -> None:
    plan = plan_network(farm, "prod")
    assert [(n.name, n.host, n.tasks) for n in plan.nodes] == [
        ("miner-binance", "10.0.0.11", ("mine-binance",)),
        ("miner-kraken", "10.0.0.12", ("mine-kraken",)),
        ("quant-1", "10.0.0.21", ("studies-binance", "studies-kraken")),
        ("trader-1", "10.0.0.31", ("rsi-paper", "rsi-live")),
        ("trader-2", "10.0.0.32", ("cross-backtest",)),
    ]


def test_farm_prod_transfers(farm: LoadedInventory) -> None:
    plan = plan_network(farm, "prod")
    assert plan.ok and plan.problems == ()
    assert transfers_of(plan) == {
        ("candles/binance/BTC-USDT/1h", "miner-binance", "quant-1"),
        ("candles/binance/BTC-USDT/1h", "miner-binance", "trader-1"),
        ("candles/binance/BTC-USDT/4h", "miner-binance", "quant-1"),
        ("candles/binance/ETH-USDT/1h", "miner-binance", "quant-1"),
        ("candles/binance/ETH-USDT/4h", "miner-binance", "quant-1"),
        ("candles/binance/ETH-USDT/4h", "miner-binance", "trader-1"),
        ("candles/kraken/BTC-USD/1h", "miner-kraken", "quant-1"),
        ("candles/kraken/BTC-USD/1h", "miner-kraken", "trader-2"),
        # the strategies' indicators come from the indicators node
        ("indicators/binance/BTC-USDT/1h/rsi_14", "quant-1", "trader-1"),
        ("indicators/binance/BTC-USDT/1h/sma_200", "quant-1", "trader-1"),
        ("indicators/binance/ETH-USDT/4h/rsi_14", "quant-1", "trader-1"),
        ("indicators/binance/ETH-USDT/4h/sma_200", "quant-1", "trader-1"),
        ("indicators/kraken/BTC-USD/1h/sma_10", "quant-1", "trader-2"),
        ("indicators/kraken/BTC-USD/1h/sma_30", "quant-1", "trader-2"),
    }
    assert list(plan.transfers) == sorted(plan.transfers)


def test_farm_prod_datasets(farm: LoadedInventory) -> None:
    plan = plan_network(farm, "prod")
    by_id = {d.id: d for d in plan.datasets}
    # 3 markets x 5 timeframes + 2 x 2 candles, 2 x 2 x 7 + 1 x 1 x 3 indicators, 3 sessions x 4
    assert len(by_id) == 15 + 4 + 28 + 3 + 12 == 62
    assert [d.id for d in plan.datasets] == sorted(by_id)
    assert all(d.producer is not None for d in plan.datasets)
    btc_1h = by_id["candles/binance/BTC-USDT/1h"]
    assert btc_1h.producer == TaskRef("miner-binance", "mine-binance")
    assert btc_1h.consumers == (TaskRef("quant-1", "studies-binance"),
                                TaskRef("trader-1", "rsi-paper"))
    assert by_id["candles/binance/SOL-USDT/1m"].consumers == ()  # mined, read by nobody yet
    assert by_id["sessions/rsi-live/equity"].producer == TaskRef("trader-1", "rsi-live")


def test_farm_test_network_runs_everything_on_one_machine(farm: LoadedInventory) -> None:
    plan = plan_network(farm, "test")
    assert [n.name for n in plan.nodes] == ["lab"]
    assert plan.transfers == ()
    assert plan.ok and plan.problems == ()
    assert all(d.producer is not None and d.producer.node == "lab" for d in plan.datasets)


def test_networks_are_isolated(farm: LoadedInventory) -> None:
    """rsi-live runs only in prod: its sessions are no dataset of the test network."""
    test_ids = {d.id for d in plan_network(farm, "test").datasets}
    assert not any(i.startswith("sessions/rsi-live/") for i in test_ids)


def test_local_inventory_plans_one_node(local: LoadedInventory) -> None:
    plan = plan_network(local, "local")
    assert plan.ok and plan.problems == () and plan.transfers == ()
    assert {d.producer.task for d in plan.datasets if d.producer} == {"mine", "studies",
                                                                     "rsi-paper"}


def test_to_json_is_the_contract(farm: LoadedInventory) -> None:
    document = json.loads(json.dumps(plan_network(farm, "prod").to_json()))
    assert set(document) == {"network", "nodes", "datasets", "transfers", "problems"}
    assert document["network"] == "prod"
    assert all(set(node) == {"name", "host", "tasks"} for node in document["nodes"])
    for dataset in document["datasets"]:
        assert set(dataset) == {"id", "producer", "consumers"}
        assert set(dataset["producer"]) == {"node", "task"}
        assert all(set(c) == {"node", "task"} for c in dataset["consumers"])
    assert all(set(t) == {"dataset", "from", "to"} for t in document["transfers"])
    assert {"dataset": "candles/kraken/BTC-USD/1h", "from": "miner-kraken", "to": "trader-2"} \
        in document["transfers"]


# --- one rule at a time ---------------------------------------------------------------------------


def mine(exchange: str = "ex", markets: tuple[str, ...] = ("BTC/USDT",),
         timeframes: tuple[str, ...] = ("1h",), **extra: Any) -> dict[str, Any]:
    return {"kind": "mine", "exchange": exchange, "markets": list(markets),
            "timeframes": list(timeframes), "since": "2024-01-01", **extra}


def studies(indicators: tuple[str, ...] = ("rsi(14)",), markets: tuple[str, ...] = ("BTC/USDT",),
            timeframes: tuple[str, ...] = ("1h",), **extra: Any) -> dict[str, Any]:
    return {"kind": "indicators", "exchange": "ex", "markets": list(markets),
            "timeframes": list(timeframes), "indicators": list(indicators), **extra}


def trade(market: str = "BTC/USDT", timeframe: str = "1h", **extra: Any) -> dict[str, Any]:
    return {"kind": "trade", "mode": "paper", "exchange": "ex", "market": market,
            "timeframe": timeframe, "strategy": "s.toml", **extra}


def inventory(tasks: dict[str, dict[str, Any]], nodes: dict[str, list[str]],
              strategies: dict[str, tuple[str, ...]] | None = None,
              network: str = "net") -> LoadedInventory:
    model = Inventory.model_validate({
        "version": 1, "exchanges": {"ex": {"ccxt": "binance"}}, "tasks": tasks,
        "networks": {network: {"nodes": {name: {"host": f"10.0.0.{i}", "tasks": placed}
                                         for i, (name, placed) in enumerate(nodes.items(), 1)}}},
    })
    return LoadedInventory(Path("inline.toml"), model, strategies or {})


def codes(plan: Plan) -> list[str]:
    return [problem.code for problem in plan.problems]


def test_same_node_means_no_transfer() -> None:
    plan = plan_network(inventory({"m": mine(), "s": studies()}, {"a": ["m", "s"]}), "net")
    assert plan.transfers == () and plan.problems == ()


def test_consumer_on_another_node_gets_a_transfer() -> None:
    plan = plan_network(inventory({"m": mine(), "s": studies()}, {"a": ["m"], "b": ["s"]}), "net")
    assert plan.transfers == (Transfer("candles/ex/BTC-USDT/1h", "a", "b"),)


def test_one_transfer_per_node_however_many_tasks_read_it() -> None:
    plan = plan_network(inventory(
        {"m": mine(), "s": studies(), "t": trade()}, {"a": ["m"], "b": ["s", "t"]},
        strategies={"t": ()}), "net")
    assert plan.transfers == (Transfer("candles/ex/BTC-USDT/1h", "a", "b"),)


def test_duplicate_producer_names_both_placements() -> None:
    plan = plan_network(inventory({"m1": mine(), "m2": mine(timeframes=("1h", "1d"))},
                                  {"a": ["m1"], "b": ["m2"]}), "net")
    (problem,) = plan.problems
    assert (problem.severity, problem.code) == ("error", "duplicate-producer")
    assert problem.dataset == "candles/ex/BTC-USDT/1h"
    assert "'m1' on node 'a'" in problem.message and "'m2' on node 'b'" in problem.message
    assert problem.path == ("networks", "net", "nodes", "b", "tasks", 0)
    assert not plan.ok


def test_missing_candles_hint_names_the_mine_task_to_write() -> None:
    plan = plan_network(inventory({"s": studies(timeframes=("4h",))}, {"a": ["s"]}), "net")
    (problem,) = plan.problems
    assert problem.code == "missing-producer" and problem.dataset == "candles/ex/BTC-USDT/4h"
    assert problem.hint == ("add a mine task with exchange = 'ex', markets = ['BTC/USDT'], "
                            "timeframes = ['4h'] to a node of network 'net'")


def test_missing_producer_hint_names_an_unplaced_task_that_would_produce_it() -> None:
    plan = plan_network(inventory({"zz-miner": mine(), "aa-miner": mine(), "s": studies()},
                                  {"a": ["s"]}), "net")
    (problem,) = plan.problems
    # two tasks would do: the hint names the first by name, whatever the order in the file
    assert problem.hint == "task 'aa-miner' produces it: place it on a node of network 'net'"


def test_missing_indicator_input_and_session_input_hints() -> None:
    plan = plan_network(inventory(
        {"m": mine(), "t": trade(inputs=["indicators/ex/BTC-USDT/1h/adx_14",
                                         "sessions/elsewhere/equity"])},
        {"a": ["m", "t"]}, strategies={"t": ()}), "net")
    hints = {problem.dataset: problem.hint for problem in plan.problems}
    assert codes(plan) == ["missing-producer", "missing-producer"]
    assert hints["indicators/ex/BTC-USDT/1h/adx_14"] == \
        "add an indicators task computing 'adx_14' on BTC-USDT 1h"
    assert hints["sessions/elsewhere/equity"] == \
        "no task in the inventory produces sessions/elsewhere/equity"


def test_strategy_indicators_without_a_producer_are_computed_locally() -> None:
    plan = plan_network(inventory({"m": mine(), "s": studies(("rsi(14)",)), "t": trade()},
                                  {"a": ["m", "s"], "b": ["t"]},
                                  strategies={"t": ("rsi(14)", "sma(200)")}), "net")
    (problem,) = plan.problems
    assert (problem.severity, problem.code) == ("warning", "computed-locally")
    assert problem.dataset == "indicators/ex/BTC-USDT/1h/sma_200"
    assert plan.ok  # a warning does not make the plan invalid
    assert Transfer("indicators/ex/BTC-USDT/1h/rsi_14", "a", "b") in plan.transfers


def test_an_input_that_repeats_an_implied_need_is_one_need() -> None:
    task = trade(inputs=["candles/ex/BTC-USDT/1h", "indicators/ex/BTC-USDT/1h/rsi_14"])
    needs = task_inputs(Inventory.model_validate({
        "version": 1, "tasks": {"t": task},
        "networks": {"n": {"nodes": {"a": {"host": "local"}}}}}).tasks["t"], ("rsi(14)",))
    assert [(n.dataset, n.optional) for n in needs] == [
        ("candles/ex/BTC-USDT/1h", False),
        # named in `inputs`: required, although the strategy alone would make it optional
        ("indicators/ex/BTC-USDT/1h/rsi_14", False),
    ]
    plan = plan_network(inventory({"t": task}, {"a": ["t"]}, strategies={"t": ("rsi(14)",)}),
                        "net")
    assert codes(plan) == ["missing-producer", "missing-producer"]


def test_cycle_through_inputs() -> None:
    plan = plan_network(inventory(
        {"m": mine(),
         "ta": trade(inputs=["sessions/tb/equity"]), "tb": trade(inputs=["sessions/ta/equity"])},
        {"a": ["m"], "b": ["ta"], "c": ["tb"]}, strategies={"ta": (), "tb": ()}), "net")
    (problem,) = plan.problems
    assert problem.code == "cycle"
    assert problem.message.endswith("ta@b -> tb@c -> ta@b")


def test_a_task_reading_its_own_output_is_a_cycle() -> None:
    plan = plan_network(inventory({"m": mine(inputs=["candles/ex/BTC-USDT/1h"])}, {"a": ["m"]}),
                        "net")
    assert codes(plan) == ["cycle"]


def test_a_chain_is_no_cycle() -> None:
    plan = plan_network(inventory(
        {"m": mine(), "ta": trade(), "tb": trade(inputs=["sessions/ta/equity"])},
        {"a": ["m", "ta"], "b": ["tb"]}, strategies={"ta": (), "tb": ()}), "net")
    assert plan.problems == ()
    assert Transfer("sessions/ta/equity", "a", "b") in plan.transfers


def test_task_outputs() -> None:
    model = Inventory.model_validate({
        "version": 1,
        "tasks": {"m": mine(markets=("BTC/USDT", "ETH/BTC"), timeframes=("1m", "1d")),
                  "s": studies(("macd", "bbands(20, 2.5)")), "t": trade()},
        "networks": {"n": {"nodes": {"a": {"host": "local"}}}}})
    assert task_outputs("m", model.tasks["m"]) == [
        "candles/ex/BTC-USDT/1m", "candles/ex/BTC-USDT/1d",
        "candles/ex/ETH-BTC/1m", "candles/ex/ETH-BTC/1d"]
    assert task_outputs("s", model.tasks["s"]) == [
        "indicators/ex/BTC-USDT/1h/macd_12_26_9", "indicators/ex/BTC-USDT/1h/bbands_20_2p5"]
    assert task_outputs("t", model.tasks["t"]) == [
        "sessions/t/orders", "sessions/t/trades", "sessions/t/equity", "sessions/t/state"]


# --- LoadedInventory: network choice and node settings --------------------------------------------


def test_select_network(farm: LoadedInventory, local: LoadedInventory) -> None:
    assert local.select_network(None) == "local"
    assert farm.select_network("prod") == "prod"
    with pytest.raises(UsageError) as raised:
        farm.select_network(None)
    assert "2 networks" in raised.value.message and raised.value.hint == "networks: prod, test"
    with pytest.raises(UsageError) as raised:
        farm.select_network("prd")
    assert raised.value.hint == "did you mean 'prod'?"


def test_nodes_inherit_defaults_and_override_them(farm: LoadedInventory) -> None:
    nodes = {node.name: node for node in farm.nodes("prod")}
    trader = nodes["trader-1"]
    assert (trader.user, trader.port, trader.python, trader.transport) == \
        ("sfarm", 22, "python3", "rsync")
    assert trader.identity_file == "~/.ssh/sfarm_trader" and trader.proxy_jump is None
    assert nodes["trader-2"].proxy_jump == "bastion.example.net"
    assert str(trader.root) == "~/sfarm/prod/trader-1"
    assert not trader.is_local
    (lab,) = farm.nodes("test")
    assert lab.is_local and str(lab.root) == "~/sfarm/test/lab"


def test_strategy_paths_are_relative_to_the_inventory(farm: LoadedInventory) -> None:
    task = farm.model.tasks["rsi-paper"]
    assert farm.strategy_path(task) == PROJECT / "inventory" / "strategies" / "rsi_revert.toml"
    assert farm.strategy_indicators["rsi-paper"] == ("rsi(14)", "sma(200)")
