"""sfarm.timepoints: the dates and durations inventories and commands accept for since/until."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

import pytest

from sfarm.timepoints import BadTimePoint, TimePoint, parse_time_point

JAN_1_2024_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000


@pytest.mark.parametrize(("text", "at_ms"), [
    ("2024-01-01", JAN_1_2024_MS),
    ("2024-01-01T12:30", JAN_1_2024_MS + 12 * HOUR_MS + 30 * 60_000),
    ("2024-01-01 12:30:00", JAN_1_2024_MS + 12 * HOUR_MS + 30 * 60_000),
    ("2024-01-01T00:00:00Z", JAN_1_2024_MS),
    ("2024-01-01T02:00:00+02:00", JAN_1_2024_MS),
    ("2023-12-31T19:00:00-05:00", JAN_1_2024_MS),
    ("  2024-01-01  ", JAN_1_2024_MS),
    ("2024-02-29", JAN_1_2024_MS + 59 * 24 * HOUR_MS),  # a leap day
])
def test_absolute_text_is_utc_unless_an_offset_is_given(text: str, at_ms: int) -> None:
    point = parse_time_point(text)
    assert point.at_ms == at_ms
    assert point.ago_ms is None
    assert point.resolve() == at_ms
    assert point.resolve(now_ms=0) == at_ms  # an absolute point ignores now
    assert str(point) == text.strip()


@pytest.mark.parametrize(("value", "at_ms"), [
    (date(2024, 1, 1), JAN_1_2024_MS),
    (datetime(2024, 1, 1, 1, 0), JAN_1_2024_MS + HOUR_MS),  # TOML local datetime: UTC
    (datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))), JAN_1_2024_MS),
    (datetime(2024, 1, 1, tzinfo=UTC), JAN_1_2024_MS),
])
def test_toml_dates_and_datetimes(value: date, at_ms: int) -> None:
    point = parse_time_point(value)
    assert point.at_ms == at_ms
    assert str(point) == value.isoformat()


@pytest.mark.parametrize(("text", "ago_ms"), [
    ("90m", 90 * 60_000),
    ("12h", 12 * HOUR_MS),
    ("3d", 3 * 24 * HOUR_MS),
    ("2w", 14 * 24 * HOUR_MS),
    (" 3 d ", 3 * 24 * HOUR_MS),
    ("0d", 0),
])
def test_relative_durations_count_back_from_now(text: str, ago_ms: int) -> None:
    point = parse_time_point(text)
    assert point.at_ms is None
    assert point.ago_ms == ago_ms
    now = JAN_1_2024_MS
    assert point.resolve(now_ms=now) == now - ago_ms
    assert str(point) == text.strip()


def test_relative_resolves_against_the_clock_by_default() -> None:
    before = int(datetime.now(tz=UTC).timestamp() * 1000)
    resolved = parse_time_point("1h").resolve()
    after = int(datetime.now(tz=UTC).timestamp() * 1000)
    assert before - HOUR_MS <= resolved <= after - HOUR_MS


@pytest.mark.parametrize("text", [
    "2024-13-01", "2024-02-30", "2023-02-29", "yesterday", "", "3y", "3D", "-3d", "1.5h",
    "2024/01/01", "01-01-2024",
])
def test_bad_text_names_the_accepted_forms(text: str) -> None:
    with pytest.raises(BadTimePoint) as raised:
        parse_time_point(text)
    message = str(raised.value)
    assert repr(text) in message
    assert "2024-01-01" in message and "3d" in message


@pytest.mark.parametrize("value", [5, 1.5, None, ["2024-01-01"], time(12, 30)])
def test_values_of_other_types_are_refused(value: object) -> None:
    with pytest.raises(BadTimePoint, match="expected a date such as 2024-01-01"):
        parse_time_point(value)  # type: ignore[arg-type]


def test_bad_time_point_is_a_value_error() -> None:
    """pydantic turns ValueErrors into validation errors with the message kept."""
    assert issubclass(BadTimePoint, ValueError)


def test_time_point_is_a_frozen_value() -> None:
    assert parse_time_point("3d") == TimePoint("3d", ago_ms=3 * 24 * HOUR_MS)
    assert hash(parse_time_point("2024-01-01")) == hash(parse_time_point("2024-01-01"))

