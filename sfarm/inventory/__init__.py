"""The inventory: the farm's TOML file as validated models, with errors that name file, line
and key. Loading one also reads the strategy file of every trade task and plans every network,
because their problems are the inventory's.

May import sfarm.tasks (the task and exchange tables it is made of), sfarm.plan, sfarm.trading
(strategy files, read by `load.read_strategy_indicators`), sfarm.indicators (spec parsing),
sfarm.exchanges (ccxt's exchange ids), sfarm.errors, pydantic. Nothing below it imports it:
the engines read their settings from sfarm.tasks.
"""

from sfarm.inventory.load import LoadedInventory, NodeSpec, find_inventory, load_inventory
from sfarm.inventory.model import Inventory
from sfarm.inventory.problems import InventoryError, Problem

__all__ = ["Inventory", "InventoryError", "LoadedInventory", "NodeSpec", "Problem",
           "find_inventory", "load_inventory"]
