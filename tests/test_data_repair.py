"""A way back from damaged data (issue 16, item 2): `sfarm.data.repair` on real files, the
sweep that never deletes what it cannot prove a leftover, clear errors from readers and writers
of a damaged dataset, and the miner fetching every hole again (real ccxt over HTTP against the
emulator), so delete + repair + mine gives the fault-free dataset back."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.data.coverage import index_holes
from sfarm.data.manifest import PartitionEntry
from sfarm.exchanges import RetryPolicy
from sfarm.inventory.model import Exchange, MineTask
from sfarm.mining import MineProgress, MineRequest, MineResult, MinerSettings, mine, run_mine_task
from sfarm.timepoints import parse_time_point
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles
from tests.fixtures.waiting import wait_for

BTC_1M = "candles/binance/BTC-USDT/1m"
M = 60_000


def directory_of(root: Path) -> Path:
    return data.dataset_dir(root, BTC_1M)


def partition_file(root: Path, key: str) -> Path:
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    (entry,) = [p for p in manifest.partitions if p.key == key]
    return directory_of(root) / entry.file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """January (a month file) and 9 days of February (day files) of 1m candles."""
    data.append(tmp_path, BTC_1M, make_candles(T0, 40 * 1440),
                extra={"exchange_gaps": [[T0 - 10 * M, T0 - 5 * M]]})
    return tmp_path


def quarantined(root: Path) -> list[Path]:
    return sorted(p for p in (root / "quarantine").rglob("*") if p.is_file())


# ---- readers and writers of a damaged dataset -----------------------------------------------

def test_a_missing_day_is_a_clear_error_for_readers_and_writers(root: Path) -> None:
    partition_file(root, "2024-02-03").unlink()
    for attempt in (lambda: data.read(root, BTC_1M),
                    # March: February's days merge into one month file, the lost day with them
                    lambda: data.append(root, BTC_1M, make_candles(T0 + 60 * DAY_MS, 10))):
        with pytest.raises(data.DamagedDataset) as caught:
            attempt()
        assert caught.value.message == (f"dataset {BTC_1M} is damaged: 2024-02-03.g1.parquet "
                                        "named by the manifest is missing")
        assert caught.value.hint is not None
        assert f"sfarm data verify --repair {BTC_1M} --root {root}" in caught.value.hint


def test_a_truncated_partition_is_a_clear_error_not_a_polars_traceback(root: Path) -> None:
    path = partition_file(root, "2024-02-03")
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(data.DamagedDataset, match="a partition cannot be read"):
        data.read(root, BTC_1M)
    # An append reaching the month merge reads February's days: the same error, every time.
    for _ in range(2):
        with pytest.raises(data.DamagedDataset, match="a partition cannot be read") as caught:
            data.append(root, BTC_1M, make_candles(T0 + 60 * DAY_MS, 10))
        assert "sfarm data verify --repair" in (caught.value.hint or "")


def test_a_garbled_manifest_or_segment_is_a_clear_error(root: Path) -> None:
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    (directory_of(root) / manifest.segments[0].file).write_text("[]")
    with pytest.raises(data.DamagedDataset, match="not a valid index segment") as caught:
        data.load_manifest(root, BTC_1M)
    assert "\n" not in caught.value.message  # one line, not pydantic's listing
    (directory_of(root) / "_manifest.json").write_text("{garbage")
    for attempt in (lambda: data.read(root, BTC_1M), lambda: data.load_manifest(root, BTC_1M),
                    lambda: data.append(root, BTC_1M, make_candles(T0, 1))):
        with pytest.raises(data.DamagedDataset, match=f"dataset {BTC_1M} is damaged: .*"
                                                      "not a valid dataset manifest"):
            attempt()


# ---- the sweep never deletes what it cannot prove a leftover ---------------------------------

def test_a_lost_manifest_refuses_appends_instead_of_starting_over(root: Path) -> None:
    before = sorted(p.name for p in directory_of(root).iterdir())
    (directory_of(root) / "_manifest.json").unlink()
    with pytest.raises(data.DamagedDataset, match=r"data files .* but no _manifest\.json"):
        data.append(root, BTC_1M, make_candles(T0 + 40 * DAY_MS, 10))
    assert sorted(p.name for p in directory_of(root).iterdir()) == [
        n for n in before if n != "_manifest.json"]
    report = data.verify(root, BTC_1M)
    assert not report.ok and "--repair rebuilds it" in report.problems[0]


def test_a_lost_manifest_after_a_killed_writer_is_quarantined_not_deleted(
        root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The prober's case: 5,760 rows deleted by the sweep of the next append."""
    small = root / "small"
    data.append(small, BTC_1M, make_candles(T0, 4 * 1440))
    directory = directory_of(small)
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.name.endswith(".parquet")}
    (directory / "_manifest.json").unlink()
    (directory / ".lock").write_text("writing pid=1\n")  # and a writer was killed
    report = data.verify(small, BTC_1M)
    assert report.ok and "never deleted" in report.warnings[0]
    with caplog.at_level(logging.WARNING, logger="sfarm.data"):
        data.append(small, BTC_1M, make_candles(T0 + 10 * DAY_MS, 5))
    assert "moved to" in caplog.text and "not deleted" in caplog.text
    kept = {p.name: p.read_bytes() for p in quarantined(small) if p.name.endswith(".parquet")}
    assert kept == files  # every row of the 5,760 is still there, moved aside
    assert sum(pl.read_parquet(small / "quarantine" / p).height
               for p in quarantined(small) if p.name.endswith(".parquet")) == 5760


