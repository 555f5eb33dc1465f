"""Benchmark: what `--json` adds to `sfarm backtest` on a large result (issue 18, item 3).

`sfarm backtest` as a process on SFARM_BENCH_JSON_ROWS (default 2e6) 1m candles, SMA(10)/SMA(30)
crossover (about 39k trades), with and without `--json`, stdout to a file as a script would
take it; the two alternate for SFARM_BENCH_JSON_ROUNDS rounds (default 5). Medians, their ratio
and the median of each pair's ratio (target: at most 1.10), and the document's size. The
document is checked to hold SPEC's keys and the whole trade list.

Run: `pytest tests/benchmarks/bench_backtest_json.py -s -o addopts="" -p no:cacheprovider`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sfarm.data import append
from tests.benchmarks.bench_backtest import CASH, DATASET, random_walk_frame, strategy_file

SPEC_TRADE_KEYS = {"side", "entry_ts", "exit_ts", "entry_price", "exit_price", "size", "pnl"}


def _rows() -> int:
    return int(float(os.environ.get("SFARM_BENCH_JSON_ROWS", "2e6")))


def _rounds() -> int:
    return int(os.environ.get("SFARM_BENCH_JSON_ROUNDS", "5"))


def run_command(root: Path, strategy: Path, out: Path, as_json: bool) -> float:
    """Seconds `sfarm backtest` takes as a process, its stdout written to `out`."""
    command = [sys.executable, "-m", "sfarm", "backtest", str(strategy), "--root", str(root),
               "--exchange", "bench", "--market", "BTC/USDT", "--timeframe", "1m",
               "--cash", str(CASH), *(["--json"] if as_json else [])]
    with out.open("wb") as sink:
        began = time.perf_counter()
        subprocess.run(command, stdout=sink, check=True, env={**os.environ})
        return time.perf_counter() - began


@pytest.mark.timeout(3600)
def test_bench_backtest_json(tmp_path: Path) -> None:
    n = _rows()
    append(tmp_path, DATASET, random_walk_frame(n))
    strategy = strategy_file(tmp_path, stops=False)
    out = tmp_path / "out"
    run_command(tmp_path, strategy, out, True)  # numba's cache and the page cache warm
    plain, with_json = [], []
    for _ in range(_rounds()):
        plain.append(run_command(tmp_path, strategy, out, False))
        with_json.append(run_command(tmp_path, strategy, out, True))
    document = json.loads(out.read_bytes())
    assert len(document["trade_list"]) == document["trades"] > 0
    assert set(document["trade_list"][0]) >= SPEC_TRADE_KEYS
    ratio = statistics.median(with_json) / statistics.median(plain)
    pairs = statistics.median(j / p for p, j in zip(plain, with_json, strict=True))
    print(f"\n`sfarm backtest` on {n:,} candles ({document['trades']:,} trades), medians of "
          f"{len(plain)}: without --json {statistics.median(plain):.2f} s, with --json "
          f"{statistics.median(with_json):.2f} s ({out.stat().st_size / 1e6:.1f} MB): ratio "
          f"{ratio:.3f}, median of the pairs' ratios {pairs:.3f} "
          f"(plain {', '.join(f'{x:.2f}' for x in plain)}; json "
          f"{', '.join(f'{x:.2f}' for x in with_json)}; load {os.getloadavg()[0]:.1f})")


@pytest.mark.timeout(3600)
def test_bench_backtest_json_in_process(tmp_path: Path) -> None:
    """The same in one process, steadier on a loaded machine: the backtest and its report to a
    null device (the command without --json) against the backtest and its document written to
    a file by `print_json` as the command does (the trade list encoded by polars), and as
    before (the trade list built as Python dicts for orjson)."""
    from contextlib import redirect_stdout

    from rich.console import Console

    from sfarm.cli.backtest import render
    from sfarm.cli.console import print_json
    from sfarm.trading.backtest import BacktestResult, backtest

    n = _rows()
    append(tmp_path, DATASET, random_walk_frame(n))
    strategy = strategy_file(tmp_path, stops=False)
    out = tmp_path / "out.json"

    def run() -> BacktestResult:
        return backtest(tmp_path, strategy, exchange="bench", market="BTC/USDT",
                        timeframe="1m", cash=CASH)

    def report() -> None:
        with open(os.devnull, "w") as sink:
            render(run(), Console(file=sink))

    def document() -> None:
        with out.open("w") as sink, redirect_stdout(sink):
            print_json(run().to_json(encoded_trades=True))

    def document_dicts() -> None:
        with out.open("w") as sink, redirect_stdout(sink):
            print_json(run().to_json())

    run()  # numba's kernels loaded
    times: dict[str, list[float]] = {"report": [], "json": [], "json (dicts)": []}
    for _ in range(_rounds()):
        for name, work in (("report", report), ("json", document),
                           ("json (dicts)", document_dicts)):
            began = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"\nin process, {n:,} candles, medians of {_rounds()}: backtest + report "
          f"{medians['report']:.3f} s; + --json document {medians['json']:.3f} s (ratio "
          f"{medians['json'] / medians['report']:.3f}); the trade list as dicts (before) "
          f"{medians['json (dicts)']:.3f} s (ratio "
          f"{medians['json (dicts)'] / medians['report']:.3f}); load "
          f"{os.getloadavg()[0]:.1f}")
