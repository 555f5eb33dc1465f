"""The emulator's request, reply and error values: what the HTTP layer and the handlers exchange."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any


@dataclass(frozen=True)
class Request:
    """One HTTP request, decoded. `params` merges the query string and a form body."""

    method: str
    path: str
    query: str = ""
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    short_page: float | None = None  # set by fault injection: keep this fraction of klines rows

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


@dataclass(frozen=True)
class Reply:
    """One HTTP reply; `body` is JSON-serialisable unless `raw` is given."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json;charset=UTF-8"


class ApiError(Exception):
    """A Binance error reply: HTTP status plus `{"code": ..., "msg": ...}`."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg

    def reply(self) -> Reply:
        return Reply(self.status, {"code": self.code, "msg": self.msg})


def mandatory(params: Mapping[str, str], name: str) -> str:
    """A required parameter, or Binance's -1102 error."""
    value = params.get(name)
    if value is None or value == "":
        raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                       "or malformed.")
    return value


def int_param(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range "
                       "is '^[0-9]{1,20}$'.") from None


def decimal_param(params: Mapping[str, str], name: str) -> Decimal | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        number = Decimal(value)
    except ArithmeticError:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range "
                       "is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.") from None
    if not number.is_finite() or number < 0:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return number


_EIGHT = Decimal("0.00000001")


def fmt8(value: Decimal | int | float) -> str:
    """Binance's number format: a decimal string with 8 places."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number.quantize(_EIGHT, rounding=ROUND_DOWN), "f")