def test_a_lost_manifest_of_a_later_generation_is_refused_even_after_a_killed_writer(
        root: Path) -> None:
    """A first write makes generation 1 files only: later ones prove a lost manifest (or a
    repair killed before its commit), which only the repair may rebuild."""
    data.append(root, BTC_1M, make_candles(T0 + 40 * DAY_MS, 10))  # generation 2
    directory = directory_of(root)
    names = sorted(p.name for p in directory.iterdir() if p.name != "_manifest.json")
    (directory / "_manifest.json").unlink()
    (directory / ".lock").write_text("writing pid=1\n")
    with pytest.raises(data.DamagedDataset, match="but no _manifest"):
        data.append(root, BTC_1M, make_candles(T0 + 41 * DAY_MS, 10))
    assert sorted(p.name for p in directory.iterdir()) == names and quarantined(root) == []
    assert data.repair(root, BTC_1M).rows_after == 57610
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440 + 10))


def test_a_killed_writer_with_a_sound_manifest_is_still_swept(root: Path) -> None:
    directory = directory_of(root)
    (directory / "2024-02-20.g2.parquet").write_bytes(b"left by a killed writer")
    (directory / ".lock").write_text("writing pid=1\n")
    data.append(root, BTC_1M, make_candles(T0 + 40 * DAY_MS, 5))
    assert not (directory / "2024-02-20.g2.parquet").exists()  # proven: the manifest is whole
    assert quarantined(root) == []


# ---- repair ----------------------------------------------------------------------------------

def test_repair_sweeps_a_killed_writers_leftovers_first(root: Path) -> None:
    directory = directory_of(root)
    (directory / "2024-02-20.g2.parquet").write_bytes(b"left by a killed writer")
    (directory / ".lock").write_text("writing pid=1\n")
    assert not data.repair(root, BTC_1M).repaired
    assert not (directory / "2024-02-20.g2.parquet").exists()
    assert data.verify(root, BTC_1M).warnings == []


def test_repair_of_a_sound_dataset_changes_nothing(root: Path) -> None:
    before = data.load_manifest(root, BTC_1M)
    report = data.repair(root, BTC_1M)
    assert not report.repaired and report.lost == [] and report.rows_after == 57600
    after = data.load_manifest(root, BTC_1M)
    assert after == before and not (root / "quarantine").exists()


