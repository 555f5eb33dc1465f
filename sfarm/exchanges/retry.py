"""One retry helper for every ccxt call: capped exponential backoff, jitter, temporary errors only.

Permanent errors (see `sfarm.exchanges.errors`) are raised at once, translated; temporary ones are
retried up to `policy.max_attempts` calls in all. When the call is a bound method of a ccxt
exchange and the failed reply carried a Retry-After header (ccxt keeps the last reply's headers),
the wait is at least that long: waiting less only earns another 429 and, on Binance, an IP ban.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import ccxt

from sfarm.exchanges.errors import (
    ExchangeCallError,
    ExchangeTemporaryError,
    is_temporary,
    translate,
)

T = TypeVar("T")
_FROM_A_REPLY = (ccxt.DDoSProtection, ccxt.RateLimitExceeded, ccxt.ExchangeNotAvailable)
log = logging.getLogger("sfarm.exchanges")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    The n-th retry waits min(max_delay, base_delay * 2**(n-1)), minus a random fraction of up
    to `jitter` of it (so clients that failed together do not retry together).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("delays must be >= 0 and jitter within 0..1")

    def backoff(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        capped = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return capped * (1.0 - self.jitter * (rng or random).random())


def retry_after_of(fn: Callable[..., Any], error: BaseException) -> float | None:
    """Retry-After seconds of the reply that caused `error`, when ccxt kept it.

    `fn` is a bound method of a ccxt exchange, sync or async (ccxt keeps the last reply's
    headers on the instance as `last_response_headers`).
    """
    # Only errors made from a reply: after a dropped connection or a timeout ccxt still holds
    # the headers of an older reply, whose Retry-After would be stale.
    if not isinstance(error, _FROM_A_REPLY):
        return None
    headers = getattr(getattr(fn, "__self__", None), "last_response_headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for APIs, and backoff is a fine answer


def next_retry(error: ExchangeCallError | ccxt.BaseError, attempt: int, policy: RetryPolicy,
               name: str, retry_after: float | None) -> tuple[ExchangeTemporaryError, float]:
    """After failed attempt number `attempt`: raise (a permanent error, or the last attempt), or
    return the translated temporary error and the seconds to wait. The one decision both the
    sync and the async retry loops make."""
    if isinstance(error, ExchangeCallError):
        if not isinstance(error, ExchangeTemporaryError) or attempt == policy.max_attempts:
            raise error
        failure: ExchangeCallError = error
    else:
        failure = translate(error, action=name, retry_after=retry_after)
        if not is_temporary(error) or attempt == policy.max_attempts:
            if isinstance(failure, ExchangeTemporaryError):
                failure.message = f"{failure.message} (gave up after {attempt} attempts)"
                failure.args = (failure.message,)
            raise failure from error
    assert isinstance(failure, ExchangeTemporaryError)
    delay = policy.backoff(attempt)
    if failure.retry_after is not None:
        delay = max(delay, failure.retry_after)
    log.info("%s failed (%s), retry %d/%d in %.2fs", name, failure.kind or type(error).__name__,
             attempt, policy.max_attempts - 1, delay)
    return failure, delay


def call_with_retries(
    fn: Callable[..., T],
    *args: Any,
    policy: RetryPolicy = RetryPolicy(),
    action: str = "",
    on_retry: Callable[[int, ExchangeTemporaryError, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """Call `fn(*args, **kwargs)`, retrying temporary exchange errors.

    Raises ExchangePermanentError at the first permanent error and ExchangeTemporaryError when
    the attempts run out; `on_retry(retry_number, error, delay_s)` is told before each wait.

    Example:
        >>> ohlcv = call_with_retries(exchange.fetch_ohlcv, "BTC/USDT", "1m", since,
        ...                           policy=RetryPolicy(max_attempts=8))  # doctest: +SKIP
    """
    name = action or getattr(fn, "__name__", "exchange call")
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return fn(*args, **kwargs)
        except (ExchangeCallError, ccxt.BaseError) as error:
            failure, delay = next_retry(error, attempt, policy, name, retry_after_of(fn, error))
        if on_retry is not None:
            on_retry(attempt, failure, delay)
        sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
