"""Points in time as people write them in inventories and on the command line.

Absolute: `2024-01-01`, `2024-01-01T12:30`, `2024-01-01 12:30:00` (UTC unless an offset is given),
or a TOML date/datetime. Relative: `90m`, `12h`, `3d`, `2w` mean that long before now, so an
inventory can say "the last three days" and stay valid tomorrow.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}


class BadTimePoint(ValueError):
    pass


@dataclass(frozen=True)
class TimePoint:
    """Either an absolute UTC time (`at_ms`) or a duration before now (`ago_ms`)."""

    text: str
    at_ms: int | None = None
    ago_ms: int | None = None

    def resolve(self, now_ms: int | None = None) -> int:
        """Milliseconds since the epoch, UTC."""
        if self.at_ms is not None:
            return self.at_ms
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return now - (self.ago_ms or 0)

    def __str__(self) -> str:
        return self.text


def _datetime_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def parse_time_point(value: object) -> TimePoint:
    """Parse a time point (text, or a TOML date or datetime); raise BadTimePoint quoting the
    value and saying which forms are accepted."""
    if isinstance(value, datetime):
        return TimePoint(value.isoformat(), at_ms=_datetime_ms(value))
    if isinstance(value, date):
        return TimePoint(value.isoformat(), at_ms=_datetime_ms(datetime(value.year, value.month,
                                                                         value.day)))
    if not isinstance(value, str):
        raise BadTimePoint(f"expected a date such as 2024-01-01 or a duration such as 3d, "
                           f"got {value!r}")
    relative = _RELATIVE.match(value)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        return TimePoint(value.strip(), ago_ms=amount * _UNIT_MS[unit])
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadTimePoint(
            f"{value!r} is not a date: expected 2024-01-01, 2024-01-01T12:30 (UTC) "
            "or a duration before now such as 90m, 12h, 3d, 2w"
        ) from None
    return TimePoint(value.strip(), at_ms=_datetime_ms(parsed))

