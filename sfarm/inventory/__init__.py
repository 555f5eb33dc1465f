"""The inventory: the farm's TOML file as validated models, with errors that name file, line
and key. Imports only sfarm.data.ids, sfarm.timeframes, sfarm.indicators (spec parsing) and,
lazily, sfarm.trading.strategy (to read the indicators a strategy file declares)."""

from sfarm.inventory.load import LoadedInventory, NodeSpec, find_inventory, load_inventory
from sfarm.inventory.model import Inventory
from sfarm.inventory.problems import InventoryError, Problem

__all__ = ["Inventory", "InventoryError", "LoadedInventory", "NodeSpec", "Problem",
           "find_inventory", "load_inventory"]
