"""sfarm.data.verification and the pure checks behind it: files vs manifest, order, grid, OHLC,
gaps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.data.checks import find_gaps, unexplained_gaps
from sfarm.data.manifest import sha256_hex
from tests.fixtures.cli import run
from tests.fixtures.data_helpers import DAY_MS, T0, make_candles

BTC_1M = "candles/binance/BTC-USDT/1m"
M = 60_000


def rewrite_partition(root: Path, dataset_id: str, index: int, frame: pl.DataFrame) -> None:
    """Replace a partition's content and re-seal the index and manifest around it, so that only
    the content checks can notice (what a buggy writer, not a torn write, would leave)."""
    directory = data.dataset_dir(root, dataset_id)
    manifest = json.loads((directory / "_manifest.json").read_text())
    segment_file = manifest["segments"][0]["file"]
    segment = json.loads((directory / segment_file).read_text())
    entry = segment["partitions"][index]
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    raw = buffer.getvalue()
    (directory / entry["file"]).write_bytes(raw)
    entry.update(rows=frame.height, bytes=len(raw), sha256=sha256_hex(raw),
                 first_ts=frame["ts"][0], last_ts=frame["ts"][-1])
    segment_raw = json.dumps(segment).encode()
    (directory / segment_file).write_bytes(segment_raw)
    rows = sum(p["rows"] for p in segment["partitions"])
    manifest["segments"][0].update(sha256=sha256_hex(segment_raw), rows=rows)
    manifest["rows"] = rows
    (directory / "_manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data.append(tmp_path, BTC_1M, make_candles(T0, 3 * 1440))
    return tmp_path


def test_clean_dataset_verifies(root: Path) -> None:
    report = data.verify(root, BTC_1M)
    assert report.ok and report.problems == [] and report.gaps == [] and report.warnings == []
    assert (report.rows, report.partitions) == (4320, 3)
    assert report.to_dict()["ok"] is True


def test_changed_partition_bytes_fail_checksum(root: Path) -> None:
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    path = data.dataset_dir(root, BTC_1M) / manifest.partitions[1].file
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    report = data.verify(root, BTC_1M)
    assert not report.ok
    assert report.problems == [(f"partition {manifest.partitions[1].file}: sha256 does not match "
                               "the manifest (file changed or corrupt)")]


def test_missing_partition_and_segment(root: Path) -> None:
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    directory = data.dataset_dir(root, BTC_1M)
    (directory / manifest.partitions[0].file).unlink()
    assert f"partition {manifest.partitions[0].file} is missing" in data.verify(
        root, BTC_1M).problems
    (directory / manifest.segments[0].file).unlink()
    assert f"index segment {manifest.segments[0].file} is missing" in data.verify(
        root, BTC_1M).problems


def test_row_count_mismatch_in_manifest(root: Path) -> None:
    path = data.dataset_dir(root, BTC_1M) / "_manifest.json"
    document = json.loads(path.read_text())
    document["rows"] += 1
    path.write_text(json.dumps(document))
    problems = data.verify(root, BTC_1M).problems
    assert problems == ["manifest says 4321 rows, its partitions hold 4320"]


def test_off_grid_and_out_of_period_rows(root: Path) -> None:
    day = make_candles(T0, 1440).with_columns(
        ts=pl.when(pl.col("ts") == T0 + 5 * M).then(T0 + 5 * M + 1).otherwise(pl.col("ts")))
    rewrite_partition(root, BTC_1M, 0, day)
    problems = data.verify(root, BTC_1M).problems
    assert any("1 ts not on the 1m grid" in p for p in problems), problems
    rewrite_partition(root, BTC_1M, 0, make_candles(T0 + DAY_MS - 10 * M, 20))
    problems = data.verify(root, BTC_1M).problems
    assert any("10 rows outside the period 2024-01-01" in p for p in problems), problems
    assert any("not strictly increasing" in p for p in problems), problems


def test_unsorted_partition(root: Path) -> None:
    rewrite_partition(root, BTC_1M, 2, make_candles(T0 + 2 * DAY_MS, 1440).reverse())
    problems = data.verify(root, BTC_1M).problems
    assert any("not strictly increasing at 1439 rows" in p for p in problems), problems


@pytest.mark.parametrize(("change", "message"), [
    ({"low": 200.0}, "low above open or close"),
    ({"high": 1.0}, "high below open or close"),
    ({"volume": -1.0}, "negative volume"),
    ({"close": float("nan")}, "NaN in open, high, low, close or volume"),
    ({"open": None}, "a missing open, high, low, close or volume"),
])
def test_ohlc_sanity(tmp_path: Path, change: dict[str, float | None], message: str) -> None:
    candles = make_candles(T0, 10)
    broken = candles.with_columns(**{k: pl.when(pl.col("ts") == T0 + 3 * M).then(
        pl.lit(v, pl.Float64)).otherwise(pl.col(k)) for k, v in change.items()})
    data.append(tmp_path, BTC_1M, broken)  # append stores what it is given; verify judges
    report = data.verify(tmp_path, BTC_1M)
    assert not report.ok
    assert report.problems == [(f"partition 2024-01-01.g1.parquet: 1 candles with {message}, "
                               "first at 2024-01-01 00:03")]


def test_gaps_are_problems_unless_recorded_by_the_miner(tmp_path: Path) -> None:
    candles = make_candles(T0, 100)
    data.append(tmp_path, BTC_1M, candles.filter((pl.col("ts") < T0 + 10 * M)
                                                 | (pl.col("ts") >= T0 + 15 * M)))
    data.append(tmp_path, BTC_1M, make_candles(T0 + 200 * M, 10))  # 100 missing, 100..199
    report = data.verify(tmp_path, BTC_1M)
    assert report.gaps == [(T0 + 10 * M, T0 + 15 * M), (T0 + 100 * M, T0 + 200 * M)]
    assert not report.ok
    assert report.problems[0] == ("gap: 5 1m candles missing from 2024-01-01 00:10 to before "
                                  "2024-01-01 00:15 (not recorded as exchange-side)")
    # The miner records the first as exchange-side, last present to next present.
    data.append(tmp_path, BTC_1M, pl.DataFrame(),
                extra={"exchange_gaps": [[T0 + 9 * M, T0 + 15 * M]]})
    report = data.verify(tmp_path, BTC_1M)
    assert report.gaps == [(T0 + 100 * M, T0 + 200 * M)] and report.excused_gaps == 1
    data.append(tmp_path, BTC_1M, pl.DataFrame(), extra={"exchange_gaps": [
        [T0 + 9 * M, T0 + 15 * M], [T0 + 100 * M, T0 + 199 * M]]})
    report = data.verify(tmp_path, BTC_1M)
    assert report.ok and report.gaps == [] and report.excused_gaps == 2


def test_indicator_gaps_are_listed_not_problems(tmp_path: Path) -> None:
    dataset_id = "indicators/binance/BTC-USDT/1h/sma_2"
    data.append(tmp_path, dataset_id, pl.DataFrame({
        "ts": [T0, T0 + 3_600_000, T0 + 5 * 3_600_000], "sma_2": [None, 1.0, 2.0]}))
    report = data.verify(tmp_path, dataset_id)
    assert report.ok and report.gaps == [(T0 + 2 * 3_600_000, T0 + 5 * 3_600_000)]


def test_leftover_files_are_warnings(root: Path) -> None:
    directory = data.dataset_dir(root, BTC_1M)
    (directory / "2024-01-02.g9.parquet").write_bytes(b"half written")
    (directory / ".2024-01-02.g9.parquet.123.tmp").write_bytes(b"half")
    report = data.verify(root, BTC_1M)
    assert report.ok
    assert len(report.warnings) == 2 and "2024-01-02.g9.parquet" in report.warnings[0]
    # ...that the next append removes, while read never looked at them.
    assert data.read(root, BTC_1M).height == 4320
    (directory / ".lock").write_text("writing pid=1\n")  # as a killed writer leaves it
    data.append(root, BTC_1M, make_candles(T0 + 4320 * M, 1))
    assert data.verify(root, BTC_1M).warnings == []


def test_parquet_without_manifest(root: Path) -> None:
    (data.dataset_dir(root, BTC_1M) / "_manifest.json").unlink()
    report = data.verify(root, BTC_1M)
    assert not report.ok and "no _manifest.json" in report.problems[0]


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetNotFound):
        data.verify(tmp_path, BTC_1M)


def test_unreadable_manifest(root: Path) -> None:
    (data.dataset_dir(root, BTC_1M) / "_manifest.json").write_text("{not json")
    report = data.verify(root, BTC_1M)
    assert not report.ok and "not a valid dataset manifest" in report.problems[0]


def test_bad_exchange_gaps_entry_is_a_warning(root: Path) -> None:
    data.append(root, BTC_1M, pl.DataFrame(), extra={"exchange_gaps": [[1, 2], "oops"]})
    report = data.verify(root, BTC_1M)
    assert report.ok and "oops" in report.warnings[0]


def test_find_gaps() -> None:
    ts = pl.Series([0, 60, 120, 300, 360, 600])
    assert find_gaps(ts, 60) == [(180, 300), (420, 600)]
    assert find_gaps(pl.Series([], dtype=pl.Int64), 60) == []


@pytest.mark.parametrize(("recorded", "left"), [
    ([], [(100, 200)]),
    ([[100, 190]], []),  # first missing .. last missing
    ([[90, 200]], []),  # last present .. next present
    ([[100, 200]], []),  # half-open
    ([[120, 150]], [(100, 120), (160, 200)]),  # middle only: two pieces left
    ([[0, 130]], [(140, 200)]),
    ([[165, 500]], [(100, 170)]),  # unaligned bounds excuse the opens inside them
    ([[300, 400]], [(100, 200)]),
])
def test_unexplained_gaps(recorded: list[list[int]], left: list[tuple[int, int]]) -> None:
    assert unexplained_gaps([(100, 200)], recorded, 10) == left


def test_interrupted_first_write_is_not_a_dataset_yet(tmp_path: Path) -> None:
    directory = data.dataset_dir(tmp_path, BTC_1M)
    directory.mkdir(parents=True)
    (directory / "2024-01-01.g1.parquet").write_bytes(b"half written")
    (directory / ".lock").write_text("writing pid=1\n")  # the writer was killed
    report = data.verify(tmp_path, BTC_1M)
    assert report.ok and "interrupted first write" in report.warnings[0]
    assert data.load_manifest(tmp_path, BTC_1M) is None and data.list_datasets(tmp_path) == []
    data.append(tmp_path, BTC_1M, make_candles(T0, 2))
    assert sorted(p.name for p in directory.iterdir()) == [
        ".lock", "2024-01-01.g1.parquet", "_index.2024.g1.json", "_manifest.json"]
    assert data.verify(tmp_path, BTC_1M).warnings == []
    # Nothing proved the file a leftover (a lost manifest looks the same): moved, not deleted.
    (moved,) = (tmp_path / "quarantine").rglob("*.parquet")
    assert moved.name == "2024-01-01.g1.parquet" and moved.read_bytes() == b"half written"


def test_verify_names_the_repair_and_repair_says_what_was_lost(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data.append(root, BTC_1M, make_candles(T0 + 3 * DAY_MS, 1440))  # 4 days: lose 2 inside
    manifest = data.load_manifest(root, BTC_1M)
    assert manifest is not None
    directory = data.dataset_dir(root, BTC_1M)
    (directory / manifest.partitions[1].file).unlink()
    damaged = directory / manifest.partitions[2].file
    damaged.write_bytes(damaged.read_bytes()[:700])
    code, out, err = run(capsys, "data", "verify", "--root", str(root))
    assert code == 1 and "is missing" in out and "verify --repair" in err
    code, out, _ = run(capsys, "data", "verify", "--root", str(root), "--json")
    document = json.loads(out)
    assert code == 1 and "verify --repair" in document["hint"] and "repairs" not in document

    code, out, err = run(capsys, "data", "verify", BTC_1M, "--root", str(root), "--repair")
    assert code == 1  # what was lost is a gap now, until the next mine fetches it
    assert f"repaired {BTC_1M}: 2,880 rows kept (generation 3), 2,880 rows lost" in out
    assert "lost 2024-01-02.g1.parquet (missing): 2024-01-02 00:00 to 2024-01-02 23:59 UTC, " \
        "1,440 rows, was missing" in out
    assert "lost 2024-01-03.g1.parquet (700 bytes" in out and "moved aside" in out
    assert "files moved to " + str(root / "quarantine" / BTC_1M) in out
    assert "gap: 2880 1m candles missing" in out and "next `sfarm mine`" in err
    assert list((root / "quarantine").rglob("2024-01-03.g1.parquet"))

    code, out, _ = run(capsys, "data", "verify", "--root", str(root), "--repair", "--json")
    document = json.loads(out)
    (repair,) = document["repairs"]
    assert repair["repaired"] is False and repair["rows_lost"] == 0  # done already
    assert document["datasets"][0]["gaps"] == [[T0 + DAY_MS, T0 + 3 * DAY_MS]]


def test_verify_repair_json_lists_lost_files(root: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (data.dataset_dir(root, BTC_1M) / "_manifest.json").write_text("{}")
    code, out, _ = run(capsys, "data", "verify", BTC_1M, "--root", str(root), "--repair",
                       "--json")
    document = json.loads(out)
    (repair,) = document["repairs"]
    assert code == 0 and document["ok"] is True
    assert repair["repaired"] is True and repair["rows_after"] == 4320
    assert repair["rows_before"] is None and repair["rows_lost"] is None
    assert any("not a valid dataset manifest" in note for note in repair["notes"])
    assert Path(repair["quarantine"], "_manifest.json").read_text() == "{}"


def test_verify_repair_leaves_a_mirror_to_a_pull(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "producer"
    data.append(source, BTC_1M, make_candles(T0, 1440))
    mirror = data.dataset_dir(tmp_path / "lab", BTC_1M, mirror_of="miner-1")
    mirror.mkdir(parents=True)
    for item in data.dataset_dir(source, BTC_1M).iterdir():
        (mirror / item.name).write_bytes(item.read_bytes())
    (mirror / "2024-01-01.g1.parquet").unlink()
    code, out, _ = run(capsys, "data", "verify", "--root", str(tmp_path / "lab"), "--repair",
                       "--json")
    document = json.loads(out)
    assert code == 1 and document["repairs"] == []
    assert document["not_repaired"] == [{"id": BTC_1M, "node": "miner-1", "hint": (
        f"a mirror is a copy: pull it again (sfarm data pull miner-1 {BTC_1M})")}]
    assert (mirror / "_manifest.json").exists() and not (tmp_path / "lab" / "quarantine").exists()
    with pytest.raises(data.DamagedDataset, match=r"\(mirror of miner-1\)") as caught:
        data.read(tmp_path / "lab", BTC_1M, mirror_of="miner-1")
    assert "sfarm data pull miner-1" in (caught.value.hint or "")
