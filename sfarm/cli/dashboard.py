"""`sfarm tui`: the farm's dashboard in the terminal (sfarm.tui)."""

from __future__ import annotations

from typing import Annotated

import typer

from sfarm.cli.options import InventoryOption, NetworkOption
from sfarm.remote.defaults import CONNECT_TIMEOUT_S

RefreshOption = Annotated[float, typer.Option(
    "--refresh", metavar="S", min=0.2, help="Seconds between status refreshes.")]
TimeoutOption = Annotated[float, typer.Option(
    "--timeout", metavar="S", min=0.1,
    help="Seconds to wait for each SSH node to connect: one that has not by then shows as "
         "unreachable (the others are not held up).")]


TUI_HELP = "\n\n".join([
    "The farm's dashboard: every node and task, live, with their data, trades and logs.",
    "A tree of the network's nodes and tasks, a table of every task (filter it with [bold]/[/]), "
    "the selection's detail (a chart of recent candles, a session's equity, the data flow) and "
    "its log. Start, stop, restart, deploy, arm or disarm with the keys in the footer (each "
    "asks first) or from the command palette ([bold]ctrl+p[/]); [bold]q[/] quits.",
    "Nodes are reached as every command run here reaches them; a node that does not answer "
    "shows as such while the rest keeps updating. [bold]sfarm web[/] serves the same dashboard "
    "to a browser.",
    "Example: [bold]sfarm tui -i inventory/local.toml[/]",
])


def tui(inventory: InventoryOption = None, network: NetworkOption = None,
        refresh: RefreshOption = 2.0, timeout: TimeoutOption = CONNECT_TIMEOUT_S) -> None:
    """The farm's dashboard in the terminal: every node and task, live, and their actions."""
    from sfarm.farm import Farm  # the farm service and textual load for the dashboard only
    from sfarm.tui.app import Dashboard

    with Farm.open(inventory, network, keep_connections=True, connect_timeout=timeout) as farm:
        Dashboard(farm, refresh_s=refresh).run()


def register(app: typer.Typer) -> None:
    app.command(help=TUI_HELP)(tui)
