"""The engine's kernels run as numba-compiled code for large runs and as their own Python source
for small ones (sfarm.trading.jit): both must give exactly the same trades, books and state,
and the same metrics, on the same inputs; and a small backtest must not load numba (or pandas,
through TA-Lib) at all."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from sfarm.trading.jit import INTERPRETED_BELOW
from sfarm.trading.kernel import STATE_FIELDS, simulate
from sfarm.trading.metrics import equity_stats
from tests.fixtures.cli import sfarm_env
from tests.fixtures.processes import PROJECT


def _inputs(seed: int, n: int, stops: bool, shorts: bool) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0, 0.004, n)) + 1
    high, low = np.maximum(open_, close) * spread, np.minimum(open_, close) / spread
    ts = np.arange(n, dtype=np.int64) * 60_000 + 1_700_000_000_000
    flags = [rng.random(n) < 0.05 for _ in range(4)]
    params = np.array([0.001, 0.0005, 0.02 if stops else 0.0, 0.03 if stops else 0.0,
                       0.015 if stops else 0.0, 0.5, 0.0, 1.0 if shorts else 0.0])
    arrays = [ts, open_, high, low, close, *flags]
    for array in arrays:
        array.setflags(write=False)  # as the engine hands them over (one numba signature)
    return arrays, params


def _run(kernel: object, arrays: list[np.ndarray], params: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = len(arrays[0])
    state = np.zeros(len(STATE_FIELDS))
    state[0], state[9] = 10_000.0, -1.0
    equity, position = np.empty(n), np.empty(n)
    rows, count = kernel(*arrays, params, state, equity, position)  # type: ignore[operator]
    return rows[:count], equity, position, state


@pytest.mark.parametrize("stops", [False, True])
@pytest.mark.parametrize("shorts", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_source_and_the_compiled_kernel_agree_exactly(seed: int, stops: bool,
                                                           shorts: bool) -> None:
    arrays, params = _inputs(seed, 3_000, stops, shorts)
    source = _run(simulate.py_func, arrays, params)
    compiled = _run(simulate.compiled(), arrays, params)
    assert len(source[0]) > 10  # trades were made, stops hit where there are stops
    for ours, theirs in zip(source, compiled, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("values", [
    [10_000.0, 10_100.0, 9_900.0, 10_500.0, 10_400.0],
    [100.0, 0.0, 50.0, 75.0],  # a return after an equity of 0 is not finite: left out
    [100.0, float("nan"), 90.0, 120.0],
    [],
])
def test_equity_stats_agree_in_both_forms(values: list[float]) -> None:
    equity = np.array(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        source = equity_stats.py_func(equity, 10_000.0)
    compiled = equity_stats.compiled()(equity, 10_000.0)
    np.testing.assert_array_equal(np.array(source, dtype=np.float64),
                                  np.array(compiled, dtype=np.float64))


def test_large_runs_compile_and_small_runs_do_not() -> None:
    assert simulate.for_size(INTERPRETED_BELOW - 1) is simulate.py_func
    assert simulate.for_size(INTERPRETED_BELOW) is simulate.compiled()
    # Compiled once, a kernel is still reached through its module by name, in both forms.
    from sfarm.trading import kernel, metrics

    assert kernel.simulate is simulate
    metrics.max_drawdown(np.array([1.0, 2.0, 1.0]), 1.0)
    metrics.equity_stats.compiled()
    assert metrics.max_drawdown(np.ones(INTERPRETED_BELOW), 1.0) == 0.0


def test_a_small_backtest_loads_neither_numba_nor_pandas() -> None:
    probe = textwrap.dedent("""
        import json, sys
        import numpy as np
        import polars as pl
        from sfarm.indicators import compute
        from sfarm.trading.backtest import run_backtest
        from sfarm.trading.strategy import parse_strategy
        rng = np.random.default_rng(7)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, 1000)))
        open_ = np.r_[100.0, close[:-1]]
        candles = pl.DataFrame({"ts": np.arange(1000) * 3_600_000, "open": open_,
                                "high": np.maximum(open_, close) * 1.01,
                                "low": np.minimum(open_, close) * 0.99, "close": close,
                                "volume": rng.uniform(1, 10, 1000)})
        strategy = parse_strategy('''[strategy]
        name = "rsi"
        indicators = ["rsi(14)"]
        entry_long = "rsi_14 < 35"
        exit_long = "rsi_14 > 60"
        stop_loss = 0.05
        ''')
        result = run_backtest(compute(candles, ["rsi(14)"]), strategy, timeframe="1h")
        assert result.run.trades.height > 0
        print(json.dumps(sorted({name.split(".")[0] for name in sys.modules}
                                & {"numba", "pandas"})))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=PROJECT, env=sfarm_env(), timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
