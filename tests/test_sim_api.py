"""The Binance handlers without HTTP: parameters, errors and number formatting."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.sim.api import BinanceSpotApi, fixed8
from sfarm.sim.candles import CandleSource
from sfarm.sim.markets import MARKETS
from sfarm.sim.protocol import Request, fmt8

NOW = 1_767_225_600_000 + 12_345  # 2026-01-01, a little after midnight
API = BinanceSpotApi(CandleSource(seed=0))


def get(path: str, **params: object) -> tuple[int, object]:
    reply = API.handle(Request("GET", path, params={k: str(v) for k, v in params.items()}), NOW)
    return reply.status, reply.body


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**18), st.integers(0, 12))
def test_fixed8_formats_like_decimal(units: int, decimals: int) -> None:
    assert fixed8([units], decimals) == [fmt8(Decimal(units).scaleb(-decimals))]


def test_klines_parameter_errors_are_binance_codes() -> None:
    assert get("/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=0)[1]["code"] == -1130
    assert get("/api/v3/klines", symbol="BTCUSDT", interval="1m", startTime=2,
               endTime=1)[1]["code"] == -1023
    assert get("/api/v3/klines", symbol="BTCUSDT", interval="1M")[1]["code"] == -1120
    assert get("/api/v3/klines", symbol="BTCUSDT", interval="1m", limit="x")[1]["code"] == -1100
    assert get("/api/v3/klines", interval="1m") == (400, {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."})


def test_klines_default_is_the_last_500_and_limit_caps_at_1000() -> None:
    status, rows = get("/api/v3/klines", symbol="ETHBTC", interval="1m")
    assert status == 200 and len(rows) == 500 and rows[-1][0] == NOW - 12_345
    assert len(get("/api/v3/klines", symbol="ETHBTC", interval="1m", limit=5000)[1]) == 1000


def test_short_page_keeps_a_prefix() -> None:
    params = {"symbol": "BTCUSDT", "interval": "1h", "startTime": "1709251200000", "limit": "100"}
    reply = API.handle(Request("GET", "/api/v3/klines", params=params, short_page=0.3), NOW)
    full = get("/api/v3/klines", **params)[1]
    assert reply.body == full[:30]


def test_exchange_info_filters_and_tickers_cover_every_market() -> None:
    info = get("/api/v3/exchangeInfo", symbols=json.dumps(["BTCUSDT", "ETHBTC"]))[1]
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHBTC"]
    assert get("/api/v3/exchangeInfo", symbol="NOPE")[1]["code"] == -1121
    tickers = get("/api/v3/ticker/24hr")[1]
    assert [t["symbol"] for t in tickers] == [m.market_id for m in MARKETS]
    for ticker in tickers:
        assert Decimal(ticker["lowPrice"]) <= Decimal(ticker["lastPrice"]) <= \
            Decimal(ticker["highPrice"])
    prices = get("/api/v3/ticker/price")[1]
    assert {p["symbol"]: p["price"] for p in prices}["BTCUSDT"] == tickers[0]["lastPrice"]
    assert get("/api/v3/avgPrice", symbol="BTCUSDT")[1]["mins"] == 5


def test_concurrent_requests_agree_with_sequential_ones() -> None:
    fresh = BinanceSpotApi(CandleSource(seed=4))
    jobs = [(m.market_id, tf) for m in MARKETS for tf in ("1m", "5m", "1h")]

    def klines(api: BinanceSpotApi, symbol: str, tf: str) -> object:
        params = {"symbol": symbol, "interval": tf, "startTime": "1709251200000", "limit": "500"}
        return api.handle(Request("GET", "/api/v3/klines", params=params), NOW).body

    results: dict[tuple[str, str], object] = {}
    threads = [threading.Thread(target=lambda j=j: results.__setitem__(j, klines(fresh, *j)))
               for j in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sequential = BinanceSpotApi(CandleSource(seed=4))
    assert all(results[j] == klines(sequential, *j) for j in jobs)
