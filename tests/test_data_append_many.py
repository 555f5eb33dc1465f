"""sfarm.data.append_many (one group commit, each dataset its own commit) and the write path's
pure parts: the same datasets as appends one by one, nothing committed when one is refused,
partitions found by binary search equal to a key per row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm import data
from sfarm.data.frames import dedupe_batch, split_by_partition
from sfarm.data.layout import partition_key
from sfarm.errors import UsageError
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles

BTC = "candles/binance/BTC-USDT/1m"
ETH = "candles/binance/ETH-USDT/1m"
RSI = "indicators/binance/BTC-USDT/1m/rsi_14"


def rsi_rows(start: int, count: int) -> pl.DataFrame:
    return pl.DataFrame({"ts": start + np.arange(count, dtype=np.int64) * 60_000,
                         "rsi_14": np.linspace(10.0, 90.0, count)})


def batches() -> list[list[data.Append]]:
    """Three rounds over three datasets: first writes, an overlapping append with conflicts
    skipped, one crossing into a new month (the previous month's days merged)."""
    month_end = T0 + 30 * DAY_MS  # T0 is 2024-01-01: the last day of January
    return [
        [data.Append(BTC, make_candles(T0, 2 * 1440), {"cursor": 1}),
         data.Append(ETH, make_candles(T0, 100)),
         data.Append(RSI, rsi_rows(T0, 3000), {"indicator": {"rows": 3000}})],
        [data.Append(ETH, make_candles(T0 + 50 * 60_000, 200), {"cursor": 2}),
         data.Append(BTC, make_candles(T0 + 1440 * 60_000, 1441))],
        [data.Append(RSI, rsi_rows(month_end, 1441), {"indicator": {"rows": 4441}}),
         data.Append(BTC, make_candles(month_end, 1440 + 1))],
    ]


def contents(root: Path, dataset_id: str) -> tuple[pl.DataFrame, dict[str, object], list[str]]:
    manifest = data.load_manifest(root, dataset_id)
    assert manifest is not None
    return (data.read(root, dataset_id), manifest.extra,
            [p.file for p in manifest.partitions])


def test_a_group_commit_stores_what_appends_one_by_one_store(tmp_path: Path) -> None:
    grouped, one_by_one = tmp_path / "grouped", tmp_path / "one_by_one"
    for group in batches():
        results = data.append_many(grouped, group)
        expected = [data.append(one_by_one, item.dataset_id, item.frame, extra=item.extra)
                    for item in group]
        assert results == expected
    for dataset_id in (BTC, ETH, RSI):
        frame, extra, files = contents(grouped, dataset_id)
        expected_frame, expected_extra, expected_files = contents(one_by_one, dataset_id)
        assert frame.equals(expected_frame)
        assert (extra, files) == (expected_extra, expected_files)
        # files as the manifest says (the gap before the last day is the test's own)
        assert data.verify(grouped, dataset_id).problems == \
            data.verify(one_by_one, dataset_id).problems
        # no temp file, no superseded partition or index left behind
        assert sorted(os.listdir(data.dataset_dir(grouped, dataset_id))) == \
            sorted(os.listdir(data.dataset_dir(one_by_one, dataset_id)))


def test_a_refused_dataset_commits_nothing_and_the_next_writer_sweeps(tmp_path: Path) -> None:
    data.append_many(tmp_path, batches()[0])
    before = {i: data.load_manifest(tmp_path, i, with_partitions=False) for i in (BTC, RSI)}
    bad = make_candles(T0 + 3 * 1440 * 60_000, 10).rename({"volume": "vol"})
    with pytest.raises(UsageError, match="missing"):  # BTC staged first (id order), then ETH
        data.append_many(tmp_path, [data.Append(RSI, rsi_rows(T0 + 3000 * 60_000, 10)),
                                    data.Append(BTC, make_candles(T0 + 2 * 1440 * 60_000, 5)),
                                    data.Append(ETH, bad)])
    for dataset_id, manifest in before.items():
        assert data.load_manifest(tmp_path, dataset_id, with_partitions=False) == manifest
    data.append(tmp_path, BTC, make_candles(T0 + 2 * 1440 * 60_000, 5))
    one_by_one = tmp_path / "one_by_one"
    data.append_many(one_by_one, batches()[0])
    data.append(one_by_one, BTC, make_candles(T0 + 2 * 1440 * 60_000, 5))
    assert sorted(os.listdir(data.dataset_dir(tmp_path, BTC))) == \
        sorted(os.listdir(data.dataset_dir(one_by_one, BTC)))


def test_a_dataset_twice_in_one_group_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="more than once"):
        data.append_many(tmp_path, [data.Append(BTC, make_candles(T0, 5)),
                                    data.Append(BTC, make_candles(T0 + 5 * 60_000, 5))])
    assert data.load_manifest(tmp_path, BTC) is None


@pytest.mark.parametrize("rule", ["month+day", "day", "month", "year"])
def test_partitions_by_binary_search_are_the_keys_of_every_row(rule: str) -> None:
    rng = np.random.default_rng(11)
    ts = np.unique(rng.integers(0, 800 * DAY_MS // 60_000, 5000)) * 60_000 + T0
    frame, _ = dedupe_batch(pl.DataFrame({"ts": ts, "v": np.arange(len(ts), dtype=float)}))
    last_ts = int(ts[-1])
    groups = split_by_partition(frame, rule, last_ts)  # type: ignore[arg-type]
    keys = [partition_key(int(t), rule, last_ts) for t in ts]  # type: ignore[arg-type]
    assert list(groups) == list(dict.fromkeys(keys))
    for key, rows in groups.items():
        assert rows["ts"].to_list() == [int(t) for t, k in zip(ts, keys, strict=True) if k == key]


def test_unsorted_batches_with_duplicates_still_sort_and_dedupe() -> None:
    frame = pl.DataFrame({"ts": [3, 1, 2, 1, 3], "v": [3.0, 1.0, 2.0, 1.0, 9.0]})
    unique, duplicates = dedupe_batch(frame)
    assert unique.to_dict(as_series=False) == {"ts": [1, 2, 3], "v": [1.0, 2.0, 3.0]}
    assert (duplicates.skipped, duplicates.conflicts) == (1, 1)
    sorted_frame, none = dedupe_batch(pl.DataFrame({"ts": [1, 2, 5], "v": [1.0, 2.0, 5.0]}))
    assert sorted_frame["ts"].flags["SORTED_ASC"] and none.new_rows.height == 0
