"""Arming a live session from the dashboard: two confirmations, the second one typed, and
nothing armed unless both are given; disarming asks once. Against a real local farm, its live
worker running disarmed (arming is the node's `run/<task>.live` naming that worker's pid,
sfarm.trading.live_guard)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from sfarm.farm import Farm as FarmService
from sfarm.tui.app import Dashboard
from sfarm.tui.confirm import Confirm, TypeToConfirm
from tests.fixtures.dashboard import table_rows, until
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import (
    ALWAYS_IN,
    SIM_EXCHANGE,
    head,
    live_trade_task,
    mine_task,
)

pytestmark = pytest.mark.slow

INVENTORY = (head("{network}") + SIM_EXCHANGE + mine_task("1h")
             + live_trade_task(cash=500.0) + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine", "trader"]
""")


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "armed", files={"always.toml": ALWAYS_IN}) as farm:
        farm.sfarm("up")  # the trader runs disarmed: arming is its running worker's
        yield farm


def test_arming_asks_twice_and_needs_the_task_name_typed(farm: Farm) -> None:
    app = Dashboard(FarmService.open(farm.inventory, None, keep_connections=True),
                    refresh_s=0.5)
    armed = farm.root / "run" / "trader.live"

    async def drive() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(app, lambda: "lab/trader" in table_rows(app), "the table")
            app.query_one("#tasks").focus()
            app.select_row("lab/mine")
            await pilot.press("a")  # not a live task: nothing to confirm
            await pilot.pause()
            assert not isinstance(app.screen, Confirm)

            app.select_row("lab/trader")
            await pilot.press("a")
            await until(app, lambda: isinstance(app.screen, Confirm), "the first question")
            await pilot.press("y")
            await until(app, lambda: isinstance(app.screen, TypeToConfirm), "the second one")
            await pilot.press(*"mine", "enter")  # not the task's name: nothing armed
            await pilot.pause(1.0)
            assert not armed.exists()

            await pilot.press("a")
            await until(app, lambda: isinstance(app.screen, Confirm), "the first question")
            await pilot.press("y")
            await until(app, lambda: isinstance(app.screen, TypeToConfirm), "the second one")
            await pilot.press(*"trader", "enter")
            await until(app, armed.exists, "run/trader.live on the node")
            record = json.loads(armed.read_text())
            assert record["by"] == "sfarm dashboard --live"
            assert record["pid"] == farm.tasks()["trader"]["pid"]  # its worker, and no other

            await pilot.press("z")
            await until(app, lambda: isinstance(app.screen, Confirm), "the disarm question")
            await pilot.press("y")
            await until(app, lambda: not armed.exists(), "the arm file removed")

    try:
        asyncio.run(drive())
    finally:
        app.farm.close()
