"""The error boundary around ccxt: its exceptions become two kinds sfarm acts on.

`ExchangeTemporaryError`: worth retrying (network, rate limits, maintenance, timeouts: ccxt's
OperationFailed family). `ExchangePermanentError`: retrying cannot help (bad symbol, bad keys,
permission, bad request, unsupported, rejected order...). Both are `RunError`s (exit status 1)
with a message a person can act on.
"""

from __future__ import annotations

import ccxt

from sfarm.errors import RunError
from sfarm.redact import redact

_MAX_DETAIL = 400

_HINTS: tuple[tuple[type[BaseException], str], ...] = (
    (ccxt.BadSymbol, "check the market symbol (BASE/QUOTE, as the exchange lists it)"),
    (ccxt.AuthenticationError, "check the API key and secret (the exchange's credentials prefix) "
                               "and the key's permissions"),
    (ccxt.InsufficientFunds, "the account's free balance is too small for this order"),
    (ccxt.NotSupported, "this exchange (or its ccxt driver) does not offer this call"),
    (ccxt.RateLimitExceeded, "the exchange is rate limiting this IP; slow down or wait"),
    (ccxt.DDoSProtection, "the exchange is rate limiting this IP; slow down or wait"),
    (ccxt.RequestTimeout, "the exchange did not answer in time; check the network"),
    (ccxt.NetworkError, "the exchange could not be reached; check the network or its url"),
)


class ExchangeCallError(RunError):
    """A ccxt call failed; `kind` is the ccxt exception class name."""

    def __init__(self, message: str, *, hint: str | None = None, kind: str = "") -> None:
        super().__init__(message, hint=hint)
        self.kind = kind


class ExchangeTemporaryError(ExchangeCallError):
    """Retrying later may succeed. `retry_after` is the server's Retry-After in seconds, if any."""

    def __init__(self, message: str, *, hint: str | None = None, kind: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint, kind=kind)
        self.retry_after = retry_after


class ExchangePermanentError(ExchangeCallError):
    """Retrying cannot help: the request, the symbol, the keys or the exchange must change."""


def is_temporary(error: BaseException) -> bool:
    """True for the ccxt errors a retry can cure (OperationFailed: NetworkError and its kin)."""
    return isinstance(error, ccxt.OperationFailed | ExchangeTemporaryError) or _cut_short(error)


def _cut_short(error: BaseException) -> bool:
    """A reply whose body was cut short (the server went away mid-answer). ccxt's async client
    raises ExchangeError for it, because aiohttp does not class ClientPayloadError as a
    connection error; it is a transport failure like any other, and a retry can cure it."""
    if not isinstance(error, ccxt.ExchangeError) or error.__cause__ is None:
        return False
    import aiohttp  # ccxt's own dependency; only needed once such an error exists

    return isinstance(error.__cause__, aiohttp.ClientPayloadError)


def translate(error: ccxt.BaseError, *, action: str = "",
              retry_after: float | None = None) -> ExchangeCallError:
    """The sfarm error for a ccxt exception (chain it: `raise translate(e) from e`)."""
    kind = type(error).__name__
    detail = redact(str(error))  # ccxt quotes whole request URLs: signatures, sometimes keys
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "…"
    message = f"{action + ': ' if action else ''}{kind}: {detail}"
    hint = next((h for cls, h in _HINTS if isinstance(error, cls)), None)
    if is_temporary(error):
        return ExchangeTemporaryError(message, hint=hint, kind=kind, retry_after=retry_after)
    return ExchangePermanentError(message, hint=hint, kind=kind)
