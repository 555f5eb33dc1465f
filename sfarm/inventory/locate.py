"""Where a command's inventory is, found without reading it: -i PATH, else $SFARM_INVENTORY,
else ./sfarm.toml, else the inventory.toml of the node root the command runs in.

Standard library only, so that shell completion (sfarm.cli.completion) finds the inventory as
every command does without loading the models.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sfarm.errors import UsageError

NODE_FILE = "node.json"
INVENTORY_FILE = "inventory.toml"
DEFAULT_INVENTORY = Path("sfarm.toml")


def is_node_root(directory: Path) -> bool:
    return (directory / NODE_FILE).is_file() and (directory / INVENTORY_FILE).is_file()


def find_node_root(cwd: Path | None = None, prefix: Path | None = None) -> Path | None:
    """The node root a command runs in: `cwd` (the current directory) or the nearest of its
    parents that is one, else the parent of the venv at `prefix` (this interpreter's) when that
    is one; None when neither is."""
    here = (cwd or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        if is_node_root(directory):
            return directory
    venv = Path(prefix or sys.prefix).absolute()
    if venv.name == "venv" and is_node_root(venv.parent):
        return venv.parent
    return None


def find_inventory(path: Path | None) -> Path:
    """The inventory a command uses: -i PATH, else $SFARM_INVENTORY, else ./sfarm.toml, else
    the inventory.toml of the node root the command runs in (sfarm.inventory.origin)."""
    chosen = path or (Path(os.environ["SFARM_INVENTORY"]) if os.environ.get("SFARM_INVENTORY")
                      else DEFAULT_INVENTORY)
    if path is None and chosen == DEFAULT_INVENTORY and not chosen.exists():
        root = find_node_root()
        if root is not None:
            return root / INVENTORY_FILE
    if not chosen.is_file():
        raise UsageError(
            f"no inventory at {chosen}" if chosen.exists() is False else f"{chosen} is not a file",
            hint="pass -i PATH, set SFARM_INVENTORY, run it in a deployed node's root, or "
                 "create one with `sfarm init DIR`",
        )
    return chosen