def test_repair_of_a_deleted_day(root: Path) -> None:
    partition_file(root, "2024-02-03").unlink()
    before = data.load_manifest(root, BTC_1M)
    assert before is not None
    report = data.repair(root, BTC_1M)
    assert report.repaired and report.rows_before == 57600 and report.rows_after == 56160
    assert report.rows_lost == 1440 and report.generation == before.generation + 1
    (lost,) = report.lost
    assert (lost.file, lost.reason, lost.rows, lost.moved_to) == (
        "2024-02-03.g1.parquet", "missing", 1440, None)
    assert (lost.first_ts, lost.last_ts) == (T0 + 33 * DAY_MS, T0 + 34 * DAY_MS - M)
    after = data.load_manifest(root, BTC_1M)
    assert after is not None and after.extra == before.extra  # recorded gaps kept
    verified = data.verify(root, BTC_1M)
    assert verified.gaps == [(T0 + 33 * DAY_MS, T0 + 34 * DAY_MS)]
    assert all(p.startswith("gap:") for p in verified.problems)
    expected = make_candles(T0, 40 * 1440).filter(
        (pl.col("ts") < T0 + 33 * DAY_MS) | (pl.col("ts") >= T0 + 34 * DAY_MS))
    assert data.read(root, BTC_1M).equals(expected)
    data.append(root, BTC_1M, make_candles(T0, 40 * 1440))  # the writer works again
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440))
    assert data.verify(root, BTC_1M).ok


def test_repair_moves_a_truncated_partition_aside(root: Path) -> None:
    path = partition_file(root, "2024-01")
    truncated = path.read_bytes()[:1000]
    path.write_bytes(truncated)
    report = data.repair(root, BTC_1M)
    (lost,) = report.lost
    assert lost.rows == 44640 and "sha256 does not match" in lost.reason
    assert report.quarantine is not None and lost.moved_to == f"{report.quarantine}/{path.name}"
    assert Path(lost.moved_to).read_bytes() == truncated  # moved, never deleted
    assert Path(report.quarantine).is_relative_to(root / "quarantine" / BTC_1M)
    assert (Path(report.quarantine).stat().st_mode & 0o777) == 0o700
    assert not path.exists()
    assert data.read(root, BTC_1M).equals(make_candles(T0 + 31 * DAY_MS, 9 * 1440))
    assert data.verify(root, BTC_1M).ok  # what is left is consistent (nothing before it)
    json.dumps(report.to_dict())


def test_a_directory_in_a_partitions_place_fails_reads_instead_of_being_skipped(
        root: Path) -> None:
    """polars reads a directory as a dataset of the files in it: an empty one gave a read of
    every row but that day's, without a word."""
    path = partition_file(root, "2024-02-03")
    path.unlink()
    path.mkdir()
    message = (f"dataset {BTC_1M} is damaged: partition {path.name} is a directory, not its "
               "Parquet file")
    for attempt in (lambda: data.read(root, BTC_1M),  # many partitions: one scan
                    lambda: data.read(root, BTC_1M, T0 + 33 * DAY_MS, T0 + 33 * DAY_MS + M),
                    lambda: data.read_tail(root, BTC_1M, 7 * 1440),
                    lambda: data.scan(root, BTC_1M).collect()):
        with pytest.raises(data.DamagedDataset) as caught:
            attempt()
        assert caught.value.message == message
        assert f"sfarm data verify --repair {BTC_1M}" in (caught.value.hint or "")
    assert data.read(root, BTC_1M, T0 + 34 * DAY_MS).equals(  # the rest can still be read
        make_candles(T0 + 34 * DAY_MS, 6 * 1440))


def test_repair_moves_a_directory_in_a_partitions_place_aside(root: Path) -> None:
    path = partition_file(root, "2024-02-03")
    path.unlink()
    path.mkdir()
    (path / "note").write_text("kept")
    report = data.repair(root, BTC_1M)  # was an IsADirectoryError
    (lost,) = report.lost
    assert (lost.file, lost.reason, lost.rows) == (path.name, "cannot be read: Is a directory",
                                                   1440)
    assert lost.moved_to is not None and (Path(lost.moved_to) / "note").read_text() == "kept"
    assert report.rows_after == 56160 and not path.exists()
    verified = data.verify(root, BTC_1M)
    assert verified.gaps == [(T0 + 33 * DAY_MS, T0 + 34 * DAY_MS)]
    assert all(p.startswith("gap:") for p in verified.problems)


