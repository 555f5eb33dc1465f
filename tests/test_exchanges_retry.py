"""The error boundary and call_with_retries, against a faulty emulator through real ccxt."""

from __future__ import annotations

import asyncio
import random

import ccxt
import pytest

from sfarm.errors import RunError
from sfarm.exchanges import (
    ExchangePermanentError,
    ExchangeTemporaryError,
    RetryPolicy,
    call_with_retries,
    is_temporary,
    translate,
)
from sfarm.exchanges.asynchronous import call_with_retries_async, make_async_exchange
from sfarm.timeframes import MINUTE_MS

MARCH_2024 = 1_709_251_200_000
FAST = RetryPolicy(max_attempts=12, base_delay=0.01, max_delay=0.05, jitter=0.5)


@pytest.mark.parametrize("error_class", [
    ccxt.NetworkError, ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.ExchangeNotAvailable,
    ccxt.OnMaintenance, ccxt.RequestTimeout, ccxt.InvalidNonce, ccxt.OperationFailed,
])
def test_temporary_ccxt_errors(error_class: type[ccxt.BaseError]) -> None:
    translated = translate(error_class("binance GET /x"), action="fetch")
    assert is_temporary(error_class("x")) and isinstance(translated, ExchangeTemporaryError)
    assert isinstance(translated, RunError) and translated.kind == error_class.__name__
    assert translated.message.startswith(f"fetch: {error_class.__name__}: ")


def test_a_reply_cut_short_is_temporary() -> None:
    # What ccxt's async client raises when the server goes away in the middle of a body.
    import aiohttp

    try:
        try:
            raise aiohttp.ClientPayloadError("Response payload is not completed")
        except aiohttp.ClientError as cause:
            raise ccxt.ExchangeError("binance GET http://127.0.0.1/api/v3/klines") from cause
    except ccxt.ExchangeError as error:
        assert is_temporary(error)
        assert isinstance(translate(error), ExchangeTemporaryError)
    assert not is_temporary(ccxt.ExchangeError("binance said no"))


@pytest.mark.parametrize("error_class", [
    ccxt.BadSymbol, ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.BadRequest,
    ccxt.NotSupported, ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.OrderNotFound,
    ccxt.ExchangeError,
])
def test_permanent_ccxt_errors(error_class: type[ccxt.BaseError]) -> None:
    assert not is_temporary(error_class("x"))
    assert isinstance(translate(error_class("x")), ExchangePermanentError)


def test_backoff_is_exponential_capped_and_jittered_down() -> None:
    exact = RetryPolicy(base_delay=0.5, max_delay=3.0, jitter=0.0)
    assert [exact.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5)
    rng = random.Random(4)
    delays = [jittered.backoff(3, rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_retries_recover_every_candle_through_all_temporary_faults(emulator_factory) -> None:
    faulty = emulator_factory("rate_limit=0.3:0,server_error=0.2,drop=0.2,short_page=0.3", seed=11)
    exchange = faulty.exchange()
    call_with_retries(exchange.load_markets, policy=FAST)
    retries: list[str] = []
    since, rows = MARCH_2024, []
    while len(rows) < 3000:
        page = call_with_retries(exchange.fetch_ohlcv, "BTC/USDT", "1m", since, 1000, policy=FAST,
                                 on_retry=lambda n, error, delay: retries.append(error.kind))
        rows += page
        since = page[-1][0] + MINUTE_MS
    assert [r[0] for r in rows] == [MARCH_2024 + i * MINUTE_MS for i in range(len(rows))]
    clean = emulator_factory(seed=11).exchange().fetch_ohlcv("BTC/USDT", "1m", since=MARCH_2024,
                                                              limit=1000)
    assert rows[:1000] == clean
    assert {"DDoSProtection", "ExchangeNotAvailable", "NetworkError"} <= set(retries)


def test_retry_after_is_honoured(emulator_factory) -> None:
    exchange = emulator_factory("rate_limit=0.6:0.25", seed=2).exchange()
    waits: list[float] = []
    call_with_retries(exchange.fetch_time, policy=FAST, sleep=waits.append)
    for _ in range(5):
        call_with_retries(exchange.fetch_time, policy=FAST, sleep=waits.append)
    assert waits and all(w >= 0.25 for w in waits)


def test_retry_after_is_honoured_by_the_async_client(emulator_factory) -> None:
    server = emulator_factory("rate_limit=0.6:0.25", seed=2)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        exchange = make_async_exchange("binance", url=server.url)
        try:
            for _ in range(6):
                await call_with_retries_async(exchange.fetch_time, policy=FAST, sleep=record)
        finally:
            await exchange.close()

    asyncio.run(main())
    assert waits and all(w >= 0.25 for w in waits)


def test_gives_up_after_max_attempts_with_a_temporary_error(emulator_factory) -> None:
    exchange = emulator_factory("rate_limit=1:0").exchange()
    calls: list[int] = []

    def fetch_time() -> int:
        calls.append(1)
        return exchange.fetch_time()

    with pytest.raises(ExchangeTemporaryError, match="gave up after 3 attempts") as caught:
        call_with_retries(fetch_time, policy=RetryPolicy(max_attempts=3, base_delay=0.0))
    assert len(calls) == 3 and isinstance(caught.value.__cause__, ccxt.DDoSProtection)
    assert caught.value.hint and "rate limiting" in caught.value.hint


def test_permanent_errors_are_raised_at_once(emulator) -> None:
    exchange = emulator.exchange()
    calls: list[int] = []

    def klines() -> object:
        calls.append(1)
        return exchange.publicGetKlines({"symbol": "NOPEUSDT", "interval": "1m"})

    with pytest.raises(ExchangePermanentError, match="BadSymbol") as caught:
        call_with_retries(klines, policy=FAST, action="fetch NOPE/USDT")
    assert len(calls) == 1 and "symbol" in (caught.value.hint or "")
    assert caught.value.message.startswith("fetch NOPE/USDT: BadSymbol")
