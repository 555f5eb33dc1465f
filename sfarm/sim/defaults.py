"""The emulator's well-known test account, apart from the server so that `sfarm sim --help`
(and every CLI start, which registers that command) shows it without loading the emulator."""

from __future__ import annotations

from decimal import Decimal

DEFAULT_API_KEY = "sfarm-sim-key"
DEFAULT_SECRET = "sfarm-sim-secret"
DEFAULT_BALANCES = {"USDT": Decimal("100000"), "BTC": Decimal("1"), "ETH": Decimal("10")}
