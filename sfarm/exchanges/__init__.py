"""Exchange access: the one ccxt factory, credentials, the ccxt error boundary and retries.

May import ccxt (aiohttp for its async half), sfarm.errors, sfarm.lazy and the standard library.
Nothing else in sfarm creates ccxt objects; only the live broker (sfarm.trading.broker) also
imports ccxt, for its exception types.
"""

from typing import TYPE_CHECKING

from sfarm.lazy import lazy_exports

_EXPORTS = {
    "Credentials": "sfarm.exchanges.credentials",
    "load_credentials": "sfarm.exchanges.credentials",
    "ExchangeCallError": "sfarm.exchanges.errors",
    "ExchangePermanentError": "sfarm.exchanges.errors",
    "ExchangeTemporaryError": "sfarm.exchanges.errors",
    "is_temporary": "sfarm.exchanges.errors",
    "translate": "sfarm.exchanges.errors",
    "exchange_ids": "sfarm.exchanges.ids",
    "known_exchange": "sfarm.exchanges.ids",
    "make_exchange": "sfarm.exchanges.factory",
    "LIVE_EXCHANGES": "sfarm.exchanges.live_support",
    "supports_live": "sfarm.exchanges.live_support",
    "suggest_exchange": "sfarm.exchanges.ids",
    "RetryPolicy": "sfarm.exchanges.retry",
    "call_with_retries": "sfarm.exchanges.retry",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from sfarm.exchanges.credentials import Credentials, load_credentials  # noqa: F401
    from sfarm.exchanges.errors import (  # noqa: F401
        ExchangeCallError,
        ExchangePermanentError,
        ExchangeTemporaryError,
        is_temporary,
        translate,
    )
    from sfarm.exchanges.factory import make_exchange  # noqa: F401
    from sfarm.exchanges.ids import exchange_ids, known_exchange, suggest_exchange  # noqa: F401
    from sfarm.exchanges.retry import RetryPolicy, call_with_retries  # noqa: F401
