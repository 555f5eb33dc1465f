"""Benchmark: the headline of bench_backtest.py (issue 18, item 2), paired for a shared machine.

`sfarm backtest` in process from the dataset (read, indicators, signals, simulation, metrics and
the rich report to a null device) against vectorbt's pipeline on pandas Series already in
memory, SMA(10)/SMA(30) crossover, fee 0, at each size of SFARM_BENCH_SIZES (default 2e6, 1e7).
The two alternate A B A B for SFARM_BENCH_RUNS pairs (default 7) after one warm-up each; each
pair's ratio is taken and the median printed with the medians of both and the load average:
a loaded machine's speed drifts between runs, so best-of blocks of one engine then the other
compare two different machines. With stops (0.5% stop loss and trailing stop) the engines make
different trades: those figures are reported, not compared.

Run: `pytest tests/benchmarks/bench_backtest_paired.py -p no:cacheprovider -o addopts="" -s`.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm.data import append, read
from tests.benchmarks.bench_backtest import (
    DATASET,
    pandas_columns,
    random_walk_frame,
    sfarm_pipeline,
    strategy_file,
    vectorbt_pipeline,
)


def _sizes() -> list[int]:
    raw = os.environ.get("SFARM_BENCH_SIZES", "2e6,1e7")
    return [int(float(part)) for part in raw.split(",") if part.strip()]


def _runs() -> int:
    return int(os.environ.get("SFARM_BENCH_RUNS", "7"))


def _seconds(work: Callable[[], object]) -> float:
    gc.collect()
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("stops", [False, True], ids=["no-stops", "sl+trailing"])
def test_bench_backtest_paired(tmp_path: Path, stops: bool) -> None:
    strategy = strategy_file(tmp_path, stops)
    lines = [f"\nsfarm from the dataset vs vectorbt in memory, {'stops' if stops else 'no stops'}"
             f", medians of {_runs()} pairs A B"]
    for n in _sizes():
        root = tmp_path / f"root{n}"
        append(root, DATASET, random_walk_frame(n))
        columns = pandas_columns(read(root, DATASET))
        ours, theirs = [], []
        sfarm_pipeline(root, strategy), vectorbt_pipeline(columns, stops)  # warm-up
        for _ in range(_runs()):
            ours.append(_seconds(lambda: sfarm_pipeline(root, strategy)))  # noqa: B023
            theirs.append(_seconds(lambda: vectorbt_pipeline(columns, stops)))  # noqa: B023
        ratios = [v / s for s, v in zip(ours, theirs, strict=True)]
        lines.append(f"{n:>11,} candles: sfarm {statistics.median(ours):.3f} s, vectorbt "
                     f"{statistics.median(theirs):.3f} s, ratio {statistics.median(ratios):.2f}x"
                     f" (pairs {', '.join(f'{r:.2f}' for r in ratios)}; load "
                     f"{os.getloadavg()[0]:.1f})")
        columns.clear()
    print("\n".join(lines))
