"""Fault injection for the emulator: the `--faults` grammar and deterministic per-request dice.

Grammar (comma-separated `key=value` items, every key optional, `maintenance` repeatable):

    rate_limit=P[:S]     reply HTTP 429, Retry-After S seconds (default 1), body code -1003
    server_error=P[:C]   reply HTTP C (default 503, any 500..599) with a gateway's non-JSON body
    slow=P:S             wait S seconds before answering (the answer itself is normal)
    drop=P               read the request, then close the connection without a reply
    short_page=P         klines returns fewer rows than asked although more exist
    maintenance=A/B      no candles at all with open time in [A, B): an exchange-side gap, forever;
                         A and B are ISO times (UTC unless an offset is given) or epoch ms
    bad_candles=A/B      klines with open time in [A, B) carry impossible values, one kind per
                         candle picked by its open time: a close (and low) of 0, a negative open
                         and low, a negative volume, or a high below its low; forever, as a broken
                         exchange feed would (repeatable, like maintenance)
    scope=public|all     which endpoints suffer the P faults: public market data (default) or
                         every endpoint, signed order endpoints included

P is a probability in [0, 1]. Example:
`rate_limit=0.1,server_error=0.05,slow=0.05:2.0,drop=0.02,short_page=0.2,maintenance=2024-03-01T00:00/2024-03-01T06:00`

Determinism: each decision is a hash of (seed, fault kind, request, n) where `request` is the
method, path and parameters (signature and timestamps left out) and n counts identical requests
so far. A client that repeats a request gets a fresh roll, and the same run of requests gets the
same faults in every run, whatever the thread interleaving.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sfarm.errors import UsageError

GRAMMAR_HINT = (
    "expected comma-separated items such as rate_limit=0.1:1, server_error=0.05:503, "
    "slow=0.05:2.0, drop=0.02, short_page=0.2, maintenance=2024-03-01T00:00/2024-03-01T06:00, "
    "bad_candles=2024-03-01T00:00/2024-03-01T00:10, scope=public|all"
)
_VOLATILE_PARAMS = frozenset({"signature", "timestamp", "recvWindow"})


@dataclass(frozen=True)
class FaultPlan:
    """What can go wrong, and how often."""

    rate_limit: float = 0.0
    retry_after_s: float = 1.0
    server_error: float = 0.0
    server_status: int = 503
    slow: float = 0.0
    slow_seconds: float = 0.0
    drop: float = 0.0
    short_page: float = 0.0
    maintenance: tuple[tuple[int, int], ...] = ()
    bad_candles: tuple[tuple[int, int], ...] = ()
    scope: str = "public"

    def applies_to(self, signed: bool) -> bool:
        return self.scope == "all" or not signed

    def describe(self) -> str:
        """The plan in the `--faults` grammar (empty when nothing is injected)."""
        items = []
        if self.rate_limit:
            items.append(f"rate_limit={self.rate_limit:g}:{self.retry_after_s:g}")
        if self.server_error:
            items.append(f"server_error={self.server_error:g}:{self.server_status}")
        if self.slow:
            items.append(f"slow={self.slow:g}:{self.slow_seconds:g}")
        if self.drop:
            items.append(f"drop={self.drop:g}")
        if self.short_page:
            items.append(f"short_page={self.short_page:g}")
        for first, end in self.maintenance:
            items.append(f"maintenance={_iso(first)}/{_iso(end)}")
        for first, end in self.bad_candles:
            items.append(f"bad_candles={_iso(first)}/{_iso(end)}")
        if self.scope != "public":
            items.append(f"scope={self.scope}")
        return ",".join(items)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


def _bad(item: str, why: str) -> UsageError:
    return UsageError(f"--faults: {item!r}: {why}", hint=GRAMMAR_HINT)


def _probability(item: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(item, f"{text!r} is not a probability") from None
    if not 0.0 <= value <= 1.0:
        raise _bad(item, "a probability must be between 0 and 1")
    return value


def _seconds(item: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(item, f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise _bad(item, "seconds must not be negative")
    return value


def parse_time_ms(text: str) -> int:
    """Epoch ms from epoch-ms digits or an ISO date/time (UTC unless it says otherwise)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _window(item: str, text: str) -> tuple[int, int]:
    first, sep, end = text.partition("/")
    if not sep:
        raise _bad(item, "a window is START/END")
    try:
        window = parse_time_ms(first), parse_time_ms(end)
    except ValueError:
        raise _bad(item, "START and END must be ISO times (2024-03-01T06:00) or epoch ms") from None
    if window[1] <= window[0]:
        raise _bad(item, "END must be after START")
    return window


