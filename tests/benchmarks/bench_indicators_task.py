"""Benchmark: the `indicators` task end to end on a long 1m history, then one-candle steps.

1. Input: SFARM_BENCH_TASK_ROWS (default 1e7) 1m candles of a random walk (~19 years), written
   through `sfarm.data.append` 1e6 rows a batch (the miner's part: timed, not the task's).
2. Catch-up: `catch_up` (the task's own loop) computes six indicators from no state and writes
   their datasets: wall time, candles/s, and where the time goes: the task's phases
   (`PhaseTimes`: manifests, read, update, state JSON, write) and, inside update, TA-Lib
   (`compute_arrays`) and the state read off its outputs (`seed_from_outputs`), timed by
   wrapping those two functions for the run.
   Reference in the same run (issue 18): TA-Lib's functions for the six on numpy arrays plus
   polars' `write_parquet` of the same output columns (ts and the indicator columns), one file
   per dataset, polars' defaults (zstd) and, beside it, LZ4 as the store writes. Catch-up and
   reference alternate (SFARM_BENCH_TASK_ROUNDS, default 2, catch-ups from no state; one more
   reference round); medians and their ratio.
3. Steps: SFARM_BENCH_TASK_STEPS (default 20) times, one new candle is appended to the input
   (timed apart: the reference, a single-dataset one-candle append), then `advance_all` over the
   six jobs, as each round of the task does: read the new candle, update every indicator, commit
   each with its state (one group commit). ms per step, per phase, ratio of the medians.

Run: `pytest tests/benchmarks/bench_indicators_task.py -s -o addopts=""`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import talib

from sfarm import data
from sfarm.indicators import incremental
from sfarm.indicators.task import EXTRA_KEY, PhaseTimes, advance_all, catch_up, plan_jobs
from tests.fixtures.series import MINUTE_MS, minute_walk

SPECS = ["sma(20)", "ema(50)", "rsi(14)", "macd(12,26,9)", "bbands(20,2)", "atr(14)"]
BATCH_ROWS = 1_000_000


def _rows() -> int:
    return int(float(os.environ.get("SFARM_BENCH_TASK_ROWS", "1e7")))


def _steps() -> int:
    return int(os.environ.get("SFARM_BENCH_TASK_STEPS", "20"))


def _rounds() -> int:
    return int(os.environ.get("SFARM_BENCH_TASK_ROUNDS", "2"))


def reference(candles: pl.DataFrame, directory: Path, compression: str) -> float:
    """TA-Lib's functions for SPECS on numpy arrays, then polars' write_parquet of each
    output (ts and its columns), one file per dataset; seconds."""
    began = time.perf_counter()
    ts = candles["ts"]
    high, low, close = (candles[c].to_numpy() for c in ("high", "low", "close"))
    macd = talib.MACD(close, 12, 26, 9)
    bbands = talib.BBANDS(close, 20, 2.0, 2.0)
    outputs: dict[str, dict[str, np.ndarray]] = {
        "sma": {"sma_20": talib.SMA(close, 20)},
        "ema": {"ema_50": talib.EMA(close, 50)},
        "rsi": {"rsi_14": talib.RSI(close, 14)},
        "macd": dict(zip(("macd", "macd_signal", "macd_hist"), macd, strict=True)),
        "bbands": dict(zip(("bb_upper", "bb_middle", "bb_lower"), bbands, strict=True)),
        "atr": {"atr_14": talib.ATR(high, low, close, 14)},
    }
    for name, columns in outputs.items():
        pl.DataFrame({"ts": ts, **columns}).write_parquet(directory / f"{name}.parquet",
                                                         compression=compression)
    return time.perf_counter() - began


class Stopwatch:
    """Wraps functions so that the seconds spent in them add up under a name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        self.seconds.setdefault(name, 0.0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - began
        return timed


def build_input(root: Path, dataset_id: str, n: int) -> float:
    """`n` 1m candles through the store, BATCH_ROWS a batch; returns the seconds it took."""
    candles = minute_walk(n)
    began = time.perf_counter()
    for first in range(0, n, BATCH_ROWS):
        data.append(root, dataset_id, candles[first:first + BATCH_ROWS])
    return time.perf_counter() - began


def _print_phases(title: str, wall: float, phases: dict[str, float], unit: float,
                  unit_name: str) -> None:
    print(f"\n{title}")
    print(f"{'phase':<34} {unit_name:>10} {'share':>7}")
    for name, seconds in phases.items():
        print(f"{name:<34} {seconds * unit:>10.2f} {seconds / wall:>7.1%}")
    print(f"{'wall':<34} {wall * unit:>10.2f}")


@pytest.mark.timeout(3600)
def test_bench_indicators_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n, steps = _rows(), _steps()
    jobs = plan_jobs("bench", ["BTC/USDT"], ["1m"], SPECS)
    input_id = jobs[0].input_id
    build_s = build_input(tmp_path, input_id, n)
    print(f"\ninput: {n:,} 1m candles written in {build_s:.1f} s "
          f"({n / build_s:,.0f} rows/s through data.append, {BATCH_ROWS:,} a batch)")

    candles = data.read(tmp_path, input_id)
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    zstd_s = [reference(candles, reference_dir, "zstd")]
    lz4_s = [reference(candles, reference_dir, "lz4")]
    del candles
    catch_up_s = []
    for round_ in range(_rounds()):
        if round_:  # from no state again: the previous round's outputs go
            shutil.rmtree(tmp_path / "data" / "indicators")
        watch = Stopwatch()
        monkeypatch.setattr(incremental, "compute_arrays",
                            watch.wrap("compute", incremental.compute_arrays))
        monkeypatch.setattr(incremental, "seed_from_outputs",
                            watch.wrap("state", incremental.seed_from_outputs))
        times = PhaseTimes()
        began = time.perf_counter()
        processed = catch_up(tmp_path, jobs, times=times)
        wall = time.perf_counter() - began
        catch_up_s.append(wall)
        monkeypatch.undo()
        assert processed == n * len(SPECS)
        print(f"\ncatch-up {round_ + 1}: {len(SPECS)} indicators ({', '.join(SPECS)}) over "
              f"{n:,} candles: {wall:.1f} s, {n / wall:,.0f} candles/s "
              f"({processed / wall:,.0f} indicator rows/s)")
        other_update = times.update - watch.seconds["compute"] - watch.seconds["state"]
        _print_phases("where the catch-up time goes", wall, {
            "manifests (input, saved state)": times.locate,
            "read candles (once per round)": times.read,
            "update: TA-Lib compute": watch.seconds["compute"],
            "update: state from TA-Lib outputs": watch.seconds["state"],
            "update: rest (inputs, output frame)": other_update,
            "state to JSON": times.encode,
            "write (data.append_many, 6 datasets)": times.write,
            "loop": wall - times.total,
        }, 1.0, "s")
        candles = data.read(tmp_path, input_id)
        zstd_s.append(reference(candles, reference_dir, "zstd"))
        lz4_s.append(reference(candles, reference_dir, "lz4"))
        del candles
    catch_up_median = statistics.median(catch_up_s)
    print(f"\ncatch-up vs TA-Lib + polars write_parquet, one file per dataset (medians of "
          f"{len(catch_up_s)} / {len(zstd_s)}): catch-up {catch_up_median:.2f} s; reference "
          f"zstd (polars' default) {statistics.median(zstd_s):.2f} s: ratio "
          f"{catch_up_median / statistics.median(zstd_s):.2f}; reference lz4 "
          f"{statistics.median(lz4_s):.2f} s: ratio "
          f"{catch_up_median / statistics.median(lz4_s):.2f} "
          f"(catch-ups {', '.join(f'{x:.2f}' for x in catch_up_s)}; zstd "
          f"{', '.join(f'{x:.2f}' for x in zstd_s)}; lz4 {', '.join(f'{x:.2f}' for x in lz4_s)})")

    last_ts = data.load_manifest(tmp_path, input_id, with_partitions=False).last_ts
    extra = minute_walk(steps, seed=7)
    step_times = PhaseTimes()
    append_ms, step_ms = [], []
    for i in range(steps):
        candle = extra[i:i + 1].with_columns(
            ts=pl.lit(last_ts + (i + 1) * MINUTE_MS, dtype=pl.Int64))
        began = time.perf_counter()
        data.append(tmp_path, input_id, candle)
        append_ms.append((time.perf_counter() - began) * 1e3)
        began = time.perf_counter()
        assert advance_all(tmp_path, jobs, times=step_times) == len(SPECS)
        step_ms.append((time.perf_counter() - began) * 1e3)
    paired = statistics.median(step / one for step, one in zip(step_ms, append_ms, strict=True))
    print(f"\none new candle on a {n:,}-candle history, {steps} steps: "
          f"append the candle to the input: median {statistics.median(append_ms):.1f} ms; "
          f"task step (all {len(SPECS)} indicators): median {statistics.median(step_ms):.1f} ms, "
          f"worst {max(step_ms):.1f} ms; ratio of the medians "
          f"{statistics.median(step_ms) / statistics.median(append_ms):.2f}, median of the "
          f"ratios step / the append just before it {paired:.2f} (load average "
          f"{os.getloadavg()[0]:.1f})")
    _print_phases("where a step's time goes (mean per step)", sum(step_ms) / 1e3 / steps, {
        "manifests (input, saved states)": step_times.locate / steps,
        "read the new candle (once)": step_times.read / steps,
        "update (6 indicators)": step_times.update / steps,
        "state to JSON": step_times.encode / steps,
        "write (6 commits with state, grouped)": step_times.write / steps,
    }, 1e3, "ms")

    for job in jobs:
        manifest = data.load_manifest(tmp_path, job.output_id, with_partitions=False)
        assert manifest is not None and manifest.rows == n + steps
        assert manifest.extra[EXTRA_KEY]["state"]["rows"] == n + steps
