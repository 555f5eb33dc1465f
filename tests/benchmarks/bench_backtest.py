"""Benchmark: bars/s of an SMA(10)/SMA(30) crossover backtest, end to end, beside vectorbt and
backtesting.py, with and without a stop loss and a trailing stop.

For each size (default 2e6 and 1e7 one-minute candles of a random walk; override with
SFARM_BENCH_SIZES=1e5,1e6), the candles are written once with `sfarm.data.append` to a data
root (not timed), then, best of SFARM_BENCH_REPEATS (default 3) runs each, in one process:
  * sfarm, dataset: `sfarm.trading.backtest.backtest(root, ...)` and the rich report of
    `sfarm backtest` (read the dataset, sma(10) and sma(30), conditions, simulation, metrics);
    the same from one Parquet file, and from candles already in memory; a breakdown by stage;
  * vectorbt: `vbt.MA.run` twice, crossed_above/below, `Portfolio.from_signals`, and its
    final value, return, Sharpe, max drawdown and trade count; signals shifted one candle and
    filled at the open, as sfarm does; from memory, and reading the same dataset first;
  * backtesting.py (`FractionalBacktest`, on the first 1e5 candles only: it is a Python loop).
Final equities are printed side by side. Then the simulation alone on the largest size: the
numba kernel against numpy- and polars-vectorized versions (possible only without stops) and
the same kernel run as plain Python (on 1e5 candles). The same comparison as processes (the
`sfarm backtest` command against a vectorbt script reading the same Parquet files) is
bench_backtest_process.py.

Run: `pytest tests/benchmarks/bench_backtest.py -s -o addopts=""`.
"""

from __future__ import annotations

import gc
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from rich.console import Console

from sfarm.cli.backtest import render
from sfarm.data import append, read
from sfarm.trading.backtest import BacktestResult, backtest, read_columns, run_backtest
from sfarm.trading.engine import Candles, EngineParams, EngineState, run
from sfarm.trading.kernel import simulate
from sfarm.trading.signals import compute_signals
from sfarm.trading.strategy import load_strategy

MINUTE_MS = 60_000
CASH = 10_000.0
# No fee: ~40k trades per 2e6 one-minute candles at 0.1% a fill would grind any equity to dust,
# where engines legitimately differ (minimum sizes), and the final equities would not compare.
FEE = 0.0
STOP = 0.005  # stop loss and trailing stop, as fractions of the entry or best price
BT_SIZE = 100_000
DATASET = "candles/bench/BTC-USDT/1m"
PRICES = ("ts", "open", "high", "low", "close")
CROSS_UP = "sma_10 > sma_30 AND LAG(sma_10) OVER (ORDER BY ts) < LAG(sma_30) OVER (ORDER BY ts)"
CROSS_DOWN = "sma_10 < sma_30 AND LAG(sma_10) OVER (ORDER BY ts) > LAG(sma_30) OVER (ORDER BY ts)"


def _sizes() -> list[int]:
    raw = os.environ.get("SFARM_BENCH_SIZES", "2e6,1e7")
    return [int(float(part)) for part in raw.split(",") if part.strip()]


def _repeats() -> int:
    return int(os.environ.get("SFARM_BENCH_REPEATS", "3"))


def random_walk_frame(n: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(scale=0.001, size=n)))
    open_ = np.r_[30_000.0, close[:-1]] * np.exp(rng.normal(scale=0.0002, size=n))
    wick = rng.random(n) * 0.002
    return pl.DataFrame({
        "ts": 1_500_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE_MS,
        "open": open_, "high": np.maximum(open_, close) * (1 + wick),
        "low": np.minimum(open_, close) * (1 - wick), "close": close,
        "volume": rng.random(n) * 5})


def strategy_file(directory: Path, stops: bool) -> Path:
    path = directory / ("sma_cross_stops.toml" if stops else "sma_cross.toml")
    extra = f"stop_loss = {STOP}\ntrailing_stop = {STOP}\n" if stops else ""
    path.write_text(f'[strategy]\nname = "sma-cross"\nindicators = ["sma(10)", "sma(30)"]\n'
                    f'entry_long = "{CROSS_UP}"\nexit_long = "{CROSS_DOWN}"\nfee = {FEE}\n'
                    f'size = 1.0\n{extra}', encoding="utf-8")
    return path


