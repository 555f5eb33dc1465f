"""The offline exchange emulator: Binance's spot REST dialect over deterministic synthetic candles.

May import numpy, sfarm.timeframes, sfarm.errors and the standard library (never ccxt: the
emulator is what ccxt talks to).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

if TYPE_CHECKING:
    from sfarm.sim.candles import DEFAULT_START_MS, Candles, CandleSource  # noqa: F401
    from sfarm.sim.defaults import DEFAULT_API_KEY, DEFAULT_SECRET  # noqa: F401
    from sfarm.sim.faults import FaultPlan, parse_faults  # noqa: F401
    from sfarm.sim.ledger import AccountConfig  # noqa: F401
    from sfarm.sim.markets import MARKETS, SimMarket  # noqa: F401
    from sfarm.sim.server import Emulator, EmulatorConfig  # noqa: F401

# The emulator (numpy) loads on first use, not when the CLI registers `sfarm sim`.
_EXPORTS = {
    "DEFAULT_API_KEY": "sfarm.sim.defaults",
    "DEFAULT_SECRET": "sfarm.sim.defaults",
    "DEFAULT_START_MS": "sfarm.sim.candles",
    "MARKETS": "sfarm.sim.markets",
    "AccountConfig": "sfarm.sim.ledger",
    "CandleSource": "sfarm.sim.candles",
    "Candles": "sfarm.sim.candles",
    "Emulator": "sfarm.sim.server",
    "EmulatorConfig": "sfarm.sim.server",
    "FaultPlan": "sfarm.sim.faults",
    "SimMarket": "sfarm.sim.markets",
    "parse_faults": "sfarm.sim.faults",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
