"""Trading: strategy files, signals, the engine shared by backtest/paper/live, metrics, backtests.

May import numpy, polars, numba, pydantic, sfarm.errors, sfarm.timeframes, sfarm.indicators and
(in backtest.py only, the I/O edge) sfarm.data.
"""

# Starting equity when none is given: the `cash` default of trade tasks and of `sfarm backtest`.
DEFAULT_CASH = 10_000.0
