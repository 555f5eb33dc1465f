"""compute's two implementations (sfarm.indicators.batch): the one through polars' core calls
gives what the one through the public API gives, without copies, on every kind of column."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import talib

from sfarm.indicators import batch, compute
from sfarm.indicators.batch import _compute_public, _probe_frames, _same_as_public

SPECS = ["sma(3)", "macd(2,3,2)", "trange", "obv", "vwap", "sar"]


def test_compute_is_the_direct_implementation_on_this_polars() -> None:
    # If a polars release breaks the core calls, compute falls back to the public API and only
    # gets slower: this test says so rather than compute failing.
    assert compute is not _compute_public, "polars internals changed: compute is the public one"
    assert _same_as_public(_compute_public)


@pytest.mark.parametrize("implementation", [compute, _compute_public], ids=["direct", "public"])
def test_every_kind_of_column_gives_the_same_values(implementation: batch.Compute) -> None:
    for frame in _probe_frames():
        out = implementation(frame, SPECS)
        reference = _compute_public(frame.with_columns(
            pl.exclude("ts").cast(pl.Float64)).rechunk(), SPECS)
        assert out.columns == reference.columns
        assert out.equals(reference, null_equal=True)
        assert out.select(frame.columns).equals(frame, null_equal=True)
        for column in out.columns[frame.width:]:
            assert out.schema[column] == pl.Float64
            assert out[column].null_count() == 0  # NaN, never null


@pytest.mark.parametrize("implementation", [compute, _compute_public], ids=["direct", "public"])
def test_no_copies_and_clear_errors(implementation: batch.Compute) -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"close": 100 + rng.normal(size=500).cumsum()})
    out = implementation(frame, ["sma(10)"])
    np.testing.assert_array_equal(out["sma_10"].to_numpy(),
                                  talib.SMA(frame["close"].to_numpy(), timeperiod=10))
    assert np.shares_memory(batch.input_array(frame["close"]), frame["close"].to_numpy())
    again = implementation(out, (spec for spec in ["sma(10)"]))  # any iterable; replaces
    assert again.columns == out.columns and again.equals(out)
    assert implementation(frame, []) is frame
    with pytest.raises(ValueError, match=r"lacks column\(s\) high, low needed by sma\(3\), trange"):
        implementation(frame, ["sma(3)", "trange"])
