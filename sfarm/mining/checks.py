"""Checks a mining request must pass before the first candle is fetched, against what the
exchange declares once its markets are loaded: known markets, supported timeframes, OHLCV at all.
Pure functions over ccxt's `markets`, `timeframes` and `has`; they raise `UsageError`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from sfarm.errors import UsageError


def suggest_markets(market: str, symbols: Iterable[str], limit: int = 3) -> list[str]:
    """Close symbols for a "did you mean" hint; a `BTC-USDT`/`btcusdt` spelling is matched too."""
    symbols = list(symbols)
    wanted = market.upper().replace("-", "/").replace("_", "/")
    exact = [s for s in symbols if s.upper() == wanted]
    if exact:
        return exact[:limit]
    flat = {s.replace("/", "").upper(): s for s in symbols}
    if wanted.replace("/", "") in flat:
        return [flat[wanted.replace("/", "")]]
    return difflib.get_close_matches(wanted, symbols, n=limit, cutoff=0.6)


def check_markets(exchange_id: str, markets: Iterable[str], known: Mapping[str, Any]) -> None:
    """UsageError naming every market the exchange does not list, with close symbols."""
    unknown = [m for m in markets if m not in known]
    if not unknown:
        return
    lines, hints = [], []
    for market in unknown:
        close = suggest_markets(market, known)
        lines.append(f"{market!r}")
        if close:
            hints.append(f"{market}: did you mean {', '.join(close)}?")
    raise UsageError(
        f"{exchange_id} has no market {', '.join(lines)} ({len(known)} markets listed)",
        hint=" ".join(hints) if hints else "markets are written BASE/QUOTE as ccxt lists them, "
                                           "e.g. BTC/USDT")


def check_timeframes(exchange_id: str, timeframes: Iterable[str],
                     supported: Mapping[str, Any] | None) -> None:
    """UsageError for timeframes the exchange's ccxt driver does not offer.

    An exchange without a `timeframes` map (a few drivers) is given the benefit of the doubt:
    its first request will say.
    """
    if not supported:
        return
    missing = [tf for tf in timeframes if tf not in supported]
    if missing:
        raise UsageError(
            f"{exchange_id} does not offer the timeframe {', '.join(missing)}",
            hint=f"{exchange_id} offers {' '.join(supported)}")


def check_ohlcv(exchange_id: str, has: Mapping[str, Any]) -> None:
    if not has.get("fetchOHLCV"):
        raise UsageError(f"{exchange_id} does not serve candles (no fetchOHLCV in ccxt)",
                         hint="pick another exchange for the mine task")


def page_limit(exchange_features: Mapping[str, Any] | None, market: Mapping[str, Any],
               default: int = 500) -> int:
    """Candles to ask for per request: the most the exchange returns at once (ccxt `features`).

    Asking more than that is harmless (a short page; the next request continues after it) but
    wastes requests, and a few exchanges reject a limit above their maximum.
    """
    features = exchange_features or {}
    kind = market.get("type") or "spot"
    section = features.get(kind) or {}
    if kind in ("swap", "future") and isinstance(section, dict):
        sub = "linear" if market.get("linear") else "inverse" if market.get("inverse") else ""
        section = section.get(sub) or section
    for candidate in (section, features.get("spot") or {}):
        fetch = candidate.get("fetchOHLCV") if isinstance(candidate, dict) else None
        limit = fetch.get("limit") if isinstance(fetch, dict) else None
        if isinstance(limit, int) and limit > 0:
            return limit
    return default
