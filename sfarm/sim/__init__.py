"""The offline exchange emulator: Binance's spot REST dialect over deterministic synthetic candles.

May import numpy, sfarm.timeframes, sfarm.errors and the standard library (never ccxt: the
emulator is what ccxt talks to).
"""

from sfarm.sim.candles import DEFAULT_START_MS, Candles, CandleSource
from sfarm.sim.faults import FaultPlan, parse_faults
from sfarm.sim.ledger import AccountConfig
from sfarm.sim.markets import MARKETS, SimMarket
from sfarm.sim.server import DEFAULT_API_KEY, DEFAULT_SECRET, Emulator, EmulatorConfig

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "DEFAULT_START_MS",
    "MARKETS",
    "AccountConfig",
    "CandleSource",
    "Candles",
    "Emulator",
    "EmulatorConfig",
    "FaultPlan",
    "SimMarket",
    "parse_faults",
]
