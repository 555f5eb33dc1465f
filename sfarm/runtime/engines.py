"""Which engine runs a task, and how its progress reaches the worker's heartbeat.

Each engine package keeps its own entry point; this module adapts them to the worker's one
signature, `engine(context)`, and imports them lazily so a worker loads only its own engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.errors import RunError
from sfarm.inventory.model import IndicatorsTask, MineTask, TradeTask

if TYPE_CHECKING:
    from sfarm.inventory import LoadedInventory
    from sfarm.runtime.worker import Engine, WorkerContext


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
    def run(context: WorkerContext) -> None:
        from sfarm.mining import MineProgress, run_mine_task

        task: MineTask = context.config
        exchange = inventory.model.exchanges[task.exchange]

        latest: dict[str, MineProgress] = {}

        def report(progress: MineProgress) -> None:
            latest[progress.dataset_id] = progress
            context.board.output(progress.dataset_id, progress.last_ts, progress.rows)
            context.board.set_counters({
                "candles_added": sum(p.rows_added for p in latest.values()),
                "requests": sum(p.requests for p in latest.values()),
                "retries": sum(p.retries for p in latest.values()),
            })
            if progress.error:
                context.board.error(progress.error)

        result = run_mine_task(context.root.path, context.task, task, exchange,
                               stop_event=context.stop, on_progress=report,
                               secrets_file=context.root.secrets / "secrets.toml")
        if result.failures and not context.stop.is_set():
            failed = "; ".join(f"{p.dataset_id}: {p.error}" for p in result.failures)
            raise RunError(f"mining failed: {failed}")

    return run


def _trade_engine(inventory: LoadedInventory, task: TradeTask) -> Engine:
    strategy_path = inventory.strategy_path(task)
    exchange = inventory.model.exchanges[task.exchange]

    def run(context: WorkerContext) -> None:
        from sfarm.trading.task import run_trade_task

        run_trade_task(context, strategy_path=strategy_path, exchange=exchange)

    return run