def parse_faults(spec: str | None) -> FaultPlan:
    """Parse a `--faults` SPEC; an empty or missing SPEC means no faults.

    >>> parse_faults("rate_limit=0.1,slow=0.05:2").slow_seconds
    2.0
    """
    values: dict[str, object] = {}
    windows: dict[str, list[tuple[int, int]]] = {"maintenance": [], "bad_candles": []}
    for item in (part.strip() for part in (spec or "").split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise _bad(item, "expected key=value")
        head, _, tail = value.partition(":")
        if key == "rate_limit":
            values["rate_limit"] = _probability(item, head)
            if tail:
                values["retry_after_s"] = _seconds(item, tail)
        elif key == "server_error":
            values["server_error"] = _probability(item, head)
            if tail:
                if not (tail.isdigit() and 500 <= int(tail) <= 599):
                    raise _bad(item, "the status must be 500..599")
                values["server_status"] = int(tail)
        elif key == "slow":
            if not tail:
                raise _bad(item, "slow needs P:SECONDS")
            values["slow"] = _probability(item, head)
            values["slow_seconds"] = _seconds(item, tail)
        elif key in ("drop", "short_page"):
            values[key] = _probability(item, value)
        elif key in windows:
            windows[key].append(_window(item, value))
        elif key == "scope":
            if value not in ("public", "all"):
                raise _bad(item, "scope is public or all")
            values["scope"] = value
        else:
            raise _bad(item, f"unknown fault {key!r}")
    return FaultPlan(maintenance=tuple(sorted(windows["maintenance"])),
                     bad_candles=tuple(sorted(windows["bad_candles"])),
                     **values)  # type: ignore[arg-type]


# Binance kline columns: open time, open, high, low, close, volume, ...
_OPEN, _HIGH, _LOW, _CLOSE, _VOLUME = 1, 2, 3, 4, 5


def spoil_klines(rows: list[list[Any]], windows: tuple[tuple[int, int], ...]) -> list[list[Any]]:
    """Binance kline rows with the candles opening inside `windows` made impossible: one kind
    of damage per candle, picked by a hash of its open time, so the same candle is always
    damaged the same way (whatever the page or the timeframe)."""
    if not windows:
        return rows
    spoiled = []
    for row in rows:
        opened = int(row[0])
        if not any(first <= opened < end for first, end in windows):
            spoiled.append(row)
            continue
        row = list(row)
        kind = hashlib.blake2b(str(opened).encode(), digest_size=2).digest()[0] % 4
        if kind == 0:  # a price of zero
            row[_CLOSE] = row[_LOW] = "0.00000000"
        elif kind == 1:  # negative prices (low still the lowest)
            row[_OPEN], row[_LOW] = "-" + row[_OPEN], "-" + row[_HIGH]
        elif kind == 2:  # a negative volume
            row[_VOLUME] = "-" + row[_VOLUME]
        else:  # high below low
            row[_HIGH], row[_LOW] = row[_LOW], row[_HIGH]
        spoiled.append(row)
    return spoiled


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request."""

    drop: bool = False
    rate_limit: bool = False
    server_error: bool = False
    delay_s: float = 0.0
    short_page: float | None = None  # fraction of the rows to keep, in (0, 1)


@dataclass
class FaultDice:
    """Rolls the plan's faults for each request, reproducibly for a seed."""

    plan: FaultPlan
    seed: int = 0
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _roll(self, kind: str, request: str, n: int) -> float:
        digest = hashlib.blake2b(f"{self.seed}|{kind}|{request}|{n}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big") / 2.0**64

    def decide(self, method: str, path: str, params: dict[str, str], *,
               signed: bool) -> FaultDecision:
        plan = self.plan
        if not plan.applies_to(signed):
            return FaultDecision()
        stable = "&".join(f"{k}={v}" for k, v in sorted(params.items())
                          if k not in _VOLATILE_PARAMS)
        request = f"{method} {path}?{stable}"
        with self._lock:
            n = self._seen.get(request, 0)
            self._seen[request] = n + 1
        short = None
        if self._roll("short_page", request, n) < plan.short_page:
            short = 0.05 + 0.9 * self._roll("short_page_size", request, n)
        return FaultDecision(
            drop=self._roll("drop", request, n) < plan.drop,
            rate_limit=self._roll("rate_limit", request, n) < plan.rate_limit,
            server_error=self._roll("server_error", request, n) < plan.server_error,
            delay_s=plan.slow_seconds if self._roll("slow", request, n) < plan.slow else 0.0,
            short_page=short,
        )
