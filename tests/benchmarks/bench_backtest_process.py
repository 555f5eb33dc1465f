"""Benchmark: `sfarm backtest` as a process against a vectorbt script as a process, both reading
the same Parquet files (issue 18, item 2).

For each size (SFARM_BENCH_SIZES, default 2e6 and 1e7 one-minute candles of a random walk),
the candles are written once with `sfarm.data.append` (not timed). Then, SMA(10)/SMA(30)
crossover without stops, fee 0:
  * sfarm: `python -m sfarm backtest STRATEGY --root ROOT ...`, its report to a null device;
  * vectorbt: a script (VECTORBT_SCRIPT) that reads the dataset's Parquet files with pyarrow
    into pandas, runs the pipeline of bench_backtest.vectorbt_pipeline and prints its final
    value, return, Sharpe, max drawdown and closed trades.
As users run them: bytecode caching on (PYTHONDONTWRITEBYTECODE unset), numba's caches warm
(one warm-up run each). The two alternate A B A B for SFARM_BENCH_RUNS pairs (default 5); each
pair's ratio is taken and the medians printed with the load average (a shared machine's speed
drifts: pairs, not separate series). Both must agree on the closed trades and the
final equity (to the cent the report shows).

Run: `pytest tests/benchmarks/bench_backtest_process.py -p no:cacheprovider -o addopts="" -s`.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfarm.data import append
from sfarm.data.layout import dataset_dir
from tests.benchmarks.bench_backtest import CASH, DATASET, FEE, random_walk_frame, strategy_file

# A user's vectorbt script over the dataset's files (names sort by time: YYYY-MM[-DD]...).
VECTORBT_SCRIPT = """\
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pandas as pd
import vectorbt as vbt

files = sorted(str(path) for path in Path(sys.argv[1]).glob("*.parquet"))
frame = pq.read_table(files, columns=["ts", "open", "close"]).to_pandas()
frame.index = pd.to_datetime(frame.pop("ts"), unit="ms")
close = frame["close"]
fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 30)
entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
portfolio = vbt.Portfolio.from_signals(close, entries, exits, price=frame["open"],
                                       fees={fee}, init_cash={cash}, freq="1min")
print(float(portfolio.final_value()), portfolio.total_return(), portfolio.sharpe_ratio(),
      portfolio.max_drawdown(), int(portfolio.trades.closed.count()))
"""


def _sizes() -> list[int]:
    raw = os.environ.get("SFARM_BENCH_SIZES", "2e6,1e7")
    return [int(float(part)) for part in raw.split(",") if part.strip()]


def _runs() -> int:
    return int(os.environ.get("SFARM_BENCH_RUNS", "5"))


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return time.perf_counter() - began, done.stdout


@pytest.mark.timeout(7200)
def test_bench_backtest_processes(tmp_path: Path) -> None:
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # users have bytecode caching on
    strategy = strategy_file(tmp_path, stops=False)
    script = tmp_path / "vectorbt_sma_cross.py"
    script.write_text(VECTORBT_SCRIPT.format(fee=FEE, cash=CASH), encoding="utf-8")
    lines = [f"\n`sfarm backtest` vs a vectorbt script, as processes, SMA(10)/SMA(30) without "
             f"stops, medians of {_runs()} pairs"]
    for n in _sizes():
        root = tmp_path / f"root{n}"
        append(root, DATASET, random_walk_frame(n))
        ours = [sys.executable, "-m", "sfarm", "backtest", str(strategy), "--root", str(root),
                "--exchange", "bench", "--market", "BTC/USDT", "--timeframe", "1m",
                "--cash", str(CASH)]
        theirs = [sys.executable, str(script), str(dataset_dir(root, DATASET))]
        _, report = _timed(ours, env)  # warm-up: numba's caches, the page cache
        _, printed = _timed(theirs, env)
        final, trades = float(printed.split()[0]), int(printed.split()[-1])
        reported = re.search(r"^trades\s+(\d+)\s*$", report, re.MULTILINE)
        assert reported is not None and int(reported[1]) == trades, (report, printed)
        assert f"final equity {final:,.2f}".split() in [line.split() for line in
                                                       report.splitlines()], (report, printed)
        sfarm_times, vectorbt_times = [], []
        for _ in range(_runs()):
            sfarm_times.append(_timed(ours, env)[0])
            vectorbt_times.append(_timed(theirs, env)[0])
        ratios = [v / s for s, v in zip(sfarm_times, vectorbt_times, strict=True)]
        lines.append(
            f"{n:>11,} candles ({trades:,} trades): sfarm {statistics.median(sfarm_times):.2f} s, "
            f"vectorbt {statistics.median(vectorbt_times):.2f} s, ratio (median of pairs) "
            f"{statistics.median(ratios):.2f}x (pairs {', '.join(f'{r:.2f}' for r in ratios)}; "
            f"load {os.getloadavg()[0]:.1f})")
    print("\n".join(lines))
