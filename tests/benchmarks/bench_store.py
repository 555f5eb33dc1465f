"""Benchmark of the dataset store: appending one day of 1m candles, appending one live candle,
and reading the last day, on a history of one year vs ten years. The costs must be flat.
For the record: the append that enters a new month (merging the last month's day files into one
month file), full reads of every column and of the five a backtest needs, and verify.

Run: `.venv/bin/python -m pytest tests/benchmarks/bench_store.py -s -o addopts=""`
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm import data
from tests.fixtures.data_helpers import DAY_MS, make_candles

DATASET = "candles/bench/BTC-USDT/1m"
# Both histories end on the same day, so appends land in index segments of the same size and
# only the length of the history differs.
HISTORY_END = 1_733_011_200_000  # 2024-12-01 00:00 UTC
NEXT_MONTH = 1_735_689_600_000  # 2025-01-01 00:00 UTC, after the appends of December
YEAR_DAYS = 365
PRICES = ("open", "high", "low", "close")  # what a backtest reads (ts comes with them)
DAY_REPEATS = 15
CANDLE_REPEATS = 40


def build_history(root: Path, days: int) -> float:
    """`days` of 1m candles ending at HISTORY_END, written through the store a year per batch;
    returns the seconds it took."""
    began = time.perf_counter()
    start = HISTORY_END - days * DAY_MS
    for first_day in range(0, days, YEAR_DAYS):
        count = min(YEAR_DAYS, days - first_day) * 1440
        data.append(root, DATASET, make_candles(start + first_day * DAY_MS, count))
    return time.perf_counter() - began


def interleaved_medians(roots: dict[str, Path], repeats: int,
                        action: Callable[[Path, int], object]) -> dict[str, float]:
    """Median ms of `action` per root, the roots taking turns so that load from other processes
    on the machine hits both alike."""
    timings: dict[str, list[float]] = {name: [] for name in roots}
    for i in range(repeats):
        for name, root in roots.items():
            began = time.perf_counter()
            action(root, i)
            timings[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(values) for name, values in timings.items()}


def seconds(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def best_seconds(action: Callable[[], object], repeats: int = 5) -> float:
    return min(seconds(action) for _ in range(repeats))


@pytest.mark.slow
def test_append_and_read_cost_is_flat(tmp_path: Path) -> None:
    roots = {"1 year": tmp_path / "one", "10 years": tmp_path / "ten"}
    build = {"1 year": build_history(roots["1 year"], YEAR_DAYS),
             "10 years": build_history(roots["10 years"], 10 * YEAR_DAYS)}
    # A day at a time (a miner catching up), then one candle at a time (the live edge).
    append_day = interleaved_medians(roots, DAY_REPEATS, lambda root, i: data.append(
        root, DATASET, make_candles(HISTORY_END + i * DAY_MS, 1440)))
    live_edge = HISTORY_END + DAY_REPEATS * DAY_MS
    append_candle = interleaved_medians(roots, CANDLE_REPEATS, lambda root, i: data.append(
        root, DATASET, make_candles(live_edge + i * 60_000, 1)))
    last_day = (live_edge - DAY_MS, live_edge)
    read_day = interleaved_medians(roots, DAY_REPEATS,
                                   lambda root, i: data.read(root, DATASET, *last_day))
    # The first candle of January: December's day files become one month file (once a month).
    new_month = interleaved_medians(roots, 1, lambda root, i: data.append(
        root, DATASET, make_candles(NEXT_MONTH, 1)))
    # Whole-history operations, O(history) by nature: for the record, not for flatness.
    read_all_s = {name: best_seconds(lambda root=root: data.read(root, DATASET))
                  for name, root in roots.items()}
    read_prices_s = {name: best_seconds(lambda root=root: data.read(root, DATASET,
                                                                   columns=PRICES))
                     for name, root in roots.items()}
    verify_s = {name: seconds(lambda root=root: data.verify(root, DATASET))
                for name, root in roots.items()}
    print()
    print(f"{'history':>10} {'rows':>10} {'parts':>6} {'build s':>8} {'append day ms':>14} "
          f"{'append 1 ms':>12} {'read day ms':>12} {'new month ms':>13} {'read all s':>11} "
          f"{'read 5 cols s':>14} {'verify s':>9}")
    for name, root in roots.items():
        manifest = data.load_manifest(root, DATASET)
        assert manifest is not None
        assert data.read(root, DATASET, *last_day).height == 1440
        print(f"{name:>10} {manifest.rows:>10,} {len(manifest.partitions):>6} "
              f"{build[name]:>8.1f} {append_day[name]:>14.2f} {append_candle[name]:>12.2f} "
              f"{read_day[name]:>12.2f} {new_month[name]:>13.2f} {read_all_s[name]:>11.3f} "
              f"{read_prices_s[name]:>14.3f} {verify_s[name]:>9.2f}")
    for what, medians in (("append day", append_day), ("append candle", append_candle),
                          ("read last day", read_day)):
        ratio = medians["10 years"] / medians["1 year"]
        print(f"{what}: ten years / one year = {ratio:.2f}")
        # Flat means no growth with history; 2x leaves room for noise on a busy machine.
        assert ratio < 2.0, f"{what} grows with history: {medians}"
