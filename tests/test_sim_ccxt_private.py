"""Signed endpoints through unmodified ccxt: balance, orders, fills, errors, and key hygiene."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from decimal import Decimal

import ccxt
import pytest

from sfarm.exchanges import Credentials, make_exchange
from sfarm.sim.auth import sign
from sfarm.sim.candles import CandleSource
from sfarm.sim.markets import MARKETS_BY_SYMBOL
from sfarm.timeframes import candle_open
from tests.fixtures.emulator import Clock
from tests.fixtures.http import http_json

BTC = MARKETS_BY_SYMBOL["BTC/USDT"]
JUNE_2024_NOON = 1_717_243_200_000


def test_balance_and_market_orders(emulator_factory) -> None:
    exchange = emulator_factory().exchange(signed=True)
    assert exchange.fetch_balance()["total"] | {} == {
        "ADA": 0.0, "BNB": 0.0, "BTC": 1.0, "DOGE": 0.0, "ETH": 10.0, "LTC": 0.0, "SOL": 0.0,
        "USDT": 100_000.0, "XRP": 0.0}
    buy = exchange.create_order("BTC/USDT", "market", "buy", 0.1)
    assert buy["status"] == "closed" and buy["filled"] == 0.1
    assert buy["fee"] == {"currency": "BTC", "cost": 0.0001}
    cost = Decimal(buy["info"]["cummulativeQuoteQty"])
    balance = exchange.fetch_balance()
    assert Decimal(str(balance["BTC"]["free"])) == Decimal("1.0999")
    assert Decimal(str(balance["USDT"]["free"])) == Decimal(100_000) - cost
    sell = exchange.create_order("ETH/USDT", "market", "sell", 2)
    assert sell["status"] == "closed" and sell["fee"]["currency"] == "USDT"
    assert exchange.fetch_balance()["ETH"]["free"] == 8.0
    trades = exchange.fetch_my_trades("BTC/USDT")
    assert [(t["side"], t["amount"], t["takerOrMaker"]) for t in trades] == [("buy", 0.1, "taker")]
    with_cost = exchange.create_order("BTC/USDT", "market", "buy", None,
                                      params={"quoteOrderQty": 500})
    assert with_cost["status"] == "closed" and with_cost["cost"] <= 500


def test_limit_orders_rest_lock_funds_and_cancel(emulator_factory) -> None:
    exchange = emulator_factory().exchange(signed=True)
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.5, 10_000,
                                  params={"clientOrderId": "rsi-paper-1"})
    assert order["status"] == "open" and order["clientOrderId"] == "rsi-paper-1"
    assert exchange.fetch_balance()["USDT"] == {"free": 95_000.0, "used": 5_000.0,
                                                "total": 100_000.0}
    assert [o["id"] for o in exchange.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert exchange.fetch_order(order["id"], "BTC/USDT")["status"] == "open"
    by_client_id = exchange.fetch_order(None, "BTC/USDT", params={"clientOrderId": "rsi-paper-1"})
    assert by_client_id["id"] == order["id"]
    canceled = exchange.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert exchange.fetch_balance()["USDT"]["free"] == 100_000.0
    assert exchange.fetch_open_orders("BTC/USDT") == []
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order(order["id"], "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("999999", "BTC/USDT")
    assert [o["status"] for o in exchange.fetch_orders("BTC/USDT")] == ["canceled"]


def test_a_marketable_limit_order_fills_at_once_and_post_only_refuses(emulator_factory) -> None:
    exchange = emulator_factory().exchange(signed=True)
    last = exchange.fetch_ticker("BTC/USDT")["last"]
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.01, round(last * 1.05, 2))
    assert order["status"] == "closed" and order["average"] <= last * 1.05
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        exchange.create_order("BTC/USDT", "limit", "sell", 0.01, round(last * 0.95, 2),
                              params={"postOnly": True})
    ioc = exchange.create_order("BTC/USDT", "limit", "buy", 0.01, round(last * 0.5, 2),
                                params={"timeInForce": "IOC"})
    assert ioc["status"] == "expired"


def test_duplicate_client_order_id_is_rejected_like_binance(emulator_factory) -> None:
    exchange = emulator_factory().exchange(signed=True)
    exchange.create_order("ETH/USDT", "limit", "buy", 1, 1_000, params={"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        exchange.create_order("ETH/USDT", "limit", "buy", 1, 1_001,
                              params={"clientOrderId": "dup-1"})
    assert len(exchange.fetch_open_orders("ETH/USDT")) == 1


def test_bad_orders_map_to_ccxt_errors(emulator_factory) -> None:
    exchange = emulator_factory().exchange(signed=True)
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "market", "buy", 50)
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # -1013, as ccxt maps it for Binance
        exchange.create_order("XRP/USDT", "limit", "buy", 1, 0.01)
    with pytest.raises(ccxt.InvalidOrder):  # ccxt refuses types the market does not list
        exchange.create_order("BTC/USDT", "stop_loss", "sell", 0.01, params={"stopPrice": 1})


def test_resting_limit_order_fills_when_the_walk_crosses_it(emulator_factory) -> None:
    clock = Clock(JUNE_2024_NOON + 30_000)
    exchange = emulator_factory(clock=clock).exchange(signed=True)
    exchange.load_time_difference()
    source = CandleSource(seed=0)
    now = clock.ms
    placed = source.minutes(BTC, candle_open(now, "1m"), now + 1, now)
    limit_ticks = max(int(placed.close[-1]), int(placed.high[-1])) + 200  # 2 USDT above
    order = exchange.create_order("BTC/USDT", "limit", "sell", 0.2, float(BTC.price(limit_ticks)))
    assert order["status"] == "open"
    assert exchange.fetch_balance()["BTC"]["used"] == 0.2

    later = now + 6 * 3_600_000
    minutes = source.minutes(BTC, candle_open(now, "1m"), later, later)
    crossing = next(int(ts) for ts, high in zip(minutes.ts, minutes.high, strict=True)
                    if high >= limit_ticks)  # the seed-0 walk does cross within six hours
    clock.ms = later
    exchange.load_time_difference()
    filled = exchange.fetch_order(order["id"], "BTC/USDT")
    assert filled["status"] == "closed" and filled["average"] == float(BTC.price(limit_ticks))
    assert filled["lastTradeTimestamp"] == max(crossing, now)
    trade = exchange.fetch_my_trades("BTC/USDT")[-1]
    assert trade["takerOrMaker"] == "maker" and trade["fee"]["currency"] == "USDT"
    balance = exchange.fetch_balance()
    assert balance["BTC"] == {"free": 0.8, "used": 0.0, "total": 0.8}
    expected = Decimal(100_000) + BTC.price(limit_ticks) * Decimal("0.2") * Decimal("0.999")
    assert Decimal(str(balance["USDT"]["free"])) == expected.quantize(Decimal("0.00000001"))


def test_wrong_secret_or_key_is_an_authentication_error(emulator_factory) -> None:
    running = emulator_factory()
    wrong_secret = running.exchange(credentials=Credentials(running.api_key, "not-the-secret"))
    with pytest.raises(ccxt.AuthenticationError):
        wrong_secret.privateGetAccount()
    wrong_key = running.exchange(credentials=Credentials("someone-else", running.secret))
    with pytest.raises(ccxt.AuthenticationError):
        wrong_key.privateGetAccount()


def test_signature_rules_and_http_statuses(emulator_factory) -> None:
    running = emulator_factory()
    key = {"X-MBX-APIKEY": running.api_key}

    def account(query: str, secret: str, headers: dict[str, str]) -> urllib.request.Request:
        signed = f"{query}&signature={sign(query, secret)}"
        return urllib.request.Request(f"{running.url}/api/v3/account?{signed}", headers=headers)

    now = running.exchange().fetch_time()
    query = f"timestamp={now}&recvWindow=5000"
    assert http_json(account(query, running.secret, key))[0] == 200
    assert http_json(account(query, "guess", key)) == (
        400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert http_json(account(query, running.secret, {})) == (
        401, {"code": -2014, "msg": "API-key format invalid."})
    assert http_json(account(query, running.secret, {"X-MBX-APIKEY": "nobody"}))[0] == 401
    stale = http_json(account(f"timestamp={now - 10_000}", running.secret, key))
    assert stale[0] == 400 and stale[1]["code"] == -1021  # type: ignore[index]
    body = f"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&timestamp={now}"
    posted = urllib.request.Request(f"{running.url}/api/v3/order",
                                    data=f"{body}&signature={sign(body, running.secret)}".encode(),
                                    headers=key, method="POST")
    status, reply = http_json(posted)
    assert status == 200 and reply["status"] == "FILLED"  # type: ignore[index]


def test_credentials_never_reach_the_logs(emulator_factory, caplog) -> None:
    credentials = Credentials("log-test-api-key-123456", "log-test-secret-abcdef")
    running = emulator_factory(api_key=credentials.api_key, secret=credentials.secret)
    exchange = make_exchange("binance", url=running.url, credentials=credentials)
    with caplog.at_level(logging.DEBUG):
        exchange.privateGetAccount()
        with pytest.raises(ccxt.BadSymbol):
            exchange.privateGetOpenOrders({"symbol": "NOPEUSDT"})
    text = caplog.text + " ".join(repr(r.args) for r in caplog.records)
    assert "X-MBX-APIKEY" in text  # ccxt did log the request headers...
    assert credentials.api_key not in text and credentials.secret not in text  # ...redacted
