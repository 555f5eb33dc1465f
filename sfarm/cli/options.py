"""Options shared by many commands, declared once so every command spells them the same."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
