"""Trading: strategy files, signals, the engine shared by backtest/paper/live, metrics, backtests.

May import numpy, polars, numba, pydantic, sfarm.errors, sfarm.timeframes, sfarm.indicators and
(in backtest.py only, the I/O edge) sfarm.data.
"""
