"""Property: any sequence of overlapping appends, in any order, leaves the same dataset as one
sorted, deduplicated write: same rows, same partitions, byte-identical partition files."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfarm import data
from sfarm.timeframes import timeframe_ms
from tests.fixtures.data_helpers import DAY_MS, T0, candles_from_ts


@dataclass(frozen=True)
class Case:
    dataset_id: str
    base: int  # ts of index 0, placed so that small ranges cross partition boundaries
    step: int


CASES = [
    Case("candles/x/BTC-USDT/1m", T0 - 40 * 60_000, 60_000),  # month+day partitions
    # Two days of December to merge into one month file once a row of January arrives.
    Case("candles/x/BTC-USDT/30m", T0 - 70 * 1_800_000, 1_800_000),
    Case("candles/x/BTC-USDT/1h", T0 - 40 * 3_600_000, 3_600_000),  # month partitions
    Case("candles/x/BTC-USDT/1d", T0 - 40 * DAY_MS, DAY_MS),  # year partitions
    Case("candles/x/BTC-USDT/1w", T0 - 40 * 7 * DAY_MS, timeframe_ms("1w")),
    Case("indicators/x/BTC-USDT/1h/rsi_14", T0 - 40 * 3_600_000, 3_600_000),
    Case("sessions/paper/trades", T0 - 40 * 3 * DAY_MS + 17, 3 * DAY_MS + 1),  # off any grid
]


def rows_at(case: Case, indexes: list[int]) -> pl.DataFrame:
    """The dataset's rows at these grid indexes; values depend on ts only."""
    ts = [case.base + i * case.step for i in indexes]
    kind = case.dataset_id.split("/")[0]
    if kind == "candles":
        return candles_from_ts(ts)
    frame = pl.DataFrame({"ts": ts}, schema={"ts": pl.Int64})
    if kind == "indicators":
        return frame.with_columns(rsi_14=pl.when(pl.col("ts") % 3 == 0).then(None)
                                  .otherwise((pl.col("ts") // 1000 % 97).cast(pl.Float64)))
    return frame.with_columns(side=pl.when(pl.col("ts") % 2 == 0).then(pl.lit("buy"))
                              .otherwise(pl.lit("sell")),
                              price=(pl.col("ts") % 1013).cast(pl.Float64))


batch = st.tuples(st.integers(0, 80), st.integers(0, 30), st.booleans())  # start, length, dup


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), batches=st.lists(batch, min_size=1, max_size=6),
       order=st.randoms(use_true_random=False))
def test_appends_in_any_order_equal_one_deduplicated_write(
        case: Case, batches: list[tuple[int, int, bool]], order: object) -> None:
    order.shuffle(batches)  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as many, tempfile.TemporaryDirectory() as once:
        stored: set[int] = set()
        for start, length, duplicate in batches:
            indexes = list(range(start, start + length))
            frame = rows_at(case, indexes)
            if duplicate:  # a batch may repeat rows and come unsorted
                frame = pl.concat([frame, frame.head(length // 2)]).reverse()
            result = data.append(many, case.dataset_id, frame)
            assert result.conflicts == 0
            assert result.rows_added == len(set(indexes) - stored)
            assert result.rows_added + result.rows_skipped == frame.height
            stored |= set(indexes)
        expected = rows_at(case, sorted(stored))
        if expected.height:
            data.append(once, case.dataset_id, expected.sample(fraction=1.0, shuffle=True,
                                                               seed=1))
        assert_same_dataset(Path(many), Path(once), case.dataset_id, expected)


def assert_same_dataset(many: Path, once: Path, dataset_id: str,
                        expected: pl.DataFrame) -> None:
    left = data.load_manifest(many, dataset_id)
    right = data.load_manifest(once, dataset_id)
    if expected.height == 0:
        assert left is None and right is None
        return
    assert left is not None and right is not None
    assert data.read(many, dataset_id).equals(expected)
    assert (left.rows, left.first_ts, left.last_ts) == (right.rows, right.first_ts, right.last_ts)
    assert [(p.key, p.rows, p.first_ts, p.last_ts, p.sha256) for p in left.partitions] == [
        (p.key, p.rows, p.first_ts, p.last_ts, p.sha256) for p in right.partitions]
    report = data.verify(many, dataset_id)
    assert report.gaps == data.verify(once, dataset_id).gaps
    assert all(problem.startswith("gap") for problem in report.problems), report.problems
    assert not report.warnings


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), first=st.integers(0, 60), length=st.integers(1, 60),
       start=st.none() | st.integers(-5, 130), end=st.none() | st.integers(-5, 130),
       offset=st.integers(-1, 1), last_column_only=st.booleans())
def test_any_range_reads_the_rows_in_it(case: Case, first: int, length: int, start: int | None,
                                        end: int | None, offset: int,
                                        last_column_only: bool) -> None:
    # Ranges within one partition (read whole and sliced) and across several (one scan), their
    # bounds on a row, between rows (offset) or outside the data, with or without a column pick.
    rows = rows_at(case, list(range(first, first + length)))
    start_ts = None if start is None else case.base + start * case.step + offset
    end_ts = None if end is None else case.base + end * case.step + offset
    columns = [rows.columns[-1]] if last_column_only else None
    with tempfile.TemporaryDirectory() as root:
        data.append(root, case.dataset_id, rows)
        got = data.read(root, case.dataset_id, start_ts, end_ts, columns=columns)
    expected = rows.filter((pl.col("ts") >= (start_ts if start_ts is not None else rows["ts"][0]))
                           & (pl.col("ts") < (end_ts if end_ts is not None else 2**62)))
    assert got.equals(expected.select("ts", *(columns or rows.columns[1:])))
    assert got["ts"].flags["SORTED_ASC"]
