"""sfarm.data append/read/scan/load_manifest: layout, idempotence, conflicts, extra, pruning."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import duckdb
import pandas
import polars as pl
import pytest

from sfarm import data
from sfarm.data.frames import split_by_partition
from sfarm.data.layout import key_bounds, partition_key, partitioning_for
from sfarm.errors import UsageError
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles

BTC_1M = "candles/binance/BTC-USDT/1m"


def files_of(root: Path, dataset_id: str) -> list[str]:
    return sorted(os.listdir(data.dataset_dir(root, dataset_id)))


def test_append_then_read_round_trips(tmp_path: Path) -> None:
    candles = make_candles(T0, 3 * 1440)
    result = data.append(tmp_path, BTC_1M, candles)
    assert result == data.AppendResult(rows_added=4320, rows_skipped=0, conflicts=0,
                                       last_ts=T0 + 4319 * 60_000)
    assert data.read(tmp_path, BTC_1M).equals(candles)
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    assert (manifest.rows, manifest.first_ts, manifest.last_ts) == (4320, T0, result.last_ts)
    assert (manifest.schema_version, manifest.partitioning) == (2, "month+day")
    assert [p.key for p in manifest.partitions] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert all(p.rows == 1440 and len(p.sha256) == 64 for p in manifest.partitions)
    assert manifest.columns == {"ts": "Int64", "open": "Float64", "high": "Float64",
                                "low": "Float64", "close": "Float64", "volume": "Float64"}
    names = files_of(tmp_path, BTC_1M)
    assert "_manifest.json" in names
    assert [n for n in names if n.endswith(".parquet")] == [
        "2024-01-01.g1.parquet", "2024-01-02.g1.parquet", "2024-01-03.g1.parquet"]


def test_reappend_is_idempotent_and_touches_only_new_partitions(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 2 * 1440))
    before = {n: os.stat(data.dataset_dir(tmp_path, BTC_1M) / n).st_mtime_ns
              for n in files_of(tmp_path, BTC_1M) if n.endswith(".parquet")}
    again = data.append(tmp_path, BTC_1M, make_candles(T0, 2 * 1440))
    assert (again.rows_added, again.rows_skipped, again.conflicts) == (0, 2880, 0)
    more = data.append(tmp_path, BTC_1M, make_candles(T0 + DAY_MS + 1000 * 60_000, 1000))
    assert (more.rows_added, more.rows_skipped) == (560, 440)
    names = [n for n in files_of(tmp_path, BTC_1M) if n.endswith(".parquet")]
    # day 1 and day 2 untouched, day 3 new; no superseded file left behind
    assert names == ["2024-01-01.g1.parquet", "2024-01-02.g1.parquet", "2024-01-03.g2.parquet"]
    for name, mtime in before.items():
        assert os.stat(data.dataset_dir(tmp_path, BTC_1M) / name).st_mtime_ns == mtime
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 2 * 1440 + 560))


def test_append_into_existing_partition_writes_a_new_version(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 100))
    data.append(tmp_path, BTC_1M, make_candles(T0 + 100 * 60_000, 1))
    names = files_of(tmp_path, BTC_1M)
    assert [n for n in names if n.endswith(".parquet")] == ["2024-01-01.g2.parquet"]
    assert [n for n in names if n.startswith("_index")] == ["_index.2024.g2.json"]
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 101))


def test_conflict_is_logged_counted_and_stored_value_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    original = make_candles(T0, 10)
    data.append(tmp_path, BTC_1M, original)
    changed = original.slice(3, 2).with_columns(close=pl.col("close") + 1)
    with caplog.at_level(logging.WARNING, logger="sfarm.data"):
        result = data.append(tmp_path, BTC_1M, pl.concat([changed, make_candles(T0 + 600_000, 1)]))
    assert (result.rows_added, result.rows_skipped, result.conflicts) == (1, 0, 2)
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 11))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    ts = T0 + 3 * 60_000
    assert BTC_1M in messages[0] and str(ts) in messages[0]
    assert f"'close': {original['close'][3]}" in messages[0]
    assert f"'close': {original['close'][3] + 1}" in messages[0]


def test_duplicates_inside_one_batch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    candles = make_candles(T0, 5)
    batch = pl.concat([candles, candles.slice(1, 1), candles.slice(2, 1).with_columns(open=1.0)])
    with caplog.at_level(logging.WARNING, logger="sfarm.data"):
        result = data.append(tmp_path, BTC_1M, batch.reverse())
    assert (result.rows_added, result.rows_skipped, result.conflicts) == (5, 1, 1)
    assert data.read(tmp_path, BTC_1M)["ts"].to_list() == candles["ts"].to_list()


def test_extra_is_merged_in_the_same_commit(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 5), extra={"exchange_gaps": [], "a": 1})
    data.append(tmp_path, BTC_1M, make_candles(T0, 5), extra={"a": 2})  # no new rows
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None and manifest.extra == {"exchange_gaps": [], "a": 2}
    raw = json.loads((data.dataset_dir(tmp_path, BTC_1M) / "_manifest.json").read_text())
    assert raw["extra"] == {"exchange_gaps": [], "a": 2}
    assert raw["generation"] == 2


def test_extra_alone_creates_an_empty_dataset(tmp_path: Path) -> None:
    result = data.append(tmp_path, BTC_1M, pl.DataFrame(), extra={"cursor": 7})
    assert result == data.AppendResult(0, 0, 0, None)
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None and manifest.rows == 0 and manifest.extra == {"cursor": 7}
    assert data.read(tmp_path, BTC_1M).schema == make_candles(T0, 0).schema


def test_nothing_to_store_writes_nothing(tmp_path: Path) -> None:
    assert data.append(tmp_path, BTC_1M, make_candles(T0, 0)) == data.AppendResult(0, 0, 0, None)
    assert data.load_manifest(tmp_path, BTC_1M) is None


def test_read_range_is_inclusive_start_exclusive_end(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 3 * 1440))
    got = data.read(tmp_path, BTC_1M, T0 + DAY_MS - 60_000, T0 + DAY_MS + 120_000)
    assert got["ts"].to_list() == [T0 + DAY_MS - 60_000, T0 + DAY_MS, T0 + DAY_MS + 60_000]
    assert data.read(tmp_path, BTC_1M, start=T0 + 4320 * 60_000).height == 0
    assert data.read(tmp_path, BTC_1M, end=T0).schema == make_candles(T0, 0).schema
    assert data.read(tmp_path, BTC_1M, start=T0 + 2 * DAY_MS).height == 1440


def test_read_opens_only_partitions_in_range(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 5 * 1440))
    directory = data.dataset_dir(tmp_path, BTC_1M)
    # Damage the first four partitions: a read of the last day must not touch them.
    for name in ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]:
        (directory / f"{name}.g1.parquet").write_bytes(b"not parquet")
    assert data.read(tmp_path, BTC_1M, start=T0 + 4 * DAY_MS).height == 1440


def test_scan_is_lazy_and_complete(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 2 * 1440))
    lazy = data.scan(tmp_path, BTC_1M)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.filter(pl.col("ts") >= T0 + DAY_MS).collect().height == 1440


def test_missing_dataset(tmp_path: Path) -> None:
    assert data.load_manifest(tmp_path, BTC_1M) is None
    with pytest.raises(data.DatasetNotFound):
        data.read(tmp_path, BTC_1M)
    with pytest.raises(data.DatasetNotFound):
        data.scan(tmp_path, BTC_1M)


@pytest.mark.parametrize(("dataset_id", "expected"), [
    ("candles/x/BTC-USDT/1m", "month+day"), ("candles/x/BTC-USDT/30m", "month+day"),
    ("candles/x/BTC-USDT/1h", "month"), ("indicators/x/BTC-USDT/12h/rsi_14", "month"),
    ("candles/x/BTC-USDT/1d", "year"), ("candles/x/BTC-USDT/1w", "year"),
    ("sessions/paper-btc/equity", "month"),
])
def test_partitioning_by_timeframe(dataset_id: str, expected: str) -> None:
    assert partitioning_for(dataset_id) == expected


def test_partition_keys_and_bounds() -> None:
    assert partition_key(T0 - 1, "day") == "2023-12-31"
    assert key_bounds("2023-12") == (T0 - 31 * DAY_MS, T0)
    assert key_bounds("2024") == (T0, T0 + 366 * DAY_MS)
    assert key_bounds("2024-02")[1] - key_bounds("2024-02")[0] == 29 * DAY_MS
    assert key_bounds("2024-01-05") == (T0 + 4 * DAY_MS, T0 + 5 * DAY_MS)
    with pytest.raises(ValueError, match="not a partition key"):
        key_bounds("2024-1")


def test_month_day_keys_depend_on_the_month_of_the_last_row() -> None:
    last = T0 + 40 * DAY_MS  # 2024-02-10
    assert partition_key(T0 - 1, "month+day", last) == "2023-12"
    assert partition_key(T0 + 5 * DAY_MS, "month+day", last) == "2024-01"
    assert partition_key(T0 + 31 * DAY_MS, "month+day", last) == "2024-02-01"
    assert partition_key(last, "month+day", last) == "2024-02-10"
    assert partition_key(T0 + 5 * DAY_MS, "month+day", T0 + 5 * DAY_MS) == "2024-01-06"


def month_files(root: Path, dataset_id: str) -> list[str]:
    return [n for n in files_of(root, dataset_id) if n.endswith(".parquet")]


def test_closed_months_are_one_file_and_the_live_month_is_split_by_day(tmp_path: Path) -> None:
    # 2023-11-30 to 2024-01-02: two closed months, two live days.
    candles = make_candles(T0 - 32 * DAY_MS, 34 * 1440)
    data.append(tmp_path, BTC_1M, candles)
    assert month_files(tmp_path, BTC_1M) == [
        "2023-11.g1.parquet", "2023-12.g1.parquet", "2024-01-01.g1.parquet",
        "2024-01-02.g1.parquet"]
    assert data.read(tmp_path, BTC_1M).equals(candles)
    assert data.read(tmp_path, BTC_1M, T0 - DAY_MS, T0 + 60_000).equals(
        make_candles(T0 - DAY_MS, 1441))
    assert data.verify(tmp_path, BTC_1M).ok


def test_the_append_that_enters_a_new_month_merges_the_days_of_the_last(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0 - 3 * DAY_MS, 2 * 1440))  # Dec 29 and 30
    data.append(tmp_path, BTC_1M, make_candles(T0 - DAY_MS, 1440))  # Dec 31: a live day still
    assert month_files(tmp_path, BTC_1M) == [
        "2023-12-29.g1.parquet", "2023-12-30.g1.parquet", "2023-12-31.g2.parquet"]
    result = data.append(tmp_path, BTC_1M, make_candles(T0, 1))  # one candle of January
    assert (result.rows_added, result.rows_skipped, result.conflicts) == (1, 0, 0)
    names = files_of(tmp_path, BTC_1M)
    assert [n for n in names if n.endswith(".parquet")] == [
        "2023-12.g3.parquet", "2024-01-01.g3.parquet"]
    assert [n for n in names if n.startswith("_index")] == [
        "_index.2023.g3.json", "_index.2024.g3.json"]
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0 - 3 * DAY_MS, 3 * 1440 + 1))
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None and [(p.key, p.rows) for p in manifest.partitions] == [
        ("2023-12", 3 * 1440), ("2024-01-01", 1)]
    # A late row of a closed month lands in its month file.
    data.append(tmp_path, BTC_1M, make_candles(T0 - 3 * DAY_MS - 60_000, 1))
    assert month_files(tmp_path, BTC_1M) == ["2023-12.g4.parquet", "2024-01-01.g3.parquet"]
    assert data.read(tmp_path, BTC_1M).height == 3 * 1440 + 2
    assert data.verify(tmp_path, BTC_1M).ok


def test_a_day_partitioned_dataset_of_layout_1_keeps_its_layout(tmp_path: Path) -> None:
    """Datasets written before `month+day` (every day its own zstd file, schema version 1)
    read as before and their appends keep their rule."""
    directory = data.dataset_dir(tmp_path, BTC_1M)
    write_layout_1(directory, make_candles(T0 - 2 * DAY_MS, 2 * 1440))
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0 - 2 * DAY_MS, 2 * 1440))
    assert data.verify(tmp_path, BTC_1M).ok
    data.append(tmp_path, BTC_1M, make_candles(T0 - 60_000, 2))  # crosses into January
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    assert (manifest.schema_version, manifest.partitioning) == (1, "day")
    assert [p.key for p in manifest.partitions] == ["2023-12-30", "2023-12-31", "2024-01-01"]
    assert data.read(tmp_path, BTC_1M, columns=["close"]).equals(
        make_candles(T0 - 2 * DAY_MS, 2 * 1440 + 1).select("ts", "close"))
    assert data.verify(tmp_path, BTC_1M).ok


def test_relayout_rewrites_a_layout_1_dataset_under_month_day(tmp_path: Path) -> None:
    directory = data.dataset_dir(tmp_path, BTC_1M)
    candles = make_candles(T0 - 2 * DAY_MS, 2 * 1440 + 3)
    write_layout_1(directory, candles)
    data.append(tmp_path, BTC_1M, make_candles(T0, 1), extra={"cursor": 9})
    assert data.relayout(tmp_path, BTC_1M) is True
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    assert (manifest.schema_version, manifest.partitioning, manifest.generation) == (
        2, "month+day", 3)
    assert manifest.extra == {"cursor": 9}
    assert [p.key for p in manifest.partitions] == ["2023-12", "2024-01-01"]
    assert sorted(os.listdir(directory)) == [
        ".lock", "2023-12.g3.parquet", "2024-01-01.g3.parquet", "_index.2023.g3.json",
        "_index.2024.g3.json", "_manifest.json"]
    assert data.read(tmp_path, BTC_1M).equals(candles)
    assert data.verify(tmp_path, BTC_1M).ok
    assert data.relayout(tmp_path, BTC_1M) is False  # already under the current rule
    with pytest.raises(data.DatasetNotFound):
        data.relayout(tmp_path, "candles/binance/ETH-USDT/1m")


def test_a_directory_in_a_partitions_place_stops_relayout_and_append(tmp_path: Path) -> None:
    """polars reads a directory as a dataset of the files inside (none: no rows); a relayout
    would have committed the dataset without that day, an append merged into it nothing."""
    from sfarm.data import memo

    directory = data.dataset_dir(tmp_path, BTC_1M)
    candles = make_candles(T0 - 2 * DAY_MS, 2 * 1440)
    write_layout_1(directory, candles)
    (directory / "2023-12-31.g1.parquet").unlink()
    (directory / "2023-12-31.g1.parquet").mkdir()
    with pytest.raises(data.DamagedDataset, match=r"2023-12-31\.g1\.parquet is a directory"):
        data.relayout(tmp_path, BTC_1M)
    memo.forget()
    with pytest.raises(data.DamagedDataset, match=r"2023-12-31\.g1\.parquet is a directory"):
        data.append(tmp_path, BTC_1M, make_candles(T0 - 60_000, 1))  # into 2023-12-31
    manifest = data.load_manifest(tmp_path, BTC_1M, with_partitions=False)
    assert manifest is not None and manifest.generation == 1  # nothing committed


def test_verify_reports_rows_stored_outside_the_range_before_appends_checked_it(
        tmp_path: Path) -> None:
    # 1969's candles could be imported, then crashed a backtest; verify said ok.
    write_layout_1(data.dataset_dir(tmp_path, BTC_1M), make_candles(-DAY_MS, 1440 + 1))
    report = data.verify(tmp_path, BTC_1M)
    assert report.problems == [
        "partition 1969-12-31.g1.parquet: ts 1969-12-31 00:00 to 1969-12-31 23:59, outside the "
        "range the store keeps (from 1970-01-01 00:00 up to, not including, 9999-01-01 00:00 "
        "UTC)"]


def test_verify_reports_partitions_the_rule_does_not_give(tmp_path: Path) -> None:
    directory = data.dataset_dir(tmp_path, BTC_1M)
    write_layout_1(directory, make_candles(T0 - 2 * DAY_MS, 2 * 1440 + 1), "month+day")
    report = data.verify(tmp_path, BTC_1M)
    assert report.problems == [
        f"partition {day}.g1.parquet: key '{day}', but the month+day rule puts its rows in 2023-12"
        for day in ("2023-12-30", "2023-12-31")]


def write_layout_1(directory: Path, candles: pl.DataFrame, partitioning: str = "day") -> None:
    """A dataset as sfarm wrote it with schema version 1: zstd day files, version 1 JSON."""
    from sfarm.data.manifest import sha256_hex

    directory.mkdir(parents=True)
    entries = []
    for key, rows in sorted(split_by_partition(candles, "day").items()):
        raw = io.BytesIO()
        rows.write_parquet(raw, compression="zstd", statistics=True)
        name = f"{key}.g1.parquet"
        (directory / name).write_bytes(raw.getvalue())
        entries.append({"key": key, "file": name, "rows": rows.height,
                        "first_ts": rows["ts"][0], "last_ts": rows["ts"][-1],
                        "bytes": len(raw.getvalue()), "sha256": sha256_hex(raw.getvalue())})
    segments = []
    for year in sorted({e["key"][:4] for e in entries}):
        inside = [e for e in entries if e["key"].startswith(year)]
        raw_segment = json.dumps({"schema_version": 1, "segment": year,
                                  "partitions": inside}).encode()
        (directory / f"_index.{year}.g1.json").write_bytes(raw_segment)
        segments.append({
            "name": year, "file": f"_index.{year}.g1.json", "partitions": len(inside),
            "rows": sum(e["rows"] for e in inside), "first_ts": inside[0]["first_ts"],
            "last_ts": inside[-1]["last_ts"], "bytes": sum(e["bytes"] for e in inside),
            "sha256": sha256_hex(raw_segment)})
    manifest = {
        "schema_version": 1, "dataset_id": BTC_1M, "partitioning": partitioning,
        "timeframe": "1m",
        "columns": {"ts": "Int64", **dict.fromkeys(["open", "high", "low", "close", "volume"],
                                                   "Float64")},
        "rows": candles.height, "first_ts": candles["ts"][0], "last_ts": candles["ts"][-1],
        "bytes": sum(e["bytes"] for e in entries), "generation": 1, "updated_at": None,
        "extra": {}, "segments": segments,
    }
    (directory / "_manifest.json").write_text(json.dumps(manifest))


def test_a_newer_schema_version_asks_for_an_upgrade(tmp_path: Path) -> None:
    from sfarm.errors import RunError

    data.append(tmp_path, BTC_1M, make_candles(T0, 3))
    path = data.dataset_dir(tmp_path, BTC_1M) / "_manifest.json"
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "schema_version": 3, "partitioning": "week+hour"}))
    with pytest.raises(RunError, match="schema version 3 is newer") as raised:
        data.read(tmp_path, BTC_1M)
    assert raised.value.hint == "upgrade sfarm on this node"


def test_read_only_the_columns_asked(tmp_path: Path) -> None:
    candles = make_candles(T0, 2 * 1440)
    data.append(tmp_path, BTC_1M, candles)
    got = data.read(tmp_path, BTC_1M, T0 + 60_000, T0 + 180_000, columns=["close", "open"])
    assert got.equals(candles.slice(1, 2).select("ts", "close", "open"))
    assert data.read(tmp_path, BTC_1M, columns=["ts", "low"]).columns == ["ts", "low"]
    assert data.read(tmp_path, BTC_1M, end=T0, columns=["high"]).schema == {
        "ts": pl.Int64, "high": pl.Float64}
    with pytest.raises(UsageError, match="has no column 'rsi_14'"):
        data.read(tmp_path, BTC_1M, columns=["close", "rsi_14"])


def test_weekly_candles_and_year_partitions(tmp_path: Path) -> None:
    dataset_id = "candles/binance/BTC-USDT/1w"
    weekly = make_candles(T0, 60, "1w")  # 2024-01-01 is a Monday: on the 1w grid
    data.append(tmp_path, dataset_id, weekly)
    manifest = data.load_manifest(tmp_path, dataset_id)
    assert manifest is not None and [p.key for p in manifest.partitions] == ["2024", "2025"]
    assert data.verify(tmp_path, dataset_id).ok


def test_off_grid_ts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not 1h candle opens"):
        data.append(tmp_path, "candles/x/BTC-USDT/1h", make_candles(T0 + 60_000, 3))
    with pytest.raises(UsageError, match="not 1w candle opens"):
        data.append(tmp_path, "candles/x/BTC-USDT/1w", make_candles(T0 + DAY_MS, 1, "1d"))


M = 60_000
BEFORE_1970 = -M  # 1969-12-31 23:59
YEAR_9999 = 253_370_764_800_000  # 9999-01-01 00:00, the first ts the store refuses
RANGE = "from 1970-01-01 00:00 up to, not including, 9999-01-01 00:00 UTC"


@pytest.mark.parametrize(("ts", "date"), [
    (BEFORE_1970, "1969-12-31 23:59"),
    (-30_610_224_000_000, "1000-01-01 00:00"),
    (-62_135_600_400_000, "0000-12-31 23:00"),  # 0001-01-01T00:00+01:00: year 0 in UTC
    (YEAR_9999, "9999-01-01 00:00"),
    (253_402_300_740_000, "9999-12-31 23:59"),
    (253_402_300_800_000, "10000-01-01 00:00"),
])
def test_ts_outside_the_stores_range_is_refused(tmp_path: Path, ts: int, date: str) -> None:
    """Before 1970 the trading engine would take a candle for "none yet"; from 9999 on no
    partition key holds it. Refused before anything is written, like an off-grid ts."""
    with pytest.raises(UsageError) as caught:
        data.append(tmp_path, BTC_1M, make_candles(ts, 1))
    assert caught.value.message == (
        f"append to {BTC_1M}: 1 row has a ts outside the range the store keeps, first {ts} "
        f"({date}); accepted: ts {RANGE}")
    assert "milliseconds" in (caught.value.hint or "")
    assert data.load_manifest(tmp_path, BTC_1M) is None
    directory = data.dataset_dir(tmp_path, BTC_1M)
    assert not directory.exists() or not [n for n in os.listdir(directory)
                                          if n.endswith((".parquet", ".json"))]


@pytest.mark.parametrize(("dataset_id", "frame"), [
    ("indicators/x/BTC-USDT/1m/rsi_14", pl.DataFrame({"ts": [T0, BEFORE_1970, -2 * M],
                                                      "rsi_14": [50.0, 51.0, 52.0]})),
    ("sessions/paper-btc/trades", pl.DataFrame({"ts": [T0, BEFORE_1970, YEAR_9999],
                                                "pnl": [1.0, 2.0, 3.0]})),
])
def test_every_kind_is_held_to_the_range(tmp_path: Path, dataset_id: str,
                                         frame: pl.DataFrame) -> None:
    """Indicators and sessions too (sessions have no timeframe, so no grid check); the count
    is of every row outside, the first in the batch's order."""
    with pytest.raises(UsageError, match=f"append to {dataset_id}: 2 rows have a ts outside "
                                         f"the range the store keeps, first {BEFORE_1970} "
                                         r"\(1969-12-31 23:59\)"):
        data.append(tmp_path, dataset_id, frame)
    assert data.load_manifest(tmp_path, dataset_id) is None


