"""The exchanges sfarm trades live on, and why only those.

A live session's guarantees rest on client order ids: an order is placed with an id derived
from its candle (sfarm.trading.client_ids), so a step redone after a crash finds the order
instead of placing it twice, and a restart reconciles the session with the exchange by those
ids. The live broker (sfarm.trading.broker) asks for them through ccxt's unified API
(`clientOrderId` on create, fetch and cancel; `create_market_buy_order_with_cost`); an
exchange is listed here once its ccxt class maps all of them and sfarm's tests have exercised
the broker on it (binance: against sfarm's emulator, which speaks its dialect). `validate`
refuses live trading on any other.
"""

from __future__ import annotations

LIVE_EXCHANGES: tuple[str, ...] = ("binance",)


def supports_live(ccxt_id: str) -> bool:
    return ccxt_id in LIVE_EXCHANGES
