"""The resolver between two nodes of this machine: node `quant` computes indicators on the
candles node `miner` mines, with nothing in the inventory saying how the candles get there.

Local peers are read through the same gate, snapshot and rrsync as peers over SSH (only the
remote shell differs), so this runs the resolver's whole path with real processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sfarm import data
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task, studies_task
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

CANDLES = "candles/sim/BTC-USDT/1m"

INVENTORY = (head("duo") + SIM_EXCHANGE + mine_task("3h")
             + studies_task(["sma(20)", "rsi(14)"]) + """
[networks.{network}.nodes.miner]
host = "local"
tasks = ["mine"]

[networks.{network}.nodes.quant]
host = "local"
tasks = ["studies"]
""")


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "duo", node="quant") as farm:
        yield farm


def _tasks(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The tasks of every node of a status document."""
    return {task["name"]: task for node in status["nodes"] for task in node["tasks"]}


def test_a_task_reads_another_nodes_candles_with_no_configuration(farm: Farm) -> None:
    up = farm.sfarm("up", "--json")
    assert up.returncode == 0, up.stdout + up.stderr
    miner = farm.root.parent / "miner"

    def studied() -> dict[str, Any] | None:
        task = _tasks(farm.polled_status())["studies"]
        rows = [dataset["rows"] for dataset in task["datasets"]]
        return task if rows and all(count > 0 for count in rows) else None

    wait_for(lambda: studied() is not None, timeout_s=90, interval_s=1.0,
             what="rows of the indicators on node quant")
    task = _tasks(farm.status())["studies"]
    (source,) = task["inputs"]
    assert source["id"] == CANDLES and source["source_node"] == "miner"
    assert source["stale_since"] is None and source["last_ts"] is not None
    # The mirror is the producer's dataset, checked file by file, and nothing else moved.
    assert data.verify(farm.root, CANDLES, mirror_of="miner").ok
    assert sorted(p.name for p in (farm.root / "mirror").iterdir()) == ["miner"]
    # It keeps up: the mirror reaches the miner's newer candles by itself.
    produced = data.load_manifest(miner, CANDLES, with_partitions=False)
    assert produced is not None and produced.last_ts is not None
    wait_for(lambda: (m := data.load_manifest(farm.root, CANDLES, mirror_of="miner",
                                              with_partitions=False)) is not None
             and m.last_ts is not None and m.last_ts >= produced.last_ts,
             timeout_s=30, interval_s=0.2, what="the mirror following the miner")
    assert not list(miner.glob(".snapshots/*"))  # every snapshot served was removed


def test_moving_the_producer_moves_the_mirror(farm: Farm) -> None:
    assert farm.sfarm("up").returncode == 0
    wait_for(lambda: data.locate(farm.root, CANDLES, mirror_of="miner") is not None,
             timeout_s=90, interval_s=0.5, what="quant's mirror of the miner's candles")
    # The mine task moves to a new node; the old one stays in the network, idle.
    text = farm.inventory.read_text().replace('tasks = ["mine"]', "tasks = []")
    farm.inventory.write_text(text + '\n[networks.duo.nodes.miner2]\nhost = "local"\n'
                                     'tasks = ["mine"]\n')
    moved = farm.sfarm("up", check=False)
    assert moved.returncode == 0, moved.stdout + moved.stderr

    def follows_miner2() -> bool:
        (source,) = _tasks(farm.polled_status())["studies"]["inputs"]
        return source["source_node"] == "miner2" and source["stale_since"] is None \
            and data.locate(farm.root, CANDLES, mirror_of="miner2") is not None

    wait_for(follows_miner2, timeout_s=90, interval_s=1.0,
             what="quant following the candles of miner2")
    # The old mirror is gone: one copy of the dataset, so readers need not guess.
    assert data.locate(farm.root, CANDLES, mirror_of="miner") is None
    assert data.locate(farm.root, CANDLES).node == "miner2"  # type: ignore[union-attr]
    wait_for(lambda: _tasks(farm.polled_status())["studies"]["state"] == "running", timeout_s=30,
             what="the indicators running on the new mirror")