def test_a_refused_append_leaves_the_dataset_as_it_was(tmp_path: Path) -> None:
    """The usual batch of a stored dataset (its own columns: normalize's shortcut) and a group
    of appends alike: nothing committed."""
    data.append(tmp_path, BTC_1M, make_candles(T0, 3))
    before = data.load_manifest(tmp_path, BTC_1M)
    with pytest.raises(UsageError, match="1 row has a ts outside"):
        data.append(tmp_path, BTC_1M, make_candles(YEAR_9999, 1))
    eth = "candles/binance/ETH-USDT/1m"
    with pytest.raises(UsageError, match=f"append to {BTC_1M}: 1 row has a ts outside"):
        data.append_many(tmp_path, [data.Append(eth, make_candles(T0, 2)),
                                    data.Append(BTC_1M, make_candles(BEFORE_1970, 1))])
    assert data.load_manifest(tmp_path, BTC_1M) == before
    assert data.load_manifest(tmp_path, eth) is None
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 3))


@pytest.mark.parametrize(("dataset_id", "step"), [(BTC_1M, M),
                                                  ("candles/binance/BTC-USDT/1d", DAY_MS)])
def test_the_edges_of_the_range_are_stored(tmp_path: Path, dataset_id: str, step: int) -> None:
    """1970-01-01 00:00 and the last candle before 9999-01-01 are kept, read back and
    verified (their partitions sound: the one problem is the gap between them)."""
    timeframe = dataset_id.rsplit("/", 1)[1]
    edges = pl.concat([make_candles(0, 1, timeframe), make_candles(YEAR_9999 - step, 1,
                                                                   timeframe)])
    assert data.append(tmp_path, dataset_id, edges).rows_added == 2
    assert data.read(tmp_path, dataset_id).equals(edges)
    report = data.verify(tmp_path, dataset_id)
    assert report.gaps == [(step, YEAR_9999 - step)] and len(report.problems) == 1, report
    assert data.append(tmp_path, dataset_id, edges).rows_skipped == 2


