"""The dashboard's main screens pinned as SVG snapshots (pytest-textual-snapshot): a recorded
status of a three-node network (one node unreachable, a paper session with a stale input) and
a fixed clock, so each screen is the same on every run. After a deliberate change of the
screens: `pytest tests/test_tui_snapshots.py --snapshot-update`, and look at the new SVGs
(docs/dashboard.md shows them too)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from sfarm.farm import Farm
from sfarm.status import NetworkStatus
from sfarm.tui.app import Dashboard

DATA = Path(__file__).parent / "data" / "dashboard"
NOW = 1796192500.0  # 2026-12-02 06:21:40 UTC, the recorded status's clock
SIZE = (150, 44)

SnapCompare = Callable[..., bool]


@pytest.fixture
def app() -> Dashboard:
    status = NetworkStatus.model_validate(json.loads((DATA / "status.json").read_text()))
    farm = Farm.open(DATA / "farm.toml", None, keep_connections=True)
    return Dashboard(farm, refresh_s=3600, collect=lambda: status, clock=lambda: NOW)


async def _loaded(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, Dashboard)
    while app.status is None:
        await pilot.pause(0.05)


def _selecting(key: str) -> Callable[[Pilot[Any]], Any]:
    """Select the row `key` and wait for the log pane's first words and the detail's data (its
    node's, or why they cannot be read: nothing listens on the recorded SSH nodes' port, and
    the local node's root does not exist)."""
    async def select(pilot: Pilot[Any]) -> None:
        await _loaded(pilot)
        app = pilot.app
        assert isinstance(app, Dashboard)
        app.query_one("#tasks").focus()
        app.select_row(key)
        while not (app.query_one(RichLog).lines and app.detail_ready):
            await pilot.pause(0.05)
    return select


def test_network(snap_compare: SnapCompare, app: Dashboard) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded)


def test_trade_session_selected(snap_compare: SnapCompare, app: Dashboard) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_selecting("trader/breakout-paper"))


def test_stop_asks_first(snap_compare: SnapCompare, app: Dashboard) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_selecting("lab/mine"),
                        press=["x"])


def test_filtered_by_state(snap_compare: SnapCompare, app: Dashboard) -> None:
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded,
                        press=["slash", *"state:unreachable,running", "enter"])
