"""A class strategy on a farm: its module is trusted code shipped with its strategy file to the
nodes (at the same relative path) and imported by the trade task that uses it, and by nothing
that only loads the inventory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

STRATEGIES = Path(__file__).parent / "data" / "strategies"
INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("3h") + """
[tasks.breakout]
kind = "trade"
mode = "paper"
exchange = "sim"
market = "BTC/USDT"
timeframe = "1m"
strategy = "strategies/breakout.toml"

[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "breakout"]
"""


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "classy") as farm:
        (farm.inventory.parent / "strategies").mkdir()
        for name in ("breakout.toml", "breakout.py"):
            shutil.copy(STRATEGIES / name, farm.inventory.parent / "strategies" / name)
        yield farm


def test_a_class_strategy_is_deployed_with_its_module_and_trades(farm: Farm) -> None:
    farm.sfarm("up")
    shipped = farm.root / "strategies" / "breakout.py"
    assert shipped.read_bytes() == (STRATEGIES / "breakout.py").read_bytes()

    def trading() -> bool:
        task = farm.tasks()["breakout"]
        assert task["state"] != "failed", task["last_error"]
        return task["state"] == "running" and any(
            dataset["id"] == "sessions/breakout/equity" and dataset["rows"] > 0
            for dataset in task["datasets"])

    wait_for(trading, what="the paper session of the class strategy trading on the node")
    assert farm.sfarm("validate").returncode == 0
