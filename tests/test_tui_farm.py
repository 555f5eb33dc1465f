"""The dashboard on a farm of six nodes, one down: five SSH nodes (each a test sshd, mining on
the emulator) and a host that accepts connections and never answers (tests/fixtures/
black_hole.py). Driven by Textual's Pilot: every live node's task shows running, the silent
node shows as such, and refreshes and keys keep working while its connection hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sfarm.farm import Farm
from sfarm.tui.app import Dashboard
from tests.fixtures.black_hole import black_hole
from tests.fixtures.dashboard import state_of, table_rows, until
from tests.fixtures.scale_farm import scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

LIVE_NODES = 5


def test_six_nodes_one_down_the_screen_keeps_updating(
        sshd_factory: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    with scale_farm(sshd_factory(LIVE_NODES)) as farm, black_hole() as hole:
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="every node mining")
        monkeypatch.setenv("HOME", str(farm.home))
        inventory = farm.inventory.with_name("with-dead.toml")
        inventory.write_text(farm.inventory.read_text() + (
            f'\n[networks.scale.nodes.dead]\nhost = "{hole.host}"\nport = {hole.port}\n'
            f'user = "nobody"\ntasks = []\n'))
        app = Dashboard(Farm.open(inventory, None, keep_connections=True, connect_timeout=3),
                        refresh_s=0.5)
        asyncio.run(_watch(app, farm.nodes))


async def _watch(app: Dashboard, live: list[str]) -> None:
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(app, lambda: app.status is not None, "the first screen")
            rows = table_rows(app)
            assert len(rows) == LIVE_NODES + 1, rows
            running = [key for key in rows if key != "dead/"]
            assert [key.split("/")[0] for key in running] == live
            await until(app, lambda: all(state_of(app, key) == "running" for key in running),
                        "every live node's task running")
            assert state_of(app, "dead/") == "unreachable"
            # The silent node does not hold the screen: refreshes keep coming, keys work.
            for _ in range(3):
                seen = app.status_at
                await until(app, lambda seen=seen: app.status_at > seen,  # type: ignore[misc]
                            "the next refresh", timeout_s=10)
            await pilot.press("slash", *"state:unreachable", "enter")
            await until(app, lambda: list(table_rows(app)) == ["dead/"], "the filter")
            assert "timed out after 3 s" in table_rows(app)["dead/"][-1]
    finally:
        app.farm.close()
