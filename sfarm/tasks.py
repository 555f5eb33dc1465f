"""What each task and each exchange is configured with: the `[tasks.*]` and `[exchanges.*]`
tables of the inventory (SPEC section 3), validated value by value (types, names, markets,
timeframes, dates, indicator specs).

The engines read their settings from these models; `sfarm.inventory` composes them into the
whole document, checks that every indicator spec parses and checks across sections. May import
pydantic, sfarm.data.ids, sfarm.timeframes and sfarm.timepoints: not sfarm.indicators, whose
`indicators` task engine reads these models.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.timeframes import TIMEFRAMES
from sfarm.timepoints import BadTimePoint, TimePoint, parse_time_point

# Starting equity when none is given: the `cash` default of trade tasks and of `sfarm backtest`.
DEFAULT_CASH = 10_000.0

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=64)]

# BASE/QUOTE, optionally :SETTLE for derivatives; ccxt's unified symbol shape.
_MARKET = re.compile(r"^[A-Z0-9][A-Z0-9._]*/[A-Z0-9][A-Z0-9._]*(:[A-Z0-9][A-Z0-9._]*)?$")
_ENV_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _check_market(value: str) -> str:
    if not _MARKET.match(value):
        hint = value.upper().replace("-", "/") if "/" not in value else value.upper()
        raise ValueError(f"expected a market such as BTC/USDT (BASE/QUOTE, upper case); "
                         f"did you mean {hint!r}?" if _MARKET.match(hint) else
                         "expected a market such as BTC/USDT (BASE/QUOTE, upper case)")
    return value


def _check_timeframe(value: str) -> str:
    if value not in TIMEFRAMES:
        expected = f"expected a timeframe, one of {' '.join(TIMEFRAMES)}"
        # `1H` is a near miss of `1h`; `1M` is not (ccxt writes a month as 1M).
        if value.lower() in TIMEFRAMES and not value.endswith("M"):
            expected += f"; did you mean {value.lower()!r}?"
        raise ValueError(expected)
    return value


def _to_time_point(value: Any) -> TimePoint:
    if isinstance(value, TimePoint):
        return value
    if isinstance(value, (str, date, datetime)):
        try:
            return parse_time_point(value)
        except BadTimePoint as error:
            raise ValueError(str(error)) from None
    raise ValueError("expected a date such as 2024-01-01 or a duration such as 3d")


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


Market = Annotated[str, AfterValidator(_check_market)]
Timeframe = Annotated[str, AfterValidator(_check_timeframe)]
Time = Annotated[TimePoint, BeforeValidator(_to_time_point)]
DatasetIdText = Annotated[str, AfterValidator(_check_dataset_id)]
NonEmptyUnique = AfterValidator(_unique)


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never pass silently. Types are strict too: TOML has
    integers and booleans, so `port = "22"` or `sandbox = "yes"` is a mistake, not a value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Exchange(Strict):
    ccxt: str
    url: str | None = Field(None, pattern=r"^https?://[^/\s]+/?$")
    sandbox: bool = False
    credentials: str | None = None
    # sfarm serves its offline exchange emulator at `url` on every node whose tasks use this
    # exchange, so a farm can run with no internet (the embedded local farm does).
    emulate: bool = False

    # Field validators rather than one model validator, so that an error names the key (and
    # its line), not the whole table.
    @field_validator("credentials")
    @classmethod
    def _env_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_PREFIX.match(value):
            raise ValueError("credentials names an environment prefix such as BINANCE "
                             "(reads BINANCE_API_KEY, BINANCE_SECRET), never the key itself")
        return value

    @field_validator("emulate")
    @classmethod
    def _emulate_needs_url(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("url") is None:
            raise ValueError("emulate = true needs url, e.g. url = \"http://127.0.0.1:8900\"")
        return value


class TaskBase(Strict):
    exchange: Name
    # Further datasets this task reads, beyond those its kind implies (ids of SPEC section 4).
    inputs: Annotated[list[DatasetIdText], NonEmptyUnique] = []


class MineTask(TaskBase):
    kind: Literal["mine"]
    markets: Annotated[list[Market], Field(min_length=1), NonEmptyUnique]
    timeframes: Annotated[list[Timeframe], Field(min_length=1), NonEmptyUnique]
    since: Time
    until: Time | None = None


class IndicatorsTask(TaskBase):
    kind: Literal["indicators"]
    markets: Annotated[list[Market], Field(min_length=1), NonEmptyUnique]
    timeframes: Annotated[list[Timeframe], Field(min_length=1), NonEmptyUnique]
    # Indicator specs such as "rsi(14)"; the inventory checks that each one parses.
    indicators: Annotated[list[str], Field(min_length=1), NonEmptyUnique]


class TradeTask(TaskBase):
    kind: Literal["trade"]
    # Live trading needs this in the inventory and --live on the command that starts it.
    # Declared before `mode` so that mode's validator sees it.
    live: bool = False
    mode: Literal["backtest", "paper", "live"]
    market: Market
    timeframe: Timeframe
    strategy: str = Field(min_length=1)
    cash: float = Field(DEFAULT_CASH, gt=0, allow_inf_nan=False)
    since: Time | None = None
    until: Time | None = None
    max_drawdown: float | None = Field(None, gt=0, lt=1)
    max_daily_loss: float | None = Field(None, gt=0, lt=1)

    @field_validator("mode")
    @classmethod
    def _live_needs_flag(cls, value: str, info: ValidationInfo) -> str:
        if value == "live" and not info.data.get("live", False):
            raise ValueError("mode = \"live\" also needs live = true in the task (a guard "
                             "against trading real money by accident)")
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


