"""The inventory: the farm's TOML file as validated models, with errors that name file, line
and key. Loading one also reads the strategy file of every trade task and plans every network,
because their problems are the inventory's.

May import sfarm.tasks (the task and exchange tables it is made of), sfarm.plan, sfarm.trading
(strategy files, read by `load.read_strategy_indicators`), sfarm.indicators (spec parsing),
sfarm.exchanges (ccxt's exchange ids), sfarm.errors, pydantic. Nothing below it imports it:
the engines read their settings from sfarm.tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

if TYPE_CHECKING:
    from sfarm.inventory.load import LoadedInventory, NodeSpec, load_inventory  # noqa: F401
    from sfarm.inventory.locate import find_inventory  # noqa: F401
    from sfarm.inventory.model import Inventory  # noqa: F401
    from sfarm.inventory.problems import InventoryError, Problem  # noqa: F401

# The models (pydantic) load on first use: the CLI's error rendering imports the problems
# module at every start, and `sfarm --help` needs no model.
_EXPORTS = {
    "Inventory": "sfarm.inventory.model",
    "InventoryError": "sfarm.inventory.problems",
    "LoadedInventory": "sfarm.inventory.load",
    "NodeSpec": "sfarm.inventory.load",
    "Problem": "sfarm.inventory.problems",
    "find_inventory": "sfarm.inventory.locate",
    "load_inventory": "sfarm.inventory.load",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
