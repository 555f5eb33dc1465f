"""Binance's static documents for the emulated markets: exchangeInfo and the coin list.

Shapes follow Binance's spot API so that ccxt's parsers read them unmodified; only the order types
the emulator really executes are advertised, so ccxt refuses the others before sending them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sfarm.sim.markets import ASSET_NAMES, MARKETS, SimMarket, assets
from sfarm.sim.protocol import fmt8

ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]
MAX_NUM_ORDERS = 200
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def min_notional(market: SimMarket) -> Decimal:
    """Smallest order value accepted, in the quote asset (Binance's NOTIONAL filter)."""
    return Decimal("5") if market.quote == "USDT" else Decimal("0.0001")


def symbol_info(market: SimMarket) -> dict[str, Any]:
    """One entry of exchangeInfo's `symbols`."""
    return {
        "symbol": market.market_id,
        "status": "TRADING",
        "baseAsset": market.base,
        "baseAssetPrecision": 8,
        "quoteAsset": market.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt8(market.tick),
             "maxPrice": "1000000.00000000", "tickSize": fmt8(market.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt8(market.lot), "maxQty": "9000000.00000000",
             "stepSize": fmt8(market.lot)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
             "maxQty": "9000000.00000000", "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": fmt8(min_notional(market)),
             "applyMinToMarket": True, "maxNotional": "9000000.00000000",
             "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": MAX_NUM_ORDERS},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def exchange_info(now_ms: int, symbols: list[str] | None = None) -> dict[str, Any]:
    """GET /api/v3/exchangeInfo, optionally restricted to some market ids."""
    chosen = [m for m in MARKETS if symbols is None or m.market_id in symbols]
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(market) for market in chosen],
    }


def coin_list(free: dict[str, Decimal], locked: dict[str, Decimal]) -> list[dict[str, Any]]:
    """GET /sapi/v1/capital/config/getall: every asset with one network, and the caller's funds."""
    coins = []
    for asset in sorted(set(assets()) | set(free) | set(locked)):
        coins.append({
            "coin": asset,
            "name": ASSET_NAMES.get(asset, asset),
            "depositAllEnable": True,
            "withdrawAllEnable": True,
            "free": fmt8(free.get(asset, Decimal(0))),
            "locked": fmt8(locked.get(asset, Decimal(0))),
            "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0",
            "isLegalMoney": False,
            "trading": True,
            "networkList": [{
                "network": asset, "coin": asset, "name": ASSET_NAMES.get(asset, asset),
                "isDefault": True, "depositEnable": True, "withdrawEnable": True,
                "withdrawFee": "0", "withdrawMin": "0", "withdrawMax": "9999999999",
                "withdrawIntegerMultiple": "0.00000001", "minConfirm": 1, "unLockConfirm": 1,
                "depositDesc": "", "withdrawDesc": "", "specialTips": "", "busy": False,
                "sameAddress": False, "addressRegex": "", "memoRegex": "",
            }],
        })
    return coins