def best_of(function: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


# ---- the three pipelines -------------------------------------------------------------------

def _report(result: BacktestResult) -> tuple[float, int]:
    with open(os.devnull, "w") as sink:
        render(result, Console(file=sink))
    return result.metrics.final_equity, result.metrics.trades


def sfarm_pipeline(root: Path, strategy: Path) -> tuple[float, int]:
    """`sfarm backtest` without --json: the backtest and its rich report (to a null device)."""
    return _report(backtest(root, strategy, exchange="bench", market="BTC/USDT",
                            timeframe="1m", cash=CASH))


def sfarm_from_file(path: Path, strategy_path: Path) -> tuple[float, int]:
    """The same from one Parquet file instead of the dataset's partitions."""
    return sfarm_in_memory(pl.read_parquet(path, columns=list(PRICES)), strategy_path)


def sfarm_in_memory(frame: pl.DataFrame, strategy_path: Path) -> tuple[float, int]:
    """The same from candles already in memory: indicators, signals, simulation, report."""
    from sfarm.indicators import compute

    strategy = load_strategy(strategy_path)
    return _report(run_backtest(compute(frame, strategy.indicators), strategy, timeframe="1m",
                                cash=CASH))


def sfarm_stages(root: Path, strategy_path: Path, repeats: int) -> dict[str, float]:
    """The dataset pipeline stage by stage (best of `repeats` for each stage, seconds)."""
    from sfarm.indicators import compute
    from sfarm.trading.metrics import compute_metrics

    strategy = load_strategy(strategy_path)
    times: dict[str, float] = {}
    for _ in range(repeats):
        gc.collect()
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            times[name] = min(times.get(name, float("inf")), now - clock)
            clock = now

        frame = read_columns(root, DATASET, list(PRICES))
        lap("read")
        frame = compute(frame, strategy.indicators)
        lap("indicators")
        signals = compute_signals(frame, strategy)
        lap("signals")
        result = run(Candles.stretches(frame, signals), EngineParams.from_strategy(strategy),
                     EngineState.initial(CASH))
        lap("simulation")
        compute_metrics(result.equity, result.position, result.trades, CASH, MINUTE_MS,
                        frame["ts"][0], frame["ts"][-1])
        lap("metrics")
        del frame, signals, result
    return times


def pandas_columns(frame: pl.DataFrame) -> dict[str, pd.Series]:
    index = pd.to_datetime(frame["ts"].to_numpy(), unit="ms")
    return {name: pd.Series(frame[name].to_numpy(), index=index)
            for name in ("open", "high", "low", "close")}


def vectorbt_pipeline(columns: dict[str, pd.Series], stops: bool) -> tuple[float, int]:
    import vectorbt as vbt

    close = columns["close"]
    fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 30)
    # sfarm acts on a closed candle at the next open: shift the signals, fill at the open.
    entries = fast.ma_crossed_above(slow).shift(1, fill_value=False)
    exits = fast.ma_crossed_below(slow).shift(1, fill_value=False)
    options = {"open": columns["open"], "high": columns["high"], "low": columns["low"],
               "sl_stop": STOP, "sl_trail": True} if stops else {}
    portfolio = vbt.Portfolio.from_signals(close, entries, exits, price=columns["open"],
                                           fees=FEE, init_cash=CASH, freq="1min", **options)
    final = float(portfolio.final_value())
    portfolio.total_return(), portfolio.sharpe_ratio(), portfolio.max_drawdown()
    return final, int(portfolio.trades.count())


def vectorbt_with_read(root: Path, stops: bool) -> tuple[float, int]:
    return vectorbt_pipeline(pandas_columns(read(root, DATASET)), stops)


