"""Which engine runs a task, and how its progress reaches the worker's heartbeat.

Each engine package keeps its own entry point, a function of its task's
`sfarm.context.TaskContext`; this module binds it to the inventory (exchanges, strategy files)
and imports it lazily so a worker loads only its own engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.context import TaskContext
from sfarm.errors import RunError
from sfarm.tasks import IndicatorsTask, MineTask, TradeTask

if TYPE_CHECKING:
    from sfarm.inventory import LoadedInventory
    from sfarm.runtime.worker import Engine


def engine_for(inventory: LoadedInventory, task_name: str) -> Engine:
    """The engine of `task_name`, bound to its inventory (exchanges, strategy files)."""
    task = inventory.model.tasks[task_name]
    if isinstance(task, MineTask):
        return _mine_engine(inventory)
    if isinstance(task, IndicatorsTask):
        from sfarm.indicators.task import run_indicators

        return run_indicators
    if isinstance(task, TradeTask):
        return _trade_engine(inventory, task)
    raise RunError(f"task {task_name!r}: no engine for kind {task.kind!r}")


def _mine_engine(inventory: LoadedInventory) -> Engine:
    def run(context: TaskContext[MineTask]) -> None:
        from sfarm.mining.run import run_mine

        run_mine(context, inventory.model.exchanges[context.config.exchange])

    return run


def _trade_engine(inventory: LoadedInventory, task: TradeTask) -> Engine:
    strategy_path = inventory.strategy_path(task)
    exchange = inventory.model.exchanges[task.exchange]

    def run(context: TaskContext[TradeTask]) -> None:
        from sfarm.trading.task import run_trade_task

        run_trade_task(context, strategy_path=strategy_path, exchange=exchange,
                       produced=produced_indicators(inventory))

    return run


def produced_indicators(inventory: LoadedInventory) -> frozenset[str]:
    """The indicator datasets tasks of this node's network produce (its plan), which its
    sessions read instead of computing; none for an inventory outside a node root."""
    if inventory.origin is None or inventory.origin.network not in inventory.model.networks:
        return frozenset()
    from sfarm.plan import plan_network

    plan = plan_network(inventory, inventory.origin.network)
    return frozenset(dataset.id for dataset in plan.datasets
                     if dataset.producer is not None and dataset.id.startswith("indicators/"))
