"""Benchmark: how fast the emulator makes and serves candles.

* generation in process: 1m candles/s for 30 days of one market, cold (new CandleSource) and warm;
  one 1000-row page of 1d and of 12h candles over years, cold;
* serving over HTTP to ccxt `binance` built by make_exchange: 30 days of 1m candles in pages of
  1000 (a) with ccxt's rate limiter as configured for Binance (what a miner sees: klines of 1000
  weigh 5, at 50 ms each) and (b) with the limiter's interval set to 1 ms (the server's capacity);
* 4 markets fetched at once by 4 clients (threads), limiter at 1 ms.

Run: `pytest tests/benchmarks/bench_sim.py -s -o addopts=""`.
"""

from __future__ import annotations

import threading
import time

from sfarm.exchanges import make_exchange
from sfarm.sim import Emulator, EmulatorConfig
from sfarm.sim.candles import CandleSource
from sfarm.sim.markets import MARKETS_BY_SYMBOL
from sfarm.timeframes import DAY_MS, MINUTE_MS

START = 1_709_251_200_000  # 2024-03-01
NOW = 1_767_225_600_000  # 2026-01-01: every candle asked for is closed
DAYS = 30


def _fetch_days(url: str, symbol: str, rate_limit_ms: float | None) -> tuple[int, float]:
    exchange = make_exchange("binance", url=url)
    if rate_limit_ms is not None:
        exchange.rateLimit = rate_limit_ms
    exchange.load_markets()
    since, end, rows = START, START + DAYS * DAY_MS, 0
    started = time.perf_counter()
    while since < end:
        page = exchange.fetch_ohlcv(symbol, "1m", since=since, limit=1000)
        rows += len(page)
        since = page[-1][0] + MINUTE_MS
    return rows, time.perf_counter() - started


def test_bench_sim() -> None:
    results: list[tuple[str, str]] = []
    btc = MARKETS_BY_SYMBOL["BTC/USDT"]

    source = CandleSource(seed=1)
    started = time.perf_counter()
    n = len(source.minutes(btc, START, START + DAYS * DAY_MS, NOW))
    cold = time.perf_counter() - started
    started = time.perf_counter()
    source.minutes(btc, START, START + DAYS * DAY_MS, NOW)
    warm = time.perf_counter() - started
    results.append(("generate 30 d of 1m, cold",
                    f"{n / cold:,.0f} candles/s ({cold * 1000:.0f} ms)"))
    results.append(("generate 30 d of 1m, warm",
                    f"{n / warm:,.0f} candles/s ({warm * 1000:.1f} ms)"))
    for tf in ("1d", "12h"):
        started = time.perf_counter()
        rows = len(CandleSource(seed=2).candles(btc, tf, now_ms=NOW, since_ms=1_704_067_200_000,
                                                limit=1000))
        results.append((f"1000-row page of {tf}, cold ({rows} rows)",
                        f"{(time.perf_counter() - started) * 1000:.0f} ms"))

    for label, rate_limit in (("ccxt limiter as for Binance", None), ("limiter 1 ms", 1.0)):
        with Emulator(EmulatorConfig(seed=3)) as emulator:
            emulator.start()
            rows, seconds = _fetch_days(emulator.url, "BTC/USDT", rate_limit)
            rows_warm, seconds_warm = _fetch_days(emulator.url, "BTC/USDT", rate_limit)
        results.append((f"HTTP 30 d of 1m, {label}, cold",
                        (f"{rows / seconds:,.0f} candles/s ({seconds / (rows / 1000) * 1000:.0f} "
                        "ms/page)")))
        results.append((f"HTTP 30 d of 1m, {label}, warm",
                        (f"{rows_warm / seconds_warm:,.0f} candles/s "
                        f"({seconds_warm / (rows_warm / 1000) * 1000:.0f} ms/page)")))

    with Emulator(EmulatorConfig(seed=5)) as emulator:
        emulator.start()
        counts: list[int] = []
        symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]
        threads = [threading.Thread(target=lambda s=s: counts.append(_fetch_days(emulator.url, s,
                                                                                  1.0)[0]))
                   for s in symbols]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    results.append(("HTTP 4 markets x 30 d of 1m at once, cold",
                    f"{sum(counts) / seconds:,.0f} candles/s ({seconds:.1f} s)"))

    width = max(len(name) for name, _ in results)
    print("\nemulator benchmark")
    for name, value in results:
        print(f"  {name:<{width}}  {value}")
