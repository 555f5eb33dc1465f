"""Benchmark: candles per second ingested end to end from the emulator into the store.

One market, 1m candles, 30 days (43,200 candles, pages of 1000), no faults; the emulator runs in
a thread of this process on 127.0.0.1. Best and median of SFARM_BENCH_REPEATS (default 3) runs,
each into a fresh root. Rows:
  * mine, 1 market: `sfarm.mining.mine` as `sfarm mine` runs it (load markets, ccxt async with
    binance's rate limiter as ccxt ships it, closed-candle filter, an append per page);
  * mine, 4 markets: the same with four markets at once (one exchange instance, one throttler);
  * the stages of one market alone, to see where the time goes: the emulator answering plain
    HTTP (urllib, no ccxt); ccxt fetching and parsing the pages, rate limiter on and off; the
    store appending the same pages.

Run: `pytest tests/benchmarks/bench_ingest.py -s -o addopts=""`
(SFARM_BENCH_DAYS changes the 30 days, SFARM_BENCH_REPEATS the 3 runs).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import polars as pl

from sfarm import data
from sfarm.exchanges.asynchronous import make_async_exchange
from sfarm.inventory.model import Exchange
from sfarm.mining import MineRequest, mine
from sfarm.mining.fetch import CANDLE_SCHEMA
from sfarm.timeframes import DAY_MS, MINUTE_MS
from tests.fixtures.emulator import start_emulator

SINCE = 1_706_745_600_000  # 2024-02-01 00:00 UTC
DAYS = int(os.environ.get("SFARM_BENCH_DAYS", "30"))
REPEATS = int(os.environ.get("SFARM_BENCH_REPEATS", "3"))
PAGE = 1000
MARKETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT")


def timed(action: Callable[[], object]) -> tuple[list[float], object]:
    """Seconds of each of REPEATS runs, and the last run's result."""
    seconds, result = [], None
    for _ in range(REPEATS):
        began = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - began)
    return seconds, result


def mine_markets(url: str, markets: tuple[str, ...], until: int) -> int:
    with tempfile.TemporaryDirectory() as root:
        result = mine(root, MineRequest("binance", markets, ("1m",), SINCE, until),
                      Exchange(ccxt="binance", url=url))
        assert not result.failures
        for status in result.datasets:
            assert data.verify(root, status.dataset_id).ok
        return sum(d.rows_added for d in result.datasets)


def raw_http(url: str, until: int) -> int:
    """The emulator alone: klines pages over plain HTTP/1.1, JSON decoded, nothing else."""
    rows, since = 0, SINCE
    while since < until:
        query = f"symbol=BTCUSDT&interval=1m&startTime={since}&limit={PAGE}"
        with urllib.request.urlopen(f"{url}/api/v3/klines?{query}") as reply:
            page = json.loads(reply.read())
        rows += sum(1 for row in page if row[0] < until)
        since = page[-1][0] + MINUTE_MS
    return rows


def ccxt_fetch(url: str, until: int, *, rate_limit: bool) -> list[list[list[float]]]:
    """ccxt (async) fetching and parsing the pages one after the other, nothing stored."""
    async def fetch() -> list[list[list[float]]]:
        exchange = make_async_exchange("binance", url=url)
        exchange.enableRateLimit = rate_limit
        try:
            await exchange.load_markets()
            pages, since = [], SINCE
            while since < until:
                page = await exchange.fetch_ohlcv("BTC/USDT", "1m", since, PAGE)
                pages.append([row for row in page if row[0] < until])
                since = page[-1][0] + MINUTE_MS
            return pages
        finally:
            await exchange.close()
    return asyncio.run(fetch())


def append_pages(pages: list[list[list[float]]]) -> int:
    """The store alone: the same pages, one append each, into a fresh root."""
    with tempfile.TemporaryDirectory() as root:
        for page in pages:
            data.append(Path(root), "candles/binance/BTC-USDT/1m",
                        pl.DataFrame(page, schema=CANDLE_SCHEMA, orient="row"))
        return data.load_manifest(root, "candles/binance/BTC-USDT/1m").rows  # type: ignore[union-attr]


def test_ingest_throughput() -> None:
    emulator = start_emulator()
    until = SINCE + DAYS * DAY_MS
    candles = DAYS * 1440
    requests = -(-candles // PAGE)
    try:
        rows: list[tuple[str, int, int, list[float]]] = []
        seconds, added = timed(lambda: mine_markets(emulator.url, MARKETS[:1], until))
        assert added == candles
        rows.append(("mine, 1 market (end to end)", candles, requests + 1, seconds))
        seconds, added = timed(lambda: mine_markets(emulator.url, MARKETS, until))
        assert added == 4 * candles
        rows.append((f"mine, {len(MARKETS)} markets at once", 4 * candles,
                     4 * requests + 1, seconds))
        seconds, got = timed(lambda: raw_http(emulator.url, until))
        assert got == candles
        rows.append(("emulator, plain HTTP (no ccxt)", candles, requests, seconds))
        seconds, pages = timed(lambda: ccxt_fetch(emulator.url, until, rate_limit=True))
        rows.append(("ccxt fetch+parse, rate limiter on", candles, requests + 1, seconds))
        seconds, pages = timed(lambda: ccxt_fetch(emulator.url, until, rate_limit=False))
        rows.append(("ccxt fetch+parse, rate limiter off", candles, requests + 1, seconds))
        seconds, stored = timed(lambda: append_pages(pages))  # type: ignore[arg-type]
        assert stored == candles
        rows.append(("store, one append per page", candles, len(pages), seconds))  # type: ignore[arg-type]
    finally:
        emulator.close()

    print()
    print(f"ingest: 1m candles, {DAYS} days per market, pages of {PAGE}, best/median of "
          f"{REPEATS} runs, emulator on 127.0.0.1")
    print(f"{'stage':<38} {'candles':>8} {'requests':>9} {'best s':>8} {'median s':>9} "
          f"{'candles/s':>10} {'ms/page':>8}")
    for name, count, asked, seconds in rows:
        best, median = min(seconds), statistics.median(seconds)
        print(f"{name:<38} {count:>8,} {asked:>9} {best:>8.2f} {median:>9.2f} "
              f"{count / best:>10,.0f} {best / asked * 1000:>8.1f}")