def test_schema_is_checked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="missing \\['volume'\\]"):
        data.append(tmp_path, BTC_1M, make_candles(T0, 3).drop("volume"))
    with pytest.raises(UsageError, match="no ts column"):
        data.append(tmp_path, BTC_1M, pl.DataFrame({"open": [1.0]}))
    with pytest.raises(UsageError, match="bad dataset id"):
        data.append(tmp_path, "candles/BTC", make_candles(T0, 3))
    with pytest.raises(UsageError, match="unknown timeframe"):
        data.append(tmp_path, "candles/x/BTC-USDT/7m", make_candles(T0, 3))
    ind = "indicators/x/BTC-USDT/1m/rsi_14"
    data.append(tmp_path, ind, pl.DataFrame({"ts": [T0], "rsi_14": [50]}))
    with pytest.raises(UsageError, match="columns differ"):
        data.append(tmp_path, ind, pl.DataFrame({"ts": [T0 + 60_000], "rsi_15": [50.0]}))


def test_int_and_datetime_inputs_are_normalised(tmp_path: Path) -> None:
    candles = make_candles(T0, 3)
    as_datetime = candles.with_columns(pl.from_epoch("ts", time_unit="ms"),
                                       pl.col("volume").cast(pl.Int32))
    data.append(tmp_path, BTC_1M, as_datetime)
    assert data.read(tmp_path, BTC_1M).equals(candles)


