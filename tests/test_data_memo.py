"""sfarm.data.memo: a process's next append to a dataset it committed parses and decodes nothing
again, yet never trusts memory over the disk: another writer's commit, a dataset made anew under
the same names and a damaged file are all seen as before."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.data import manifest as manifest_module
from sfarm.data import memo
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.processes import start_python

BTC = "candles/binance/BTC-USDT/1m"
MINUTE = 60_000


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    memo.forget()
    yield
    memo.forget()


def _refuse(*_: object, **__: object) -> None:
    raise AssertionError("read from the disk, not from memory")


def test_the_next_append_parses_and_decodes_nothing(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    data.append(tmp_path, BTC, make_candles(T0, 100))
    monkeypatch.setattr(manifest_module, "parse_manifest", _refuse)
    monkeypatch.setattr(manifest_module, "parse_segment", _refuse)
    monkeypatch.setattr(pl, "read_parquet", _refuse)
    for minute in range(100, 103):
        assert data.append(tmp_path, BTC, make_candles(T0 + minute * MINUTE, 1)).rows_added == 1
    monkeypatch.undo()
    memo.forget()  # what the disk holds, decoded anew
    assert data.read(tmp_path, BTC).equals(make_candles(T0, 103))
    assert data.verify(tmp_path, BTC).ok


def test_another_writers_commit_is_read_from_the_disk(tmp_path: Path) -> None:
    data.append(tmp_path, BTC, make_candles(T0, 100))
    other = start_python(f"from sfarm import data; from tests.fixtures.data_helpers import T0, "
                         f"make_candles; print('ready', flush=True); "
                         f"data.append({str(tmp_path)!r}, {BTC!r}, "
                         f"make_candles(T0 + 100 * {MINUTE}, 5))")
    assert other.wait(timeout=60) == 0
    result = data.append(tmp_path, BTC, make_candles(T0 + 105 * MINUTE, 1))
    assert result.rows_added == 1 and result.last_ts == T0 + 105 * MINUTE
    memo.forget()
    assert data.read(tmp_path, BTC).equals(make_candles(T0, 106))


def test_a_dataset_made_anew_under_the_same_names_is_read_from_the_disk(tmp_path: Path) -> None:
    data.append(tmp_path, BTC, make_candles(T0, 100))
    shutil.rmtree(data.dataset_dir(tmp_path, BTC))
    data.append(tmp_path / "elsewhere", BTC, make_candles(T0 + 10 * MINUTE, 50))  # same names
    shutil.copytree(data.dataset_dir(tmp_path / "elsewhere", BTC),
                    data.dataset_dir(tmp_path, BTC))
    data.append(tmp_path, BTC, make_candles(T0 + 60 * MINUTE, 1))
    memo.forget()
    assert data.read(tmp_path, BTC).equals(make_candles(T0 + 10 * MINUTE, 51))


def test_a_damaged_live_partition_is_reported_not_replaced_from_memory(tmp_path: Path) -> None:
    data.append(tmp_path, BTC, make_candles(T0, 100))
    manifest = data.load_manifest(tmp_path, BTC)
    assert manifest is not None
    live = data.dataset_dir(tmp_path, BTC) / manifest.partitions[-1].file
    live.write_bytes(live.read_bytes()[:-16])  # cut short: not its sha256, not Parquet
    with pytest.raises(data.DamagedDataset):
        data.append(tmp_path, BTC, make_candles(T0 + 100 * MINUTE, 1))


def test_a_damaged_index_segment_is_reported_by_the_next_read(tmp_path: Path) -> None:
    data.append(tmp_path, BTC, make_candles(T0, 100))
    for index in data.dataset_dir(tmp_path, BTC).glob("_index.*.json"):
        index.write_text(index.read_text().replace('"rows"', '"rovs"'))
    with pytest.raises(data.DamagedDataset, match="not a valid index segment"):
        data.read(tmp_path, BTC)


def test_memory_stays_bounded(tmp_path: Path) -> None:
    for number in range(memo.MAX_DATASETS + 5):
        data.append(tmp_path, f"candles/binance/C{number}-USDT/1m", make_candles(T0, 2))
    assert len(memo._datasets) == memo.MAX_DATASETS
    for minute in range(2, 2 + 3 * memo.KEPT_PER_DATASET):
        data.append(tmp_path, BTC, make_candles(T0 + minute * MINUTE, 1))
    kept = memo._datasets[data.dataset_dir(tmp_path, BTC)]
    assert len(kept.partitions) <= memo.KEPT_PER_DATASET
    assert len(kept.segments) <= memo.KEPT_PER_DATASET
