"""Where a local node's root is: what every command on a local node needs (its agent runs the
node's handler in this process), kept apart from deploy's modules so that `sfarm status`
loads none of them."""

from __future__ import annotations

import os
from pathlib import Path

from sfarm.inventory import LoadedInventory, NodeSpec


def local_root(inventory: LoadedInventory, node: NodeSpec) -> Path:
    """A local node's root: `~` expanded, relative base_dir taken from the inventory's folder."""
    base = Path(os.path.expanduser(node.base_dir))
    if not base.is_absolute():
        base = inventory.inventory_dir / base
    return base / node.network / node.name