def test_repair_moves_an_unreadable_partition_aside(root: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Any OSError reading a partition (here EACCES, which root, running tests, never gets
    from a mode) makes it a damaged one, not a crash."""
    path = partition_file(root, "2024-02-05")
    read_bytes = Path.read_bytes

    def forbidden(self: Path) -> bytes:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", forbidden)
    report = data.repair(root, BTC_1M)
    monkeypatch.undo()
    (lost,) = report.lost
    assert (lost.file, lost.reason) == (path.name, "cannot be read: Permission denied")
    assert lost.moved_to is not None and Path(lost.moved_to).is_file() and not path.exists()
    assert report.rows_after == 56160


def test_repair_without_a_manifest_ignores_a_directory_for_the_columns(root: Path) -> None:
    """The newest partition gives the columns when no manifest does: a directory of foreign
    Parquet in its place (polars reads one as a dataset) made every real partition a
    misfit."""
    directory = directory_of(root)
    (directory / "_manifest.json").unlink()
    newest = directory / "2024-02-09.g3.parquet"
    newest.mkdir()
    pl.DataFrame({"a": [1]}).write_parquet(newest / "part.parquet")
    report = data.repair(root, BTC_1M)
    assert [(f.file, f.reason) for f in report.lost] == [(newest.name,
                                                          "cannot be read: Is a directory")]
    assert report.rows_after == 57600
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440))


def test_repair_rebuilds_from_the_files_when_the_manifest_is_garbled(root: Path) -> None:
    (directory_of(root) / "_manifest.json").write_text("{garbage")
    report = data.repair(root, BTC_1M)
    assert report.repaired and report.rows_before is None and report.rows_after == 57600
    assert report.lost == [] and any("extra" in note for note in report.notes)
    assert report.quarantine is not None
    assert (Path(report.quarantine) / "_manifest.json").read_text() == "{garbage"
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440))
    assert data.verify(root, BTC_1M).ok


def test_repair_rebuilds_a_lost_manifest_and_a_bad_segment(root: Path) -> None:
    before = data.load_manifest(root, BTC_1M)
    assert before is not None
    data.append(root, BTC_1M, make_candles(T0 + 40 * DAY_MS, 30))  # g2: the day of Feb 10
    directory = directory_of(root)
    (directory / "2024-02-05.g2.parquet").write_bytes(b"not parquet")  # a leftover, damaged
    segment = data.load_manifest(root, BTC_1M).segments[0].file  # type: ignore[union-attr]
    (directory / segment).write_text("{}")
    report = data.repair(root, BTC_1M)
    # Rebuilt from every file: the damaged leftover moved aside, the rows all there.
    assert report.rows_after == 57630 and [f.file for f in report.lost] == ["2024-02-05.g2.parquet"]
    assert report.lost[0].rows is None and report.lost[0].reason.startswith("not readable")
    after = data.load_manifest(root, BTC_1M)
    assert after is not None and after.extra == before.extra  # the manifest itself was sound
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440 + 30))
    (directory / "_manifest.json").unlink()
    report = data.repair(root, BTC_1M)
    assert report.rows_after == 57630 and data.verify(root, BTC_1M).ok
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440 + 30))


def test_repair_keeps_a_month_plus_day_layout_after_losing_the_live_month(root: Path) -> None:
    for day in range(1, 10):
        partition_file(root, f"2024-02-{day:02d}").unlink()
    report = data.repair(root, BTC_1M)
    assert report.rows_after == 44640 and len(report.lost) == 9
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    # January holds the last row now: split by day, as the rule wants at the live edge.
    assert [p.key for p in manifest.partitions] == [f"2024-01-{d:02d}" for d in range(1, 32)]
    assert data.verify(root, BTC_1M).ok
    data.append(root, BTC_1M, make_candles(T0 + 10 * DAY_MS, 40 * 1440 - 10 * 1440))
    assert data.read(root, BTC_1M).equals(make_candles(T0, 40 * 1440))


def test_repair_refuses_mirrors_and_unknown_datasets(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetNotFound):
        data.repair(tmp_path, BTC_1M)


# ---- holes: cheap from the index ------------------------------------------------------------

def _entry(key: str, first: int, last: int, rows: int) -> PartitionEntry:
    return PartitionEntry(key=key, file=f"{key}.g1.parquet", rows=rows, first_ts=first,
                          last_ts=last, bytes=1, sha256="x")


def test_index_holes_read_no_whole_partition() -> None:
    whole = [_entry("2024-01-01", 0, 9 * M, 10), _entry("2024-01-02", 10 * M, 19 * M, 10)]
    assert index_holes(whole, 0, M) == ([], [])
    apart = [_entry("2024-01-01", 0, 9 * M, 10), _entry("2024-01-02", 15 * M, 19 * M, 5)]
    assert index_holes(apart, -3 * M, M) == ([(-3 * M, 0), (10 * M, 15 * M)], [])
    short = [_entry("2024-01-01", 0, 9 * M, 8), _entry("2024-01-02", 10 * M, 19 * M, 10)]
    assert index_holes(short, 0, M) == ([], [short[0]])
    assert index_holes(short, 12 * M, M) == ([], [])  # before the range: not looked at


def test_find_holes_opens_only_partitions_short_of_candles(root: Path) -> None:
    # A whole partition garbled in place: find_holes never opens it (no error), only the index.
    path = partition_file(root, "2024-01")
    path.write_bytes(b"garbled")
    assert data.find_holes(root, BTC_1M, T0) == []
    assert data.find_holes(root, BTC_1M, T0 - 20 * M) == [(T0 - 20 * M, T0)]
    assert data.find_holes(root, BTC_1M, T0 - 20 * M, excused=[[T0 - 30 * M, T0]]) == []


def test_find_holes_inside_a_partition(tmp_path: Path) -> None:
    candles = make_candles(T0, 3 * 1440)
    data.append(tmp_path, BTC_1M, candles.filter(
        (pl.col("ts") < T0 + 100 * M) | (pl.col("ts") >= T0 + 130 * M)))
    assert data.find_holes(tmp_path, BTC_1M, T0) == [(T0 + 100 * M, T0 + 130 * M)]
    assert data.find_holes(tmp_path, BTC_1M, T0 + 120 * M) == [(T0 + 120 * M, T0 + 130 * M)]


# ---- the miner fetches every hole: delete, repair, mine = a fault-free run -------------------

SINCE = parse_time_point("2024-02-28").resolve()
UNTIL = parse_time_point("2024-03-03").resolve()
REQUEST = MineRequest("binance", ("BTC/USDT",), ("1m", "1h"), SINCE, UNTIL)
BTC_1H = "candles/binance/BTC-USDT/1h"
FAST = MinerSettings(retry=RetryPolicy(max_attempts=12, base_delay=0.02, max_delay=0.2),
                     close_delay_ms=100, poll_ms=200, failure_pause_s=0.2)
MAINTENANCE = (parse_time_point("2024-03-01T10:00").resolve(),
               parse_time_point("2024-03-01T12:00").resolve())


def exchange(url: str) -> Exchange:
    return Exchange(ccxt="binance", url=url)


def stored(root: Path) -> dict[str, pl.DataFrame]:
    return {i: data.read(root, i) for i in REQUEST.dataset_ids()}


@pytest.fixture(scope="module")
def reference(emulator, tmp_path_factory) -> dict[str, pl.DataFrame]:
    root = tmp_path_factory.mktemp("reference")
    assert not mine(root, REQUEST, exchange(emulator.url), settings=FAST).failures
    return stored(root)


def test_deleted_and_truncated_data_is_mined_again(emulator, reference, tmp_path) -> None:
    assert not mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST).failures
    minutes = data.dataset_dir(tmp_path, BTC_1M)
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    files = {p.key: p.file for p in manifest.partitions}
    assert set(files) == {"2024-02", "2024-03-01", "2024-03-02"}
    (minutes / files["2024-02"]).unlink()  # a closed month: a hole in front
    (minutes / files["2024-03-01"]).write_bytes(b"truncated")  # a day: a hole inside
    hours = data.load_manifest(tmp_path, BTC_1H)
    assert hours is not None
    hour_file = data.dataset_dir(tmp_path, BTC_1H) / hours.partitions[-1].file
    hour_file.write_bytes(hour_file.read_bytes()[:300])  # 2024-03: the hours of March

    lost = {i: data.repair(tmp_path, i).rows_lost for i in REQUEST.dataset_ids()}
    assert lost == {BTC_1M: 2 * 1440 + 1440, BTC_1H: 48}

    result = mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST)
    assert not result.failures
    assert {d.dataset_id: d.rows_added for d in result.datasets} == lost
    for dataset_id, frame in stored(tmp_path).items():
        assert frame.equals(reference[dataset_id]), dataset_id
        assert data.verify(tmp_path, dataset_id).ok
    again = mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST)
    assert [d.requests for d in again.datasets] == [0, 0]  # nothing missing: nothing asked


def test_an_earlier_since_fills_in_front(emulator, reference, tmp_path) -> None:
    later = MineRequest("binance", ("BTC/USDT",), ("1m", "1h"), SINCE + DAY_MS, UNTIL)
    assert not mine(tmp_path, later, exchange(emulator.url), settings=FAST).failures
    result = mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST)
    assert {d.dataset_id: d.rows_added for d in result.datasets} == {BTC_1M: 1440, BTC_1H: 24}
    for dataset_id, frame in stored(tmp_path).items():
        assert frame.equals(reference[dataset_id]), dataset_id


def test_a_hole_the_exchange_has_no_candles_for_is_recorded_once(emulator_factory,
                                                                 tmp_path) -> None:
    """A rebuilt manifest lost the recorded exchange-side gaps: the next mine asks for those
    holes once, records them again, and the run after asks for nothing."""
    faulty = emulator_factory(f"maintenance={MAINTENANCE[0]}/{MAINTENANCE[1]}")
    assert not mine(tmp_path, REQUEST, exchange(faulty.url), settings=FAST).failures
    recorded = data.load_manifest(tmp_path, BTC_1M).extra["exchange_gaps"]  # type: ignore[union-attr]
    assert recorded == [list(MAINTENANCE)]
    (data.dataset_dir(tmp_path, BTC_1M) / "_manifest.json").unlink()
    assert data.repair(tmp_path, BTC_1M).rows_after == 4 * 1440 - 120
    assert not data.verify(tmp_path, BTC_1M).ok  # the gap is unexplained now
    result = mine(tmp_path, REQUEST, exchange(faulty.url), settings=FAST)
    minutes = {d.dataset_id: d for d in result.datasets}[BTC_1M]
    assert minutes.rows_added == 0 and minutes.requests == 1
    assert data.load_manifest(tmp_path, BTC_1M).extra["exchange_gaps"] == recorded  # type: ignore[union-attr]
    assert data.verify(tmp_path, BTC_1M).ok
    again = mine(tmp_path, REQUEST, exchange(faulty.url), settings=FAST)
    assert [d.requests for d in again.datasets] == [0, 0]


def test_holes_past_until_are_left_for_a_later_run(emulator, reference, tmp_path) -> None:
    assert not mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST).failures
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    (day,) = [p.file for p in manifest.partitions if p.key == "2024-03-01"]
    (data.dataset_dir(tmp_path, BTC_1M) / day).unlink()
    assert data.repair(tmp_path, BTC_1M).rows_lost == 1440
    noon = parse_time_point("2024-03-01T12:00").resolve()
    narrower = MineRequest("binance", ("BTC/USDT",), ("1m",), SINCE, noon)
    assert mine(tmp_path, narrower, exchange(emulator.url), settings=FAST).rows_added == 720
    assert data.find_holes(tmp_path, BTC_1M, SINCE) == [(noon, noon + 720 * M)]
    assert data.load_manifest(tmp_path, BTC_1M).extra.get("exchange_gaps") is None  # type: ignore[union-attr]
    assert mine(tmp_path, REQUEST, exchange(emulator.url), settings=FAST).rows_added == 720
    assert data.read(tmp_path, BTC_1M).equals(reference[BTC_1M])


def test_a_stop_while_filling_a_hole_resumes_in_it(emulator, reference, tmp_path) -> None:
    minutes_only = MineRequest("binance", ("BTC/USDT",), ("1m",), SINCE, UNTIL)
    assert not mine(tmp_path, minutes_only, exchange(emulator.url), settings=FAST).failures
    manifest = data.load_manifest(tmp_path, BTC_1M)
    assert manifest is not None
    (february,) = [p.file for p in manifest.partitions if p.key == "2024-02"]
    (data.dataset_dir(tmp_path, BTC_1M) / february).unlink()
    assert data.repair(tmp_path, BTC_1M).rows_lost == 2880  # 3 pages of 1000
    stop = threading.Event()

    def on_progress(status: MineProgress) -> None:
        if status.rows_added >= 1000:
            stop.set()

    first = mine(tmp_path, minutes_only, exchange(emulator.url), settings=FAST, stop=stop,
                 on_progress=on_progress)
    assert first.datasets[0].phase == "stopped" and 1000 <= first.rows_added < 2880
    report = data.verify(tmp_path, BTC_1M)  # consistent, with the rest of the hole a gap
    (gap,) = report.gaps
    assert gap[1] == parse_time_point("2024-03-01").resolve()
    assert (gap[1] - gap[0]) // M == 2880 - first.rows_added
    assert data.find_holes(tmp_path, BTC_1M, SINCE) == [gap]
    second = mine(tmp_path, minutes_only, exchange(emulator.url), settings=FAST)
    assert first.rows_added + second.rows_added == 2880
    assert data.read(tmp_path, BTC_1M).equals(reference[BTC_1M])


def test_a_running_mine_task_fills_holes_before_the_live_edge(emulator, tmp_path) -> None:
    """The task engine (follow mode) fills the holes at its start, then goes live."""
    task = MineTask(kind="mine", exchange="binance", markets=["BTC/USDT"], timeframes=["1m"],
                    since="40m")

    def until_live() -> MineResult:
        stop = threading.Event()

        def on_progress(status: MineProgress) -> None:
            if status.phase == "live":
                stop.set()

        return run_mine_task(tmp_path, "mine-btc", task, exchange(emulator.url),
                             stop_event=stop, on_progress=on_progress, settings=FAST)

    until_live()
    complete = data.read(tmp_path, BTC_1M)
    assert complete.height >= 30
    middle = complete["ts"][10]
    shutil.rmtree(tmp_path / "data")  # the same candles, less ten in the middle
    data.append(tmp_path, BTC_1M, complete.filter(
        (pl.col("ts") < middle) | (pl.col("ts") >= middle + 10 * M)))
    assert data.find_holes(tmp_path, BTC_1M, complete["ts"][0]) == [(middle, middle + 10 * M)]
    result = until_live()
    assert result.datasets[0].rows_added >= 10
    again = data.read(tmp_path, BTC_1M)
    assert again.head(complete.height).equals(complete)
    assert data.verify(tmp_path, BTC_1M).ok


def test_a_following_miner_fetches_a_hole_that_appears_while_it_runs(emulator,
                                                                      tmp_path) -> None:
    """Data lost and repaired under a running mine task comes back without a restart: the
    miner looks for holes again every `holes_recheck_s` once it is live, not only at start."""
    task = MineTask(kind="mine", exchange="binance", markets=["BTC/USDT"], timeframes=["1m"],
                    since="3d")
    live, stop = threading.Event(), threading.Event()
    results: list[MineResult] = []

    def on_progress(status: MineProgress) -> None:
        if status.phase == "live":
            live.set()

    def work() -> None:
        results.append(run_mine_task(tmp_path, "mine-btc", task, exchange(emulator.url),
                                     stop_event=stop, on_progress=on_progress,
                                     settings=replace(FAST, holes_recheck_s=0.2)))

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert live.wait(120), "the miner never went live"
        manifest = data.load_manifest(tmp_path, BTC_1M)
        assert manifest is not None and manifest.first_ts is not None
        victim = manifest.partitions[-2]  # a closed partition: the last one takes live candles
        (directory_of(tmp_path) / victim.file).unlink()
        assert data.repair(tmp_path, BTC_1M).rows_lost == victim.rows
        assert data.find_holes(tmp_path, BTC_1M, manifest.first_ts)
        wait_for(lambda: not data.find_holes(tmp_path, BTC_1M, manifest.first_ts),
                 timeout_s=60, what="the running miner to fetch the hole again")
    finally:
        stop.set()
        worker.join(60)
    assert results and not results[0].failures
    assert data.verify(tmp_path, BTC_1M).ok

