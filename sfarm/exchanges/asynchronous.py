"""asyncio flavour of the exchange factory and of the retry helper, for fetching several markets
of one exchange concurrently within its rate limit.

Why asyncio and not threads over one sync exchange: ccxt's sync throttle
(`ccxt/base/exchange.py`, `Exchange.throttle`) reads and later writes
`lastRestRequestTimestamp` with no lock, so two threads sharing an instance can both decide
that no wait is needed and burst past the rate limit (and they would share one `requests`
session too). ccxt's async throttler (`ccxt/async_support/base/throttler.py`) is a token bucket
with a queue per exchange instance: every coroutine that calls the instance waits its turn, so N
markets fetched concurrently still make at most `1000 / rateLimit` requests per second.

The configuration (id check, url override, sandbox, credentials, default options) is decided
once, by `sfarm.exchanges.factory.make_exchange`; this module copies the result onto the async
class instead of deciding it again. Errors are translated by `sfarm.exchanges.errors.translate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

from sfarm.exchanges.credentials import Credentials
from sfarm.exchanges.errors import ExchangeCallError, ExchangeTemporaryError
from sfarm.exchanges.factory import CCXT_LOGGER, make_exchange
from sfarm.exchanges.retry import RetryPolicy, next_retry, retry_after_of

T = TypeVar("T")

AsyncSleep = Callable[[float], Awaitable[None]]
DEFAULT_POLICY = RetryPolicy()


def make_async_exchange(
    ccxt_id: str,
    *,
    url: str | None = None,
    sandbox: bool = False,
    credentials: Credentials | None = None,
    options: dict[str, Any] | None = None,
    timeout_ms: int | None = None,
) -> ccxt_async.Exchange:
    """The `ccxt.async_support` twin of `make_exchange(...)`: same urls, options and keys.

    Close it when done (`await exchange.close()`): it owns an aiohttp session. Create it inside
    the event loop that will use it.

    Example:
        >>> async def main():
        ...     exchange = make_async_exchange("binance", url="http://127.0.0.1:8900")
        ...     try:
        ...         return await exchange.fetch_ohlcv("BTC/USDT", "1h", limit=24)
        ...     finally:
        ...         await exchange.close()
    """
    template = make_exchange(ccxt_id, url=url, sandbox=sandbox, credentials=credentials,
                             options=options)
    config: dict[str, Any] = {"enableRateLimit": True, "options": template.options}
    for key in ("apiKey", "secret", "password"):
        if getattr(template, key, None):
            config[key] = getattr(template, key)
    if timeout_ms is not None:
        config["timeout"] = timeout_ms
    exchange: ccxt_async.Exchange = getattr(ccxt_async, ccxt_id)(config)
    exchange.logger = CCXT_LOGGER
    if sandbox:
        exchange.set_sandbox_mode(True)  # the flag some drivers read; urls come next
    exchange.urls = exchange.deep_extend({}, template.urls)
    return exchange


async def call_with_retries_async(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    policy: RetryPolicy = DEFAULT_POLICY,
    action: str = "",
    on_retry: Callable[[int, ExchangeTemporaryError, float], None] | None = None,
    sleep: AsyncSleep = asyncio.sleep,
    **kwargs: Any,
) -> T:
    """Await `fn(*args, **kwargs)`, retrying temporary exchange errors: the async twin of
    `sfarm.exchanges.call_with_retries` (same policy, same translated errors).

    `sleep` may raise to abandon the retries (a stop request, for instance).
    """
    name = action or getattr(fn, "__name__", "exchange call")
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return await fn(*args, **kwargs)
        except (ExchangeCallError, ccxt.BaseError) as error:
            # Safe on a shared instance: ccxt raises right after storing the reply's headers,
            # with no await in between, so they are this reply's.
            failure, delay = next_retry(error, attempt, policy, name, retry_after_of(fn, error))
        if on_retry is not None:
            on_retry(attempt, failure, delay)
        await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
