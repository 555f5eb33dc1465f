"""Unmodified ccxt `binance`, built by make_exchange, reads market data from the emulator."""

from __future__ import annotations

import itertools
import time

import ccxt
import pytest

from sfarm.sim.candles import CandleSource
from sfarm.sim.markets import MARKETS_BY_SYMBOL
from sfarm.timeframes import MINUTE_MS, candle_open
from tests.fixtures.http import http_json

REQUIRED = {"BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "ETH/BTC"}
MARCH_2024 = 1_709_251_200_000


def test_load_markets_lists_the_spot_markets(emulator) -> None:
    exchange = emulator.exchange()
    markets = exchange.load_markets()
    assert set(markets) >= REQUIRED
    btc = markets["BTC/USDT"]
    assert btc["spot"] and btc["id"] == "BTCUSDT" and btc["active"]
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0
    assert exchange.enableRateLimit


def test_load_markets_with_ccxt_default_market_types_too(emulator) -> None:
    # ccxt's own defaults also ask the futures catalogues; the emulator answers them (empty).
    exchange = emulator.exchange(options={"fetchMarkets": {"types": ["spot", "linear", "inverse"]},
                                          "fetchMargins": True})
    assert set(exchange.load_markets()) >= REQUIRED


def test_fetch_ohlcv_paginates_with_since_and_limit(emulator) -> None:
    exchange = emulator.exchange()
    since, rows = MARCH_2024, []
    for _ in range(4):
        page = exchange.fetch_ohlcv("ETH/USDT", "5m", since=since, limit=500)
        assert len(page) == 500
        rows += page
        since = page[-1][0] + 5 * MINUTE_MS
    assert [r[0] for r in rows] == [MARCH_2024 + i * 5 * MINUTE_MS for i in range(2000)]
    market = MARKETS_BY_SYMBOL["ETH/USDT"]
    expected = CandleSource(seed=0).candles(market, "5m", now_ms=int(time.time() * 1000),
                                            since_ms=MARCH_2024, limit=3)
    assert rows[:3] == [
        [ts, float(market.price(o)), float(market.price(h)), float(market.price(low)),
         float(market.price(c)), float(market.amount(v))]
        for ts, o, h, low, c, v in zip(*(col.tolist() for col in expected.columns()), strict=True)
    ]


def test_fetch_ohlcv_1000_rows_and_until(emulator) -> None:
    exchange = emulator.exchange()
    rows = exchange.fetch_ohlcv("BTC/USDT", "1h", since=MARCH_2024, limit=1000)
    assert len(rows) == 1000
    until = MARCH_2024 + 9 * 3_600_000
    rows = exchange.fetch_ohlcv("BTC/USDT", "1h", since=MARCH_2024, params={"until": until})
    assert len(rows) == 10 and rows[-1][0] == until


def test_live_edge_last_closed_candle_is_the_previous_minute(emulator) -> None:
    exchange = emulator.exchange()
    before = int(time.time() * 1000)
    rows = exchange.fetch_ohlcv("BTC/USDT", "1m", since=before - 5 * MINUTE_MS)
    after = int(time.time() * 1000)
    current = rows[-1][0]
    assert candle_open(before, "1m") <= current <= candle_open(after, "1m")
    assert rows[-2][0] == current - MINUTE_MS  # the previous minute: the last closed candle
    assert all(b[0] - a[0] == MINUTE_MS for a, b in itertools.pairwise(rows))


def test_fetch_ticker_and_time(emulator) -> None:
    exchange = emulator.exchange()
    ticker = exchange.fetch_ticker("BTC/USDT")
    assert ticker["symbol"] == "BTC/USDT"
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
    assert ticker["bid"] < ticker["ask"] and ticker["baseVolume"] > 0
    tickers = exchange.fetch_tickers(["BTC/USDT", "ETH/BTC"])
    assert set(tickers) == {"BTC/USDT", "ETH/BTC"}
    before = int(time.time() * 1000)
    assert before <= exchange.fetch_time() <= int(time.time() * 1000)  # the emulator's clock
    book = exchange.fetch_order_book("ETH/USDT", limit=5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]


def test_unknown_symbol_and_interval_map_to_ccxt_errors(emulator) -> None:
    exchange = emulator.exchange()
    exchange.load_markets()
    with pytest.raises(ccxt.BadSymbol):
        exchange.fetch_ohlcv("NOPE/USDT", "1m")  # ccxt knows from the markets
    with pytest.raises(ccxt.BadSymbol):  # and the server says -1121 when asked anyway
        exchange.publicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"})
    with pytest.raises(ccxt.BadRequest):
        exchange.publicGetKlines({"symbol": "BTCUSDT", "interval": "7m"})


def test_raw_klines_are_binance_arrays_and_errors_binance_json(emulator) -> None:
    status, rows = http_json(f"{emulator.url}/api/v3/klines?symbol=BTCUSDT&interval=1h"
                            f"&startTime={MARCH_2024}&limit=2")
    assert status == 200 and isinstance(rows, list) and len(rows) == 2
    row = rows[0]
    assert len(row) == 12 and row[0] == MARCH_2024 and row[6] == MARCH_2024 + 3_600_000 - 1
    assert all(isinstance(v, str) for v in row[1:6]) and isinstance(row[8], int)
    assert http_json(f"{emulator.url}/api/v3/ping") == (200, {})
    assert http_json(f"{emulator.url}/api/v3/klines?symbol=BTCUSDT") == (
        400, {"code": -1102, "msg": "Mandatory parameter 'interval' was not sent, was empty/null, "
                                    "or malformed."})
    assert http_json(f"{emulator.url}/api/v3/nothing")[0] == 404