def test_session_dataset_with_arbitrary_columns(tmp_path: Path) -> None:
    dataset_id = "sessions/rsi-paper/trades"
    trades = pl.DataFrame({"ts": [T0, T0 + 40 * DAY_MS], "side": ["buy", "sell"],
                           "price": [42000.5, 43000.0], "size": [1, 2]})
    data.append(tmp_path, dataset_id, trades)
    data.append(tmp_path, dataset_id, trades.with_columns(pl.col("ts") + 1))
    got = data.read(tmp_path, dataset_id)
    assert got.height == 4 and got.columns == ["ts", "side", "price", "size"]
    manifest = data.load_manifest(tmp_path, dataset_id)
    assert manifest is not None and [p.key for p in manifest.partitions] == ["2024-01", "2024-02"]
    assert data.verify(tmp_path, dataset_id).ok


def test_indicator_dataset_keeps_nan_warmup(tmp_path: Path) -> None:
    dataset_id = "indicators/binance/BTC-USDT/1h/sma_3"
    frame = pl.DataFrame({"ts": [T0 + i * 3_600_000 for i in range(4)],
                          "sma_3": [None, float("nan"), 1.0, 2.0]})
    data.append(tmp_path, dataset_id, frame)
    again = data.append(tmp_path, dataset_id, frame)
    assert (again.rows_skipped, again.conflicts) == (4, 0)  # NaN and null equal themselves
    assert data.verify(tmp_path, dataset_id).ok


