"""The one place sfarm creates ccxt exchanges: ids, url override, sandbox, credentials, options.

`make_exchange` always enables ccxt's rate limiter, gives the exchange a logger that redacts its
credentials (ccxt logs request headers, the API key among them, at DEBUG) and, with `url`,
points every REST endpoint ccxt knows for the exchange at another host, paths kept: that is how
an inventory sends `binance` to the emulator or to a proxy.
"""

from __future__ import annotations

import copy
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt

from sfarm.errors import UsageError
from sfarm.exchanges.credentials import Credentials
from sfarm.exchanges.ids import known_exchange, suggest_exchange
from sfarm.redact import RedactingFilter, register_secret

# sfarm mines and trades spot markets. For binance, ccxt's default load_markets also downloads
# the USD-M and COIN-M futures catalogues (two more large requests) and, with keys, margin pairs;
# keeping it to spot makes loading markets one request. Callers may override with `options`.
DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "binance": {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "defaultType": "spot"},
}


CCXT_LOGGER = logging.getLogger("sfarm.exchanges.ccxt")
CCXT_LOGGER.addFilter(RedactingFilter())


def rebase_url(original: str, base: str) -> str:
    """`original` with the scheme and host of `base`; base's path (if any) prefixes the path.

    >>> rebase_url("https://api.binance.com/api/v3", "http://127.0.0.1:8900")
    'http://127.0.0.1:8900/api/v3'
    """
    old = urlsplit(original)
    if old.scheme not in ("http", "https"):
        return original  # websocket and other non-REST endpoints stay as they are
    new = urlsplit(base)
    return urlunsplit((new.scheme, new.netloc, new.path.rstrip("/") + old.path, old.query,
                       old.fragment))


def rebase_urls(tree: Any, base: str) -> Any:
    """Apply `rebase_url` to every URL string in a nested dict/list of ccxt urls."""
    if isinstance(tree, str):
        return rebase_url(tree, base)
    if isinstance(tree, dict):
        return {key: rebase_urls(value, base) for key, value in tree.items()}
    if isinstance(tree, list):
        return [rebase_urls(value, base) for value in tree]
    return tree


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"exchange url {url!r} must be http(s)://host[:port][/path]",
                         hint="for the emulator: http://127.0.0.1:8900")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def make_exchange(
    ccxt_id: str,
    *,
    url: str | None = None,
    sandbox: bool = False,
    credentials: Credentials | None = None,
    options: dict[str, Any] | None = None,
) -> ccxt.Exchange:
    """A ready ccxt exchange (markets not loaded yet).

    Args:
        ccxt_id: any id of `ccxt.exchanges`, e.g. "binance".
        url: replaces scheme and host of every REST endpoint (paths kept; a path in `url`
            prefixes them), e.g. the emulator's "http://127.0.0.1:8900".
        sandbox: use the exchange's testnet urls (UsageError when it has none).
        credentials: API key, secret and password; they are redacted from ccxt's log records.
        options: ccxt `options`, merged over sfarm's defaults for that exchange.

    Example:
        >>> ex = make_exchange("binance", url="http://127.0.0.1:8900")
        >>> ex.urls["api"]["public"]
        'http://127.0.0.1:8900/api/v3'
    """
    if not known_exchange(ccxt_id):
        close = suggest_exchange(ccxt_id)
        raise UsageError(f"unknown ccxt exchange id {ccxt_id!r}",
                         hint=f"did you mean {', '.join(close)}?" if close else
                         "see `python -c 'import ccxt; print(ccxt.exchanges)'`")
    if url is not None:
        _check_url(url)
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "options": _deep_merge(DEFAULT_OPTIONS.get(ccxt_id, {}), options or {}),
    }
    if credentials is not None:
        config["apiKey"] = credentials.api_key
        config["secret"] = credentials.secret
        if credentials.password:
            config["password"] = credentials.password
        for secret in credentials.secrets():
            register_secret(secret)
    exchange: ccxt.Exchange = getattr(ccxt, ccxt_id)(config)
    exchange.logger = CCXT_LOGGER
    if sandbox:
        # Many exchanges declare urls['test'] = None; ccxt would then swap the api urls for None.
        if not exchange.urls.get("test"):
            raise UsageError(f"{ccxt_id} has no sandbox (testnet) in ccxt",
                             hint="drop `sandbox = true` or point `url` at a test server")
        exchange.set_sandbox_mode(True)
    if url is not None:
        exchange.urls["api"] = rebase_urls(exchange.urls["api"], url)
        if sandbox and "test" in exchange.urls:
            exchange.urls["test"] = rebase_urls(exchange.urls["test"], url)
    return exchange
