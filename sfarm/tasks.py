"""What each task and each exchange is configured with: the `[tasks.*]` and `[exchanges.*]`
tables of the inventory (SPEC section 3), validated value by value (types, names, markets,
timeframes, dates, indicator specs).

The engines read their settings from these models; `sfarm.inventory` composes them into the
whole document, checks that every indicator spec parses and checks across sections. May import
pydantic, sfarm.data.ids, sfarm.markets, sfarm.timeframes and sfarm.timepoints: not
sfarm.indicators, whose `indicators` task engine reads these models. Every value check quotes the
value it refuses (the inventory adds the key path and line).
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from sfarm import DEFAULT_CASH
from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.markets import check_market
from sfarm.timeframes import check_timeframe
from sfarm.timepoints import BadTimePoint, TimePoint, parse_time_point

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]

_ENV_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BASE_URL = re.compile(r"^https?://[^/\s]+/?$")


def _check_base_url(value: str | None) -> str | None:
    if value is not None and not _BASE_URL.match(value):
        raise ValueError("expected a base URL such as http://127.0.0.1:8900 (scheme and host), "
                         f"got {value!r}")
    if value is not None and not _valid_port(value):
        raise ValueError(f"the port of {value!r} must be from 1 to 65535")
    return value


def _valid_port(url: str) -> bool:
    try:
        port = urlsplit(url).port  # ValueError beyond 65535
    except ValueError:
        return False
    return port != 0


def _to_time_point(value: Any) -> TimePoint:
    if isinstance(value, TimePoint):
        return value
    try:
        return parse_time_point(value)  # its error quotes the value, whatever its type
    except BadTimePoint as error:
        raise ValueError(str(error)) from None


def _check_dataset_id(value: str) -> str:
    try:
        parse_dataset_id(value)
    except BadDatasetId as error:
        raise ValueError(str(error)) from None
    return value


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


# BadMarket and UnknownTimeframe are ValueErrors: pydantic reports their messages as they are.
Market = Annotated[str, AfterValidator(check_market)]
Timeframe = Annotated[str, AfterValidator(check_timeframe)]
Time = Annotated[TimePoint, BeforeValidator(_to_time_point)]
DatasetIdText = Annotated[str, AfterValidator(_check_dataset_id)]
NonEmptyUnique = AfterValidator(_unique)


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never pass silently. Types are strict too: TOML has
    integers and booleans, so `port = "22"` or `sandbox = "yes"` is a mistake, not a value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Exchange(Strict):
    ccxt: str
    sandbox: bool = False
    credentials: str | None = None
    # The address the emulator listens on, when not the loopback address `url` names: listening
    # beyond the node itself is the operator's explicit choice.
    emulate_bind: str | None = None
    # sfarm serves its offline exchange emulator at `url` on every node whose tasks use this
    # exchange, so a farm can run with no internet (the embedded local farm does).
    emulate: bool = False
    # Declared after emulate and emulate_bind: its validator checks the three together, so an
    # error about the address names url (and its line).
    url: Annotated[str | None, AfterValidator(_check_base_url)] = Field(None,
                                                                        validate_default=True)

    # Field validators rather than one model validator, so that an error names the key (and
    # its line), not the whole table.
    @field_validator("credentials")
    @classmethod
    def _env_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_PREFIX.match(value):
            raise ValueError("credentials names an environment prefix such as BINANCE "
                             "(reads BINANCE_API_KEY, BINANCE_SECRET), never the key itself")
        return value

    @field_validator("emulate_bind")
    @classmethod
    def _bind_is_an_address(cls, value: str | None) -> str | None:
        if value is not None and _ip_address(value) is None:
            raise ValueError(f"emulate_bind {value!r} is not an IP address "
                             "(e.g. \"0.0.0.0\" for every interface, or one of the node's)")
        return value

    @field_validator("emulate")
    @classmethod
    def _bind_needs_emulate(cls, value: bool, info: ValidationInfo) -> bool:
        bind = info.data.get("emulate_bind")
        if not value and bind is not None:
            raise ValueError(f"emulate_bind {bind!r} needs emulate = true")
        return value

    @field_validator("url")
    @classmethod
    def _url_fits_emulate(cls, url: str | None, info: ValidationInfo) -> str | None:
        if "emulate" not in info.data or "emulate_bind" not in info.data:
            return url  # their own errors say what is wrong
        emulate, bind = info.data["emulate"], info.data["emulate_bind"]
        address = urlsplit(url or "")
        host = address.hostname or ""
        if not emulate:
            if address.scheme == "http" and not _is_loopback(host):
                raise ValueError(f"url {url!r} is plain http: a real exchange is reached over "
                                 "https only (http is for 127.0.0.1 and emulated exchanges)")
            return url
        if url is None:
            raise ValueError("emulate = true needs url, e.g. url = \"http://127.0.0.1:8900\"")
        if bind is None and not _is_loopback(host):
            raise ValueError(f"emulate = true with url host {host!r}: the emulator listens on "
                             "the loopback unless emulate_bind says where (e.g. "
                             "emulate_bind = \"0.0.0.0\"), or use url = "
                             "\"http://127.0.0.1:PORT\"")
        return url

    def emulator_address(self) -> tuple[str, int]:
        """Where this exchange's emulator listens: `emulate_bind` if set, else the loopback
        address of `url` (`localhost` is 127.0.0.1); the port is url's (default 80)."""
        address = urlsplit(self.url or "")
        host = address.hostname or "127.0.0.1"
        if self.emulate_bind is not None:
            host = self.emulate_bind
        elif host == "localhost":
            host = "127.0.0.1"
        return host, address.port or 80


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    address = _ip_address(host)
    return host == "localhost" if address is None else address.is_loopback


