"""Trading: strategy files, signals, the engine shared by backtest/paper/live, metrics, backtests,
paper and live sessions and the `trade` task's worker engine.

May import numpy, polars, numba, pydantic, sfarm.errors, sfarm.timeframes, sfarm.indicators;
sfarm.data at the I/O edges (backtest, feed, session, live_guard, task); sfarm.context and
sfarm.tasks for the worker engine's context and task model (session, loop, task); ccxt and
sfarm.exchanges in broker.py and `task.make_broker` only (imported by live workers alone).
Never sfarm.runtime (the runtime imports this package) nor sfarm.inventory (the inventory reads
strategy files with this package).
"""
