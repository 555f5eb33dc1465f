"""The emulator's fixed list of spot markets and the walk parameters that shape their prices.

Prices and amounts are integers in the market's tick and lot units everywhere inside the emulator,
so aggregating candles is exact; they become decimal strings only at the HTTP edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class SimMarket:
    """One spot market of the emulator.

    `anchor_price` is the level the daily walk reverts to, `daily_vol` the standard deviation of a
    day's log return and `minute_volume` the mean traded base amount per minute.
    """

    base: str
    quote: str
    anchor_price: float
    price_decimals: int
    amount_decimals: int
    daily_vol: float
    minute_volume: float

    @property
    def symbol(self) -> str:
        """Unified symbol, as ccxt writes it: `BTC/USDT`."""
        return f"{self.base}/{self.quote}"

    @property
    def market_id(self) -> str:
        """Binance's symbol: `BTCUSDT`."""
        return f"{self.base}{self.quote}"

    @property
    def tick(self) -> Decimal:
        """Price step (Binance PRICE_FILTER tickSize)."""
        return Decimal(1).scaleb(-self.price_decimals)

    @property
    def lot(self) -> Decimal:
        """Amount step (Binance LOT_SIZE stepSize)."""
        return Decimal(1).scaleb(-self.amount_decimals)

    def price(self, ticks: int) -> Decimal:
        """A price in ticks as an exact decimal."""
        return Decimal(int(ticks)).scaleb(-self.price_decimals)

    def amount(self, lots: int) -> Decimal:
        """An amount in lots as an exact decimal."""
        return Decimal(int(lots)).scaleb(-self.amount_decimals)


MARKETS: tuple[SimMarket, ...] = (
    SimMarket("BTC", "USDT", 45_000.0, 2, 5, 0.030, 14.0),
    SimMarket("ETH", "USDT", 2_300.0, 2, 4, 0.035, 250.0),
    SimMarket("SOL", "USDT", 100.0, 2, 3, 0.050, 3_000.0),
    SimMarket("BNB", "USDT", 310.0, 2, 3, 0.035, 500.0),
    SimMarket("XRP", "USDT", 0.60, 4, 0, 0.040, 200_000.0),
    SimMarket("DOGE", "USDT", 0.08, 5, 0, 0.050, 1_500_000.0),
    SimMarket("ADA", "USDT", 0.50, 4, 1, 0.045, 300_000.0),
    SimMarket("LTC", "USDT", 75.0, 2, 3, 0.040, 1_200.0),
    SimMarket("ETH", "BTC", 0.055, 5, 4, 0.025, 30.0),
)

MARKETS_BY_ID: dict[str, SimMarket] = {market.market_id: market for market in MARKETS}
MARKETS_BY_SYMBOL: dict[str, SimMarket] = {market.symbol: market for market in MARKETS}

ASSET_NAMES: dict[str, str] = {
    "BTC": "Bitcoin", "ETH": "Ethereum", "SOL": "Solana", "BNB": "BNB", "XRP": "XRP",
    "DOGE": "Dogecoin", "ADA": "Cardano", "LTC": "Litecoin", "USDT": "TetherUS",
}


def assets() -> list[str]:
    """Every asset that appears in a market, sorted."""
    return sorted({asset for market in MARKETS for asset in (market.base, market.quote)})
