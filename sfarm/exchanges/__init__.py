"""Exchange access: the one ccxt factory, credentials, the ccxt error boundary and retries.

May import ccxt, sfarm.errors and the standard library; nothing else in sfarm creates ccxt objects.
"""

from sfarm.exchanges.credentials import Credentials, load_credentials
from sfarm.exchanges.errors import (
    ExchangeCallError,
    ExchangePermanentError,
    ExchangeTemporaryError,
    is_temporary,
    translate,
)
from sfarm.exchanges.factory import exchange_ids, known_exchange, make_exchange, suggest_exchange
from sfarm.exchanges.retry import RetryPolicy, call_with_retries

__all__ = [
    "Credentials",
    "ExchangeCallError",
    "ExchangePermanentError",
    "ExchangeTemporaryError",
    "RetryPolicy",
    "call_with_retries",
    "exchange_ids",
    "is_temporary",
    "known_exchange",
    "load_credentials",
    "make_exchange",
    "suggest_exchange",
    "translate",
]
