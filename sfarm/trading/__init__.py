"""Trading: strategy files, signals, the engine shared by backtest/paper/live, metrics, backtests,
paper and live sessions and the `trade` task's worker engine.

May import numpy, polars, numba, pydantic, sfarm.errors, sfarm.timeframes, sfarm.indicators;
sfarm.data at the I/O edges (backtest, feed, session, paper, live, task); ccxt through
sfarm.exchanges in broker.py only (imported by live workers alone).
"""

# Starting equity when none is given: the `cash` default of trade tasks and of `sfarm backtest`.
DEFAULT_CASH = 10_000.0
