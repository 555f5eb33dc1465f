"""sfarm.data.import_csv: the CSV shapes exchanges and charting tools export, and bad rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.errors import UsageError
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles

BTC_1M = "candles/binance/BTC-USDT/1m"
M = 60_000
HEADER = "ts,open,high,low,close,volume\n"


def write(tmp_path: Path, text: str, name: str = "candles.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows_text(frame: pl.DataFrame, ts: list[str] | None = None) -> str:
    lines = []
    for i, row in enumerate(frame.iter_rows()):
        stamp = ts[i] if ts else str(row[0])
        lines.append(",".join([stamp, *(repr(v) for v in row[1:])]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("scale", [1, 1000])  # ms, seconds
def test_ts_in_ms_or_seconds(tmp_path: Path, scale: int) -> None:
    candles = make_candles(T0, 5)
    path = write(tmp_path, HEADER + rows_text(candles.with_columns(pl.col("ts") // scale)))
    result = data.import_csv(path, tmp_path, BTC_1M)
    assert (result.rows_read, result.rows_added, result.first_ts) == (5, 5, T0)
    assert data.read(tmp_path, BTC_1M).equals(candles)


def test_headerless_binance_dump_in_microseconds(tmp_path: Path) -> None:
    candles = make_candles(T0, 3)
    # open_time, o, h, l, c, v, close_time, quote volume, trades, taker base, taker quote, ignore
    lines = [f"{ts * 1000},{o},{h},{lo},{c},{v},{(ts + M - 1) * 1000},1.0,7,0.5,0.5,0"
             for ts, o, h, lo, c, v in candles.iter_rows()]
    path = write(tmp_path, "\n".join(lines) + "\n", "BTCUSDT-1m-2024-01-01.csv")
    assert data.import_csv(path, tmp_path, BTC_1M).rows_added == 3
    assert data.read(tmp_path, BTC_1M).equals(candles)


def test_iso_dates_case_insensitive_headers_extra_columns(tmp_path: Path) -> None:
    candles = make_candles(T0, 4)
    stamps = ["2024-01-01T00:00:00Z", "2024-01-01 00:01:00", "2024-01-01T00:02:00+00:00",
              "2024-01-01T01:03:00+01:00"]
    text = "Datetime,Open,HIGH,low,Close,Volume,Symbol\n" + "".join(
        line + ",BTCUSDT\n" for line in rows_text(candles, stamps).splitlines())
    path = write(tmp_path, text)
    assert data.import_csv(path, tmp_path, BTC_1M).rows_added == 4
    assert data.read(tmp_path, BTC_1M).equals(candles)


def test_daily_candles_with_date_column_and_semicolons(tmp_path: Path) -> None:
    daily = make_candles(T0, 3, "1d")
    stamps = ["2024-01-01", "2024-01-02", "2024-01-03"]
    text = ("date;open;high;low;close;volume\n"
            + rows_text(daily, stamps).replace(",", ";"))
    dataset_id = "candles/binance/BTC-USDT/1d"
    data.import_csv(write(tmp_path, text), tmp_path, dataset_id)
    assert data.read(tmp_path, dataset_id)["ts"].to_list() == [T0, T0 + DAY_MS, T0 + 2 * DAY_MS]


def test_reimport_is_idempotent_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    candles = make_candles(T0, 6)
    path = write(tmp_path, HEADER + "\n" + rows_text(candles) + "\n")
    data.import_csv(path, tmp_path, BTC_1M)
    again = data.import_csv(path, tmp_path, BTC_1M)
    assert (again.rows_added, again.rows_skipped, again.conflicts) == (0, 6, 0)
    assert data.verify(tmp_path, BTC_1M).ok


def test_identical_duplicate_rows_are_fine(tmp_path: Path) -> None:
    candles = make_candles(T0, 3)
    path = write(tmp_path, HEADER + rows_text(candles) + rows_text(candles.head(1)))
    assert data.import_csv(path, tmp_path, BTC_1M).rows_read == 3


def test_bad_rows_name_file_line_and_problem(tmp_path: Path) -> None:
    good = rows_text(make_candles(T0, 2))
    text = (HEADER + good                                    # lines 2-3
            + f"{T0 + 2 * M},1,0.9,0.5,1,3\n"                # 4: high below open/close
            + f"{T0 + 3 * M + 5},1,2,0.5,1,3\n"              # 5: off grid
            + f"{T0 + 4 * M},1,2,0.5,1,-3\n"                 # 6: negative volume
            + f"{T0 + 5 * M},1,2,abc,1,3\n"                  # 7: not a number
            + f"{T0 + 6 * M},1,2,0.5,,3\n"                   # 8: missing close
            + f"{T0},9,9,9,9,9\n")                           # 9: repeats line 2, other values
    path = write(tmp_path, text, "dump.csv")
    with pytest.raises(UsageError) as caught:
        data.import_csv(path, tmp_path, BTC_1M)
    message = caught.value.message
    assert message.startswith(f"{path}: 7 bad rows, nothing imported")
    for expected in ["line 2: ts repeated with other values",
                     "line 4: high below open or close",
                     "line 5: not a 1m candle open",
                     "line 6: negative volume",
                     "line 7: low is not a number",
                     "line 8: close is missing",
                     "line 9: ts repeated with other values"]:
        assert expected in message, message
    assert data.load_manifest(tmp_path, BTC_1M) is None


def test_bad_date(tmp_path: Path) -> None:
    path = write(tmp_path, "date,open,high,low,close,volume\n2024-01-01,1,2,0.5,1,3\n"
                           "yesterday,1,2,0.5,1,3\n")
    with pytest.raises(UsageError, match="line 3: time not understood"):
        data.import_csv(path, tmp_path, "candles/x/BTC-USDT/1d")


def test_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "when,open,high,low,close\n1,2,3,4,5\n")
    with pytest.raises(UsageError, match=r"line 1: missing columns one of ts/.*, volume"):
        data.import_csv(path, tmp_path, BTC_1M)


def test_not_a_candles_dataset(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + rows_text(make_candles(T0, 1)))
    with pytest.raises(UsageError, match="not a candles dataset"):
        data.import_csv(path, tmp_path, "sessions/paper/trades")


@pytest.mark.parametrize(("dataset_id", "says"), [
    ("candles/binance/btc-usdt/1m", "got 'btc/usdt'; did you mean 'BTC/USDT'?"),
    ("candles/binance/-/1m", "got '/'"),
    ("candles/binance/ÄÖ-USDT/1m", "got 'ÄÖ/USDT'"),
])
def test_a_market_no_other_command_takes_is_refused(tmp_path: Path, dataset_id: str,
                                                      says: str) -> None:
    # It was stored, then `sfarm backtest --market` could not name it.
    path = write(tmp_path, HEADER + rows_text(make_candles(T0, 3)))
    with pytest.raises(UsageError, match="is not one: expected a market such as") as caught:
        data.import_csv(path, tmp_path, dataset_id)
    assert says in caught.value.message
    assert not (tmp_path / "data").exists()


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        data.import_csv(tmp_path / "nope.csv", tmp_path, BTC_1M)
    with pytest.raises(UsageError, match="empty"):
        data.import_csv(write(tmp_path, "\n\n"), tmp_path, BTC_1M)


def test_a_file_of_another_timeframe_is_refused(tmp_path: Path) -> None:
    """1h candles are on the 1m grid too: their spacing gives them away."""
    path = write(tmp_path, HEADER + rows_text(make_candles(T0, 30, "1h")))
    with pytest.raises(UsageError) as caught:
        data.import_csv(path, tmp_path, BTC_1M)
    assert "its candles are 1h apart (the median), but the dataset's timeframe is 1m" in \
        caught.value.message
    assert not data.dataset_dir(tmp_path, BTC_1M).exists()


def test_missing_candles_are_listed_and_refused_unless_allowed(tmp_path: Path) -> None:
    candles = make_candles(T0, 100)
    holed = pl.concat([candles.slice(0, 40), candles.slice(45, 30), candles.slice(76)])
    path = write(tmp_path, HEADER + rows_text(holed))
    with pytest.raises(UsageError) as caught:
        data.import_csv(path, tmp_path, BTC_1M)
    message = caught.value.message
    assert "2 gaps, 6 1m candles missing, nothing imported" in message
    assert f"after {data.format_ts(T0 + 39 * M)}: 5 candles missing, until " \
           f"{data.format_ts(T0 + 45 * M)}" in message
    assert f"after {data.format_ts(T0 + 74 * M)}: 1 candles missing" in message
    assert "--allow-gaps" in (caught.value.hint or "")
    assert not data.dataset_dir(tmp_path, BTC_1M).exists()

    result = data.import_csv(path, tmp_path, BTC_1M, allow_gaps=True)
    assert (result.rows_added, result.gaps, result.missing) == (94, 2, 6)
    assert data.read(tmp_path, BTC_1M).height == 94


def test_a_file_that_leaves_a_hole_beside_the_stored_candles_is_refused_unless_allowed(
        tmp_path: Path) -> None:
    # It was imported, and verify then found the hole ("nothing to repair").
    candles = make_candles(T0, 100)
    data.append(tmp_path, BTC_1M, candles.slice(0, 40))
    later = write(tmp_path, HEADER + rows_text(candles.slice(44)), "later.csv")
    with pytest.raises(UsageError) as caught:
        data.import_csv(later, tmp_path, BTC_1M)
    assert "1 gaps, 4 1m candles missing, nothing imported" in caught.value.message
    assert f"after {data.format_ts(T0 + 39 * M)}: 4 candles missing" in caught.value.message
    earlier = write(tmp_path, HEADER + rows_text(make_candles(T0 - 50 * M, 45)), "earlier.csv")
    with pytest.raises(UsageError, match="after .*: 5 candles missing, until "
                                         f"{data.format_ts(T0)}"):
        data.import_csv(earlier, tmp_path, BTC_1M)
    assert data.read(tmp_path, BTC_1M).height == 40

    result = data.import_csv(later, tmp_path, BTC_1M, allow_gaps=True)
    assert (result.rows_added, result.gaps, result.missing) == (56, 1, 4)
    next_ones = write(tmp_path, HEADER + rows_text(make_candles(T0 + 100 * M, 10)), "next.csv")
    assert data.import_csv(next_ones, tmp_path, BTC_1M).rows_added == 10  # no hole: accepted


OUT_OF_RANGE = "time before 1970-01-01 00:00 or from 9999-01-01 00:00 UTC on"


@pytest.mark.parametrize(("stamp", "shown"), [
    ("0999-01-01", "0999-01-01 00:00"),
    ("0001-01-01T00:00:00", "0001-01-01 00:00"),
    ("0001-01-01T00:00:00+01:00", "0000-12-31 23:00"),  # year 0 in UTC
    ("0000-01-01", "0000-01-01 00:00"),
    ("1969-12-31T23:59:00", "1969-12-31 23:59"),
    ("1000-01-01", "1000-01-01 00:00"),
    ("9999-01-01T00:00:00", "9999-01-01 00:00"),
    ("9999-12-31T23:59:00", "9999-12-31 23:59"),
])
def test_dates_the_store_cannot_keep_are_bad_rows(tmp_path: Path, stamp: str,
                                                  shown: str) -> None:
    """Named with their line and date, before anything is written (they used to reach the
    partition keys, 4-digit years, and crash there; or, before 1970, the backtest)."""
    path = write(tmp_path, f"date,open,high,low,close,volume\n{stamp},1,2,0.5,1.5,10\n")
    with pytest.raises(UsageError) as caught:
        data.import_csv(path, tmp_path, BTC_1M)
    assert f"line 2: {OUT_OF_RANGE} ({shown} open=1" in caught.value.message
    assert not data.dataset_dir(tmp_path, BTC_1M).exists()


@pytest.mark.parametrize("value", ["1e30", "inf", "-inf", "nan"])
def test_epoch_numbers_beyond_int64_are_bad_rows(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f"{HEADER}{value},1,2,0.5,1.5,10\n")
    with pytest.raises(UsageError, match="line 2: time not understood"):
        data.import_csv(path, tmp_path, BTC_1M)


def test_the_first_and_last_minutes_the_store_keeps_are_imported(tmp_path: Path) -> None:
    stamps = ["1970-01-01T00:00", "1970-01-01T00:01", "9998-12-31T23:58", "9998-12-31T23:59:00Z"]
    path = write(tmp_path, "date,open,high,low,close,volume\n"
                 + "".join(f"{stamp},1,2,0.5,1.5,10\n" for stamp in stamps))
    result = data.import_csv(path, tmp_path, BTC_1M, allow_gaps=True)
    assert (result.rows_added, result.first_ts, result.last_ts) == (4, 0, 253_370_764_740_000)