class TaskBase(Strict):
    exchange: Name
    # Further datasets this task reads, beyond those its kind implies (ids of SPEC section 4).
    inputs: Annotated[list[DatasetIdText], NonEmptyUnique] = []


def _until_after_since(until: TimePoint | None, info: ValidationInfo) -> TimePoint | None:
    """`until` must come after `since` (both read against one clock: "2h" is 2 hours ago)."""
    since = info.data.get("since")
    if until is None or since is None:
        return until
    now = int(time.time() * 1000)
    if until.resolve(now) <= since.resolve(now):
        raise ValueError(f"until {until.text!r} is not after since {since.text!r}: the range "
                         "would hold no candle")
    return until


class MineTask(TaskBase):
    kind: Literal["mine"]
    markets: Annotated[list[Market], Field(min_length=1), NonEmptyUnique]
    timeframes: Annotated[list[Timeframe], Field(min_length=1), NonEmptyUnique]
    since: Time
    until: Time | None = None

    _ordered = field_validator("until")(_until_after_since)


class IndicatorsTask(TaskBase):
    kind: Literal["indicators"]
    markets: Annotated[list[Market], Field(min_length=1), NonEmptyUnique]
    timeframes: Annotated[list[Timeframe], Field(min_length=1), NonEmptyUnique]
    # Indicator specs such as "rsi(14)"; the inventory checks that each one parses.
    indicators: Annotated[list[str], Field(min_length=1), NonEmptyUnique]


class TradeTask(TaskBase):
    kind: Literal["trade"]
    # Live trading needs this in the inventory and --live on the command that starts it, and
    # a kill switch (the session halts when equity falls that far). Declared before `mode` so
    # that mode's validator sees them.
    live: bool = False
    max_drawdown: float | None = Field(None, gt=0, lt=1)
    max_daily_loss: float | None = Field(None, gt=0, lt=1)
    mode: Literal["backtest", "paper", "live"]
    market: Market
    timeframe: Timeframe
    strategy: str = Field(min_length=1)
    cash: float = Field(DEFAULT_CASH, gt=0, allow_inf_nan=False)
    since: Time | None = None
    until: Time | None = None

    _ordered = field_validator("until")(_until_after_since)

    @field_validator("mode")
    @classmethod
    def _live_needs_flag_and_kill_switch(cls, value: str, info: ValidationInfo) -> str:
        if value == "live" and not info.data.get("live", False):
            raise ValueError("mode = \"live\" also needs live = true in the task (a guard "
                             "against trading real money by accident)")
        if value == "live" and info.data.get("max_drawdown") is None \
                and info.data.get("max_daily_loss") is None:
            raise ValueError("mode = \"live\" needs a kill switch: max_drawdown or "
                             "max_daily_loss (the fraction of equity lost at which the session "
                             "halts, e.g. max_drawdown = 0.15)")
        return value

    @field_validator("strategy")
    @classmethod
    def _strategy_file(cls, value: str) -> str:
        if PurePosixPath(value).suffix not in (".toml", ""):
            raise ValueError("strategy is a .toml strategy file, relative to the inventory")
        return value


# Any task's settings; `sfarm.inventory.model` reads the `[tasks.*]` tables by their kind.
Task = MineTask | IndicatorsTask | TradeTask
TASK_KINDS = ("mine", "indicators", "trade")


