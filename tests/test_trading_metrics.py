"""Metrics against small cases computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.trading.metrics import YEAR_MS, compute_metrics, max_drawdown

DAY = 86_400_000


def trades(pnl: list[float], notional: float = 100.0) -> pl.DataFrame:
    return pl.DataFrame({"pnl": pnl, "entry_price": [notional] * len(pnl),
                         "size": [1.0] * len(pnl)}, schema={"pnl": pl.Float64,
                                                             "entry_price": pl.Float64,
                                                             "size": pl.Float64})


def test_three_daily_candles() -> None:
    # Equity 100 -> 110 -> 99 -> 121: returns +10%, -10%, +2/9.
    equity = np.array([110.0, 99.0, 121.0])
    position = np.array([1.0, 0.0, 2.0])
    metrics = compute_metrics(equity, position, trades([10.0, -5.0, 20.0, 0.0]), 100.0, DAY)
    mean = (0.1 - 0.1 + 2 / 9) / 3  # = 2/27
    variance = ((0.1 - mean) ** 2 + (-0.1 - mean) ** 2 + (2 / 9 - mean) ** 2) / 2
    per_year = 365.25
    assert metrics.total_return == pytest.approx(0.21)
    assert metrics.sharpe == pytest.approx(mean / math.sqrt(variance) * math.sqrt(per_year))
    assert metrics.sortino == pytest.approx(mean / math.sqrt(0.01 / 3) * math.sqrt(per_year))
    assert metrics.max_drawdown == pytest.approx(0.1)  # peak 110, trough 99
    years = 3 / 365.25
    assert metrics.cagr == pytest.approx(1.21 ** (1 / years) - 1)
    assert metrics.calmar == pytest.approx(metrics.cagr / 0.1)
    assert metrics.win_rate == 0.5  # a zero pnl is not a win
    assert metrics.profit_factor == pytest.approx(30 / 5)
    assert metrics.avg_trade == pytest.approx(25 / 4)
    assert metrics.avg_trade_return == pytest.approx(25 / 4 / 100)
    assert metrics.exposure == pytest.approx(2 / 3)
    assert metrics.trades == 4 and metrics.bars == 3
    assert metrics.final_equity == 121.0


def test_duration_from_timestamps_and_hourly_annualization() -> None:
    hour = 3_600_000
    equity = np.array([101.0, 102.01])
    metrics = compute_metrics(equity, np.zeros(2), trades([]), 100.0, hour,
                              first_ts=0, last_ts=hour * 9)  # a gap: 10 candles of time
    assert metrics.cagr == pytest.approx(1.0201 ** (YEAR_MS / (10 * hour)) - 1)
    # Two equal returns: zero deviation, Sharpe undefined; no losing candle, Sortino undefined.
    assert metrics.sharpe is None and metrics.sortino is None
    assert metrics.win_rate is None and metrics.profit_factor is None
    assert metrics.avg_trade is None and metrics.trades == 0
    assert metrics.calmar is None and metrics.max_drawdown == 0.0


def test_drawdown_counts_from_the_initial_equity() -> None:
    assert max_drawdown(np.array([90.0, 95.0, 80.0, 120.0]), 100.0) == pytest.approx(0.2)
    assert max_drawdown(np.array([120.0, 60.0, 130.0, 117.0]), 100.0) == pytest.approx(0.5)


def test_json_has_the_spec_names_and_no_infinities() -> None:
    metrics = compute_metrics(np.array([100.0, 100.0]), np.zeros(2), trades([5.0]), 100.0, DAY)
    document = metrics.to_json()
    assert document["return"] == 0.0 and "total_return" not in document
    assert document["profit_factor"] is None  # no losing trade: infinite, reported as null
    assert document["trades"] == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 1e6)), min_size=1, max_size=300),
       st.floats(1.0, 1e6))
def test_equity_stats_match_numpy(values: list[float], initial: float) -> None:
    """The one-pass statistics against the textbook formulas on any curve, zeros included
    (a return after an equity of 0 is not finite and is left out)."""
    from sfarm.trading.metrics import equity_stats

    equity = np.array(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity / np.r_[initial, equity[:-1]] - 1.0
    returns = returns[np.isfinite(returns)]
    count, mean, m2, downside, drawdown = equity_stats(equity, initial)
    assert count == len(returns)
    scale = max(1.0, float(np.abs(returns).max())) if count else 1.0
    if count:
        assert mean == pytest.approx(returns.mean(), rel=1e-9, abs=1e-12 * scale)
        assert m2 == pytest.approx(((returns - returns.mean()) ** 2).sum(), rel=1e-7,
                                   abs=1e-9 * scale * scale * count)
        assert downside == pytest.approx((np.minimum(returns, 0) ** 2).sum(), rel=1e-9)
    peaks = np.maximum.accumulate(np.r_[initial, equity])[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        falls = np.where(peaks > 0, 1.0 - equity / peaks, 0.0)
    assert drawdown == pytest.approx(max(0.0, float(falls.max())), rel=1e-12, abs=1e-15)