def test_mirror_dataset_dir(tmp_path: Path) -> None:
    assert data.dataset_dir(tmp_path, BTC_1M, mirror_of="miner-1") == (
        tmp_path / "mirror" / "miner-1" / "candles" / "binance" / "BTC-USDT" / "1m")


def test_other_parquet_readers_read_a_dataset_directly(tmp_path: Path) -> None:
    candles = make_candles(T0, 3 * 1440)
    data.append(tmp_path, BTC_1M, candles)
    directory = data.dataset_dir(tmp_path, BTC_1M)
    by_polars = pl.read_parquet(directory / "*.parquet").sort("ts")
    assert by_polars.equals(candles)
    by_pandas = pandas.read_parquet(directory).sort_values("ts")
    assert by_pandas["ts"].tolist() == candles["ts"].to_list()
    [(count, first)] = duckdb.sql(
        f"select count(*), min(ts) from read_parquet('{directory}/*.parquet')").fetchall()
    assert (count, first) == (4320, T0)


def test_concurrent_writers_are_serialised(tmp_path: Path) -> None:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    starts = [T0 + i * 700 * 60_000 for i in range(4)]  # overlapping ranges of 1000 candles
    with context.Pool(4) as pool:
        pool.starmap(_append_range, [(str(tmp_path), start) for start in starts])
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 3 * 700 + 1000))
    assert data.verify(tmp_path, BTC_1M).ok


