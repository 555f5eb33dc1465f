"""Dataset ids (SPEC section 4): how a dataset is named, built and taken apart.

`candles/<exchange>/<BASE-QUOTE>/<tf>`, `indicators/<exchange>/<BASE-QUOTE>/<tf>/<key>`,
`sessions/<task>/<part>`. Market symbols are written with `-` in place of `/`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

DatasetKind = Literal["candles", "indicators", "sessions"]
SESSION_PARTS = ("orders", "trades", "equity", "state")


def market_slug(market: str) -> str:
    """`BTC/USDT` -> `BTC-USDT` (a settle currency `BTC/USDT:USDT` -> `BTC-USDT:USDT`)."""
    return market.replace("/", "-")


def market_from_slug(slug: str) -> str:
    return slug.replace("-", "/", 1)


def candles_id(exchange: str, market: str, timeframe: str) -> str:
    return f"candles/{exchange}/{market_slug(market)}/{timeframe}"


def indicator_id(exchange: str, market: str, timeframe: str, key: str) -> str:
    return f"indicators/{exchange}/{market_slug(market)}/{timeframe}/{key}"


def session_id(task: str, part: str) -> str:
    return f"sessions/{task}/{part}"


@dataclass(frozen=True)
class DatasetRef:
    """A parsed dataset id."""

    kind: DatasetKind
    exchange: str | None = None
    market: str | None = None
    timeframe: str | None = None
    key: str | None = None
    task: str | None = None
    part: str | None = None

    @property
    def id(self) -> str:
        if self.kind == "candles":
            return candles_id(self.exchange or "", self.market or "", self.timeframe or "")
        if self.kind == "indicators":
            return indicator_id(self.exchange or "", self.market or "", self.timeframe or "",
                                self.key or "")
        return session_id(self.task or "", self.part or "")


class BadDatasetId(ValueError):
    pass


@functools.lru_cache(maxsize=1024)  # pure, and its DatasetRef frozen: parsed once an id
def parse_dataset_id(dataset_id: str) -> DatasetRef:
    """Take a dataset id apart; raise BadDatasetId with the expected shapes when it is not one."""
    parts = dataset_id.strip("/").split("/")
    if any(part in (".", "..") for part in parts):  # an id names a directory under data/
        parts = []
    kind = parts[0] if parts else ""
    if kind == "candles" and len(parts) == 4 and all(parts):
        return DatasetRef("candles", exchange=parts[1], market=market_from_slug(parts[2]),
                          timeframe=parts[3])
    if kind == "indicators" and len(parts) == 5 and all(parts):
        return DatasetRef("indicators", exchange=parts[1], market=market_from_slug(parts[2]),
                          timeframe=parts[3], key=parts[4])
    if kind == "sessions" and len(parts) == 3 and all(parts):
        return DatasetRef("sessions", task=parts[1], part=parts[2])
    raise BadDatasetId(
        f"bad dataset id {dataset_id!r}; expected candles/<exchange>/<BASE-QUOTE>/<tf>, "
        "indicators/<exchange>/<BASE-QUOTE>/<tf>/<key> or sessions/<task>/<part>"
    )