def backtesting_py(frame: pl.DataFrame, stops: bool) -> tuple[float, int]:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    from sfarm.indicators import compute

    with_sma = compute(frame, ["sma(10)", "sma(30)"])
    fast_values, slow_values = with_sma["sma_10"].to_numpy(), with_sma["sma_30"].to_numpy()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(lambda: fast_values)
            self.slow = self.I(lambda: slow_values)
            self.highest = 0.0

        def next(self) -> None:
            if stops and self.trades:
                # Trailing stop from the highs seen so far (FractionalBacktest scales prices).
                trade = self.trades[-1]
                high = self.data.High[-1]
                self.highest = max(self.highest if trade.entry_bar < len(self.data) - 1
                                   else trade.entry_price, high)
                trade.sl = max(trade.entry_price, self.highest) * (1 - STOP)
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy(size=0.9999)
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    index = pd.to_datetime(frame["ts"].to_numpy(), unit="ms")
    data = pd.DataFrame({"Open": frame["open"].to_numpy(), "High": frame["high"].to_numpy(),
                         "Low": frame["low"].to_numpy(), "Close": frame["close"].to_numpy(),
                         "Volume": frame["volume"].to_numpy()}, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = FractionalBacktest(data, SmaCross, cash=CASH, commission=FEE).run()
    return float(stats["Equity Final [$]"]), int(stats["# Trades"])


# ---- simulation-only kernels ---------------------------------------------------------------

def numpy_long_only(candles: Candles, fee: float) -> float:
    """Final equity of the stop-free rules, vectorized with numpy (no stops possible)."""
    n = len(candles)
    code = np.full(n, -1, dtype=np.int8)  # after each close: 1 want long, 0 want flat, -1 keep
    code[candles.exit_long] = 0
    code[candles.entry_long & ~candles.exit_long] = 1
    last = np.where(code >= 0, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    wanted = np.where(last >= 0, code[np.maximum(last, 0)], 0)
    held = np.r_[0, wanted[:-1]]  # position during candle i, filled at its open
    change = np.diff(np.r_[0, held])
    entries, exits = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    exits = exits[: len(entries)]
    factors = candles.open[exits] * (1 - fee) / (candles.open[entries[: len(exits)]] * (1 + fee))
    equity = CASH * np.prod(factors)
    if len(entries) > len(exits):  # still open: marked at the last close
        equity = equity / (candles.open[entries[-1]] * (1 + fee)) * candles.close[-1]
    return float(equity)


def polars_long_only(candles: Candles, fee: float) -> float:
    """The same with polars expressions (forward fill of the wanted position)."""
    frame = pl.DataFrame({"open": candles.open, "entry": candles.entry_long,
                          "exit": candles.exit_long})
    held = frame.select(
        pl.when(pl.col("exit")).then(0).when(pl.col("entry")).then(1).otherwise(None)
        .forward_fill().fill_null(0).shift(1, fill_value=0).alias("held"), "open")
    changes = held.with_columns(pl.col("held").diff().fill_null(pl.col("held")).alias("change"))
    entries = changes.filter(pl.col("change") == 1)["open"].to_numpy()
    exits = changes.filter(pl.col("change") == -1)["open"].to_numpy()
    factors = exits * (1 - fee) / (entries[: len(exits)] * (1 + fee))
    equity = CASH * float(np.prod(factors))
    if len(entries) > len(exits):
        equity = equity / (entries[-1] * (1 + fee)) * candles.close[-1]
    return equity


def numba_final(candles: Candles, params: EngineParams) -> float:
    return float(run(candles, params, EngineState.initial(CASH)).equity[-1])


def python_loop_rate(candles: Candles, params: EngineParams) -> float:
    size = min(len(candles), BT_SIZE)
    part = candles.slice(0, size)
    state = EngineState.initial(CASH).to_array()
    equity, position = np.empty(size), np.empty(size)
    start = time.perf_counter()
    simulate.py_func(part.ts, part.open, part.high, part.low, part.close, part.entry_long,
                     part.exit_long, part.entry_short, part.exit_short, params.to_array(),
                     state, equity, position)
    return size / (time.perf_counter() - start)


# ---- the benchmark -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    made = {}
    for n in _sizes():
        root = tmp_path_factory.mktemp(f"bench{n}")
        start = time.perf_counter()
        append(root, DATASET, random_walk_frame(n))
        print(f"\nwrote {n:,} candles with sfarm.data.append in {time.perf_counter() - start:.1f}s")
        made[n] = root
    return made


def row(engine: str, n: int, seconds: float, final: float, trades: int) -> str:
    return (f"{engine:<28} {n:>11,} {seconds:>9.3f} {n / seconds:>13,.0f} {final:>17.10g} "
            f"{trades:>8,}")


def compare_at(n: int, root: Path, strategy: Path, stops: bool, repeats: int) -> list[str]:
    lines = []
    ours, (final, trades) = best_of(lambda: sfarm_pipeline(root, strategy), repeats)
    lines.append(row("sfarm, dataset", n, ours, final, trades))
    frame = read(root, DATASET)
    parquet = root / "candles.parquet"
    frame.write_parquet(parquet)
    seconds, (final, trades) = best_of(lambda: sfarm_from_file(parquet, strategy), repeats)
    lines.append(row("sfarm, one Parquet file", n, seconds, final, trades))
    in_memory, (final, trades) = best_of(lambda: sfarm_in_memory(frame, strategy), repeats)
    lines.append(row("sfarm, in memory", n, in_memory, final, trades))
    columns = pandas_columns(frame)
    theirs, (v_final, v_trades) = best_of(lambda: vectorbt_pipeline(columns, stops), repeats)
    lines.append(row("vectorbt, in memory", n, theirs, v_final, v_trades))
    columns.clear()
    theirs_read, _ = best_of(lambda: vectorbt_with_read(root, stops), repeats)
    lines.append(row("vectorbt, dataset", n, theirs_read, v_final, v_trades))
    stages = sfarm_stages(root, strategy, repeats)
    lines.append("    sfarm stages (dataset): "
                 + ", ".join(f"{k} {v:.3f}s" for k, v in stages.items()))
    lines.append(f"    sfarm / vectorbt bars/s: {theirs_read / ours:.2f}x both reading the dataset,"
                 f" {theirs / in_memory:.2f}x both in memory, {theirs / ours:.2f}x sfarm from the"
                 " dataset vs vectorbt in memory")
    parquet.unlink()
    return lines


@pytest.mark.parametrize("stops", [False, True], ids=["no-stops", "sl+trailing"])
def test_bench_backtest(roots: dict[int, Path], tmp_path: Path, stops: bool) -> None:
    repeats = _repeats()
    strategy = strategy_file(tmp_path, stops)
    smallest = min(roots)
    # Warm up: numba kernels (cached on disk after the first compile) and vectorbt's.
    sfarm_pipeline(roots[smallest], strategy)
    vectorbt_pipeline(pandas_columns(read(roots[smallest], DATASET).head(10_000)), stops)
    title = "with a stop loss and a trailing stop" if stops else "no stops"
    header = (f"{'engine':<28} {'candles':>11} {'seconds':>9} {'bars/s':>13} "
              f"{'final equity':>17} {'trades':>8}")
    lines = [f"\nSMA(10)/SMA(30) crossover, {title}, best of {repeats}", header]
    for n, root in sorted(roots.items()):
        lines += compare_at(n, root, strategy, stops, repeats)
    frame = read(roots[smallest], DATASET).head(BT_SIZE)
    bt_root = tmp_path / "bt"
    append(bt_root, DATASET, frame)
    seconds, (final, trades) = best_of(lambda: sfarm_pipeline(bt_root, strategy), repeats)
    lines.append(row("sfarm, dataset", BT_SIZE, seconds, final, trades))
    seconds, (final, trades) = best_of(lambda: sfarm_in_memory(frame, strategy), repeats)
    lines.append(row("sfarm, in memory", BT_SIZE, seconds, final, trades))
    columns = pandas_columns(frame)
    seconds, (final, trades) = best_of(lambda: vectorbt_pipeline(columns, stops), repeats)
    lines.append(row("vectorbt, in memory", BT_SIZE, seconds, final, trades))
    seconds, (final, trades) = best_of(lambda: backtesting_py(frame, stops), 1)
    lines.append(row("backtesting.py, in memory", BT_SIZE, seconds, final, trades))
    print("\n".join(lines))


def test_bench_simulation_kernels(roots: dict[int, Path], tmp_path: Path) -> None:
    """The simulation alone (signals precomputed): which way to write the loop."""
    from sfarm.indicators import compute

    repeats = _repeats()
    n = max(roots)
    strategy = load_strategy(strategy_file(tmp_path, stops=False))
    frame = compute(read(roots[n], DATASET), strategy.indicators)
    candles = Candles.from_frame(frame, compute_signals(frame, strategy))
    plain = EngineParams(fee=FEE)
    stopped = EngineParams(fee=FEE, stop_loss=STOP, trailing_stop=STOP)
    numba_final(candles.slice(0, 1000), plain)  # load the compiled kernel
    lines = [f"\nsimulation only, {n:,} candles, best of {repeats}",
             f"{'kernel':<36} {'bars/s':>15} {'final equity':>17}"]
    for label, function in [
        ("numba loop (engine.run)", lambda: numba_final(candles, plain)),
        ("numba loop, sl + trailing", lambda: numba_final(candles, stopped)),
        ("numpy vectorized (no stops only)", lambda: numpy_long_only(candles, FEE)),
        ("polars vectorized (no stops only)", lambda: polars_long_only(candles, FEE)),
    ]:
        seconds, final = best_of(function, repeats)
        lines.append(f"{label:<36} {n / seconds:>15,.0f} {final:>17.10g}")
    lines.append(f"{'python loop (same kernel, 1e5)':<36} "
                 f"{python_loop_rate(candles, plain):>15,.0f}")
    print("\n".join(lines))