def _append_range(root: str, start: int) -> None:
    for offset in range(0, 1000, 100):
        data.append(root, BTC_1M, make_candles(start + offset * 60_000, 100))


def test_readers_see_whole_commits_while_a_writer_appends(tmp_path: Path) -> None:
    import multiprocessing

    data.append(tmp_path, BTC_1M, make_candles(T0, 10))
    writer = multiprocessing.get_context("spawn").Process(
        target=_append_one_by_one, args=(str(tmp_path), 10, 100))
    writer.start()
    try:
        heights = set()
        while writer.is_alive() or not heights:
            # Each append retires the partition file the previous manifest named.
            got = data.read(tmp_path, BTC_1M, start=T0)
            assert got.equals(make_candles(T0, got.height))
            heights.add(got.height)
    finally:
        writer.join(timeout=60)
    assert writer.exitcode == 0
    assert len(heights) > 5  # the reads really interleaved with the appends
    assert data.read(tmp_path, BTC_1M).height == 110


def _append_one_by_one(root: str, first: int, count: int) -> None:
    for i in range(first, first + count):
        data.append(root, BTC_1M, make_candles(T0 + i * 60_000, 1))


def test_missing_partition_is_a_run_error_for_append(tmp_path: Path) -> None:
    from sfarm.errors import RunError

    data.append(tmp_path, BTC_1M, make_candles(T0, 10))
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    (data.dataset_dir(tmp_path, BTC_1M) / manifest.partitions[0].file).unlink()
    with pytest.raises(RunError, match="named by the manifest is missing"):
        data.append(tmp_path, BTC_1M, make_candles(T0 + 10 * 60_000, 1))
    with pytest.raises(RunError, match="missing"):
        data.read(tmp_path, BTC_1M)


def test_manifest_head_only(tmp_path: Path) -> None:
    data.append(tmp_path, BTC_1M, make_candles(T0, 3000), extra={"k": "v"})
    head = data.load_manifest(tmp_path, BTC_1M, with_partitions=False)
    assert head is not None and head.partitions == [] and head.partition_count == 3
    assert (head.rows, head.last_ts, head.extra) == (3000, T0 + 2999 * 60_000, {"k": "v"})
