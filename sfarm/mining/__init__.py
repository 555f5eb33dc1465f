"""The `mine` engine: download candles with ccxt into the dataset store, resumable, closed candles
only, exchange-side gaps recorded. May import sfarm.data, sfarm.exchanges, sfarm.inventory.model,
sfarm.timeframes, sfarm.errors and sfarm.context (the worker's engine, `run_mine`); nothing about
nodes, SSH or the CLI.
"""

from sfarm.mining.fetch import MinerSettings
from sfarm.mining.model import MineProgress, MineRequest, MineResult
from sfarm.mining.run import mine, mine_async, request_for_task, run_mine_task

__all__ = [
    "MineProgress",
    "MineRequest",
    "MineResult",
    "MinerSettings",
    "mine",
    "mine_async",
    "request_for_task",
    "run_mine_task",
]
