"""Trading: strategy files, signals, the engine shared by backtest/paper/live, metrics, backtests,
paper and live sessions and the `trade` task's worker engine.

May import numpy, polars, numba, pydantic, sfarm.errors, sfarm.timeframes, sfarm.indicators;
sfarm.data at the I/O edges (backtest, feed, session, live_guard, task); sfarm.context and
sfarm.inventory.model for the worker engine's context and task model (session, loop, task);
ccxt and sfarm.exchanges in broker.py and `task.make_broker` only (imported by live workers
alone). Never sfarm.runtime: the runtime imports this package, not the other way round.
"""

# Starting equity when none is given: the `cash` default of trade tasks and of `sfarm backtest`.
DEFAULT_CASH = 10_000.0
