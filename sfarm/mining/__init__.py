"""The `mine` engine: download candles with ccxt into the dataset store, resumable, closed candles
only, exchange-side gaps recorded. May import polars, sfarm.data, sfarm.exchanges, sfarm.tasks
(the mine task's and the exchange's settings), sfarm.context (the worker's engine, `run_mine`),
sfarm.timeframes and sfarm.errors; nothing about nodes, SSH, the CLI or the inventory.
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
