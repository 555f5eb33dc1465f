"""The dashboard (`sfarm tui`) driven by Textual's Pilot against a real farm: a local node
mining on the emulator under supervisord, and an SSH node nobody listens for. Navigation, a
stop that asks first, the unreachable node shown as such while the rest keeps updating, the
log pane following new lines."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from sfarm.farm import Farm as FarmService
from sfarm.tui.app import Dashboard
from tests.fixtures.cli import sfarm_env
from tests.fixtures.dashboard import (
    Terminal,
    dashboard_inventory,
    detail_text,
    log_text,
    state_of,
    table_rows,
    until,
)
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

SIZE = (160, 48)


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with local_farm(dashboard_inventory(), "dash") as farm:
        farm.sfarm("up", "--node", "lab")
        wait_for(lambda: next(iter(farm.polled_tasks().values()))["state"] == "running",
                 what="the local miner running")
        yield farm


def run(test: Callable[[Farm], Coroutine[Any, Any, None]], farm: Farm) -> None:
    asyncio.run(test(farm))  # the Pilot is async; the suite has no async test plugin


def dashboard(farm: Farm) -> Dashboard:
    service = FarmService.open(farm.inventory, None, keep_connections=True, connect_timeout=2)
    return Dashboard(service, refresh_s=0.5)


def test_rows_for_every_task_and_the_unreachable_node(farm: Farm) -> None:
    run(_test_rows_for_every_task_and_the_unreachable_node, farm)


async def _test_rows_for_every_task_and_the_unreachable_node(farm: Farm) -> None:
    app = dashboard(farm)
    try:
        async with app.run_test(size=SIZE):
            await until(app, lambda: state_of(app, "lab/mine") == "running", "lab/mine running")
            await until(app, lambda: state_of(app, "far/") == "unreachable",
                        "node far unreachable")
            note = table_rows(app)["far/"][-1]
            assert "refused" in note.lower() or "connect" in note.lower(), note
            # The rest keeps updating while far stays down: new statuses keep coming, lab's
            # row among them (its state is the miner's own: on a loaded machine it may be
            # reloading markets, "starting", for a moment).
            first = app.status_at
            await until(app, lambda: app.status_at > first, "another refresh")
            assert state_of(app, "lab/mine") not in (None, "unreachable")
    finally:
        app.farm.close()


def test_navigation_shows_the_selection(farm: Farm) -> None:
    run(_test_navigation_shows_the_selection, farm)


async def _test_navigation_shows_the_selection(farm: Farm) -> None:
    app = dashboard(farm)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(app, lambda: "lab/mine" in table_rows(app), "the table filled")
            app.query_one("#tasks").focus()
            keys = list(table_rows(app))
            table = app.query_one("#tasks")
            await pilot.press(*["down"] * keys.index("lab/mine"))
            await pilot.pause()
            assert table.cursor_row == keys.index("lab/mine")  # type: ignore[attr-defined]
            await until(app, lambda: "mine (mine) on lab" in detail_text(app)
                        and "candles/sim/BTC-USDT/1m" in detail_text(app),
                        "the task's detail with its output")
            # Its recent candles, asked of the node, drawn as a chart.
            await until(app, lambda: app.detail_ready, "the recent candles")
            assert app.query_one("#detail-chart").display
            # A node: what it says of itself.
            app.query_one("#farm-tree").focus()
            await pilot.press("home", "down")
            await until(app, lambda: "reachable  yes" in detail_text(app)
                        and app.detail_ready, "the node's detail")
            assert f"root       {farm.root}" in detail_text(app)
            # The tree selects too: its root is the network.
            app.query_one("#farm-tree").focus()
            await pilot.press("down", "home")
            await until(app, lambda: "1 of 2 answer" in detail_text(app), "the network's detail")
            assert "far" in detail_text(app)
            # A filter keeps the rows that match.
            await pilot.press("slash", *"state:unreachable", "enter")
            await until(app, lambda: list(table_rows(app)) == ["far/"], "the filtered table")
            await pilot.press("escape")
            await until(app, lambda: len(table_rows(app)) == 2, "the filter cleared")
            # The command palette holds every action and the filters.
            titles = [command.title for command in app.get_system_commands(app.screen)]
            for title in ("Stop task mine on lab", "Restart node lab", "Deploy node far",
                          "Start the whole network", "Filter: node far", "Filter: failed"):
                assert title in titles, titles
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Filter: node far")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await until(app, lambda: list(table_rows(app)) == ["far/"], "the palette's filter")
    finally:
        app.farm.close()


def test_stop_asks_first_and_stops_the_worker(farm: Farm) -> None:
    run(_test_stop_asks_first_and_stops_the_worker, farm)


async def _test_stop_asks_first_and_stops_the_worker(farm: Farm) -> None:
    app = dashboard(farm)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(app, lambda: state_of(app, "lab/mine") == "running", "lab/mine running")
            app.query_one("#tasks").focus()
            app.select_row("lab/mine")
            await pilot.press("x")
            await pilot.pause()
            assert "Stop the worker of task mine on lab?" in str(
                app.screen.query_one("#question").render())
            await pilot.press("n")  # declined: nothing happens
            await pilot.pause(1.5)
            assert farm.tasks()["mine"]["state"] == "running"
            await pilot.press("x")
            await pilot.pause()
            await pilot.press("y")
            await until(app, lambda: state_of(app, "lab/mine") == "stopped", "lab/mine stopped")
            assert farm.tasks()["mine"]["state"] == "stopped"  # the farm, not only the screen
    finally:
        app.farm.close()
        farm.sfarm("start", "--node", "lab")


def test_log_pane_follows_new_lines(farm: Farm) -> None:
    run(_test_log_pane_follows_new_lines, farm)


async def _test_log_pane_follows_new_lines(farm: Farm) -> None:
    app = dashboard(farm)
    try:
        async with app.run_test(size=SIZE):
            await until(app, lambda: "lab/mine" in table_rows(app), "the table filled")
            app.select_row("lab/mine")
            await until(app, lambda: "mining sim" in log_text(app), "the miner's log")
            with (farm.root / "logs" / "mine.log").open("a") as log:
                log.write("a line written after the pane opened\n")
            await until(app, lambda: "a line written after the pane opened" in log_text(app),
                        "the new line in the log pane")
    finally:
        app.farm.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test "
                                                         "installs it as root)")
def test_sfarm_tui_in_a_real_terminal_shows_every_task(farm: Farm) -> None:
    env = {name: value for name, value in sfarm_env().items()
           if name not in ("NO_COLOR", "TERM", "COLUMNS")}
    command = ["env", "-i", *[f"{name}={value}" for name, value in env.items()],
               "TERM=xterm-256color", sys.executable, "-m", "sfarm", "tui",
               "-i", str(farm.inventory), "--refresh", "0.5"]
    terminal = Terminal(command)
    try:
        wait_for(lambda: all(word in terminal.screen()
                             for word in ("mine-far", "running", "unreachable", "Quit")),
                 what="every task on the dashboard in tmux")
        screen = terminal.screen()
        assert "lab" in screen and "far" in screen
        terminal.press("q")
        wait_for(lambda: not terminal.alive, what="the dashboard to quit on q")
    finally:
        terminal.close()
