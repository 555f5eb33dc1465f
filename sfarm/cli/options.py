"""Options shared by many commands, declared once so every command spells them the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from sfarm.errors import UsageError

InventoryOption = Annotated[
    Path | None,
    typer.Option(
        "--inventory", "-i",
        help="Inventory file. Default: $SFARM_INVENTORY, else ./sfarm.toml, else the "
             "inventory.toml of the deployed node root this runs in (any node manages the "
             "farm).",
        envvar="SFARM_INVENTORY", show_envvar=False,
    ),
]
NetworkOption = Annotated[
    str | None,
    typer.Option(
        "--network", "-n",
        help="Network to act on; required when the inventory has more than one (in a node "
             "root: that node's).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout and nothing else there."),
]
RootOption = Annotated[
    Path,
    typer.Option("--root", help="Data root: the directory that holds data/ (a node root)."),
]


def checked_value(option: str, check: Callable[[str], str], value: str) -> str:
    """`value` when `check` (sfarm.markets.check_market, sfarm.timeframes.check_timeframe)
    accepts it; else UsageError `OPTION: <the check's message>`, which quotes the value and,
    for a near miss, the form meant (`--market: ..., got 'SOLUSDT'; did you mean 'SOL/USDT'?`)."""
    try:
        return check(value)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None

