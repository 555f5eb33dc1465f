"""sfarm's backtests against backtesting.py on its own sample data, same rules, no stops.

backtesting.py is configured to model what sfarm models (docs/trading.md, "Compared with
backtesting.py"): `FractionalBacktest` (fractional units, so sizes match), `commission` = fee
(a fraction of notional on every fill, as sfarm), spread 0 and slippage 0 (backtesting.py's
spread is paid on entries only), `trade_on_close=False` (fill at the next open), default
`finalize_trades=False` (an open trade stays open, equity marked at the last close), and a
`next()` that acts like sfarm's rules: enter when flat, exit when in a position, reverse on the
opposite entry. Both engines read the same indicator arrays (sfarm.indicators.compute), so the
test compares signals-on-columns and execution, not two TA libraries.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import backtesting
import numpy as np
import pandas as pd
import polars as pl
import pytest
from backtesting import Strategy as BtStrategy
from backtesting.lib import FractionalBacktest, crossover

from sfarm.indicators import compute
from sfarm.trading.backtest import run_backtest
from sfarm.trading.strategy import parse_strategy

SAMPLES = Path(backtesting.__file__).parent / "test"
CASH = 10_000.0
FEE = 0.002
SIZE = 0.99


def sample(name: str) -> pl.DataFrame:
    frame = pd.read_csv(SAMPLES / name, index_col=0, parse_dates=True)
    ts = (frame.index.to_numpy().astype("datetime64[ms]").astype(np.int64))
    return pl.DataFrame({"ts": ts, "open": frame["Open"].to_numpy(np.float64),
                         "high": frame["High"].to_numpy(np.float64),
                         "low": frame["Low"].to_numpy(np.float64),
                         "close": frame["Close"].to_numpy(np.float64),
                         "volume": frame["Volume"].to_numpy(np.float64)})


def pandas_ohlc(frame: pl.DataFrame) -> pd.DataFrame:
    index = pd.to_datetime(frame["ts"].to_numpy(), unit="ms")
    return pd.DataFrame({"Open": frame["open"].to_numpy(), "High": frame["high"].to_numpy(),
                         "Low": frame["low"].to_numpy(), "Close": frame["close"].to_numpy(),
                         "Volume": frame["volume"].to_numpy()}, index=index)


def run_reference(frame: pl.DataFrame, columns: dict[str, str], rules: type) -> pd.Series:
    """backtesting.py over `frame`, its strategy reading `columns` (name -> frame column)."""
    arrays = {name: frame[column].to_numpy() for name, column in columns.items()}

    class Reference(rules):  # type: ignore[misc, valid-type]
        def init(self) -> None:
            for name, values in arrays.items():
                setattr(self, name, self.I(lambda v=values: v, name=name))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = FractionalBacktest(pandas_ohlc(frame), Reference, cash=CASH, commission=FEE,
                                spread=0.0, trade_on_close=False, exclusive_orders=False,
                                finalize_trades=False)
        return bt.run()


def assert_same(ours, reference: pd.Series, ts: np.ndarray) -> None:
    theirs = reference["_trades"].sort_values("EntryBar").reset_index(drop=True)
    trades = ours.run.trades
    assert trades.height == len(theirs) > 5
    assert trades["entry_ts"].to_list() == ts[theirs["EntryBar"].to_numpy()].tolist()
    assert trades["exit_ts"].to_list() == ts[theirs["ExitBar"].to_numpy()].tolist()
    entry_ms = theirs["EntryTime"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    assert trades["entry_ts"].to_list() == entry_ms.tolist()
    assert trades["side"].to_list() == ["long" if s > 0 else "short" for s in theirs["Size"]]
    np.testing.assert_allclose(trades["pnl"].to_numpy(), theirs["PnL"].to_numpy(), rtol=1e-6,
                               atol=1e-6)
    final = reference["Equity Final [$]"]
    assert ours.metrics.final_equity == pytest.approx(final, rel=1e-6)
    np.testing.assert_allclose(ours.run.equity, reference["_equity_curve"]["Equity"].to_numpy(),
                               rtol=1e-6)


class LongOnlyCross(BtStrategy):
    def next(self) -> None:
        if crossover(self.fast, self.slow):
            if not self.position:
                self.buy(size=SIZE)
        elif crossover(self.slow, self.fast) and self.position:
            self.position.close()


class LongShortCross(BtStrategy):
    def next(self) -> None:
        if crossover(self.fast, self.slow) and (self.position.is_short or not self.position):
            self.position.close()
            self.buy(size=SIZE)
        elif crossover(self.slow, self.fast) and (self.position.is_long or not self.position):
            self.position.close()
            self.sell(size=SIZE)


class RsiRevert(BtStrategy):
    def next(self) -> None:
        if not self.position and self.rsi[-1] < 30:
            self.buy(size=SIZE)
        elif self.position and self.rsi[-1] > 70:
            self.position.close()


CROSS_UP = "sma_10 > sma_30 AND LAG(sma_10) OVER (ORDER BY ts) < LAG(sma_30) OVER (ORDER BY ts)"
CROSS_DOWN = "sma_10 < sma_30 AND LAG(sma_10) OVER (ORDER BY ts) > LAG(sma_30) OVER (ORDER BY ts)"


def strategy(body: str):
    return parse_strategy(f'[strategy]\nname = "t"\nfee = {FEE}\nsize = {SIZE}\n{body}')


def test_sma_crossover_long_only_on_goog_daily() -> None:
    frame = compute(sample("GOOG.csv"), ["sma(10)", "sma(30)"])
    ours = run_backtest(frame, strategy(
        f'indicators = ["sma(10)", "sma(30)"]\nentry_long = "{CROSS_UP}"\n'
        f'exit_long = "{CROSS_DOWN}"'), timeframe="1d", cash=CASH)
    reference = run_reference(frame, {"fast": "sma_10", "slow": "sma_30"}, LongOnlyCross)
    assert_same(ours, reference, frame["ts"].to_numpy())


def test_sma_crossover_long_and_short_on_eurusd_hourly() -> None:
    frame = compute(sample("EURUSD.csv"), ["sma(10)", "sma(30)"])
    ours = run_backtest(frame, strategy(
        f'indicators = ["sma(10)", "sma(30)"]\nentry_long = "{CROSS_UP}"\n'
        f'entry_short = "{CROSS_DOWN}"'), timeframe="1h", cash=CASH)
    reference = run_reference(frame, {"fast": "sma_10", "slow": "sma_30"}, LongShortCross)
    assert "short" in ours.run.trades["side"].to_list()
    assert_same(ours, reference, frame["ts"].to_numpy())


@pytest.mark.parametrize("name, timeframe", [("GOOG.csv", "1d"), ("EURUSD.csv", "1h")])
def test_rsi_mean_reversion(name: str, timeframe: str) -> None:
    frame = compute(sample(name), ["rsi(14)"])
    ours = run_backtest(frame, strategy(
        'indicators = ["rsi(14)"]\nentry_long = "rsi_14 < 30"\nexit_long = "rsi_14 > 70"'),
        timeframe=timeframe, cash=CASH)
    reference = run_reference(frame, {"rsi": "rsi_14"}, RsiRevert)
    assert_same(ours, reference, frame["ts"].to_numpy())
