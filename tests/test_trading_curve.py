"""Downsampling an equity curve (sfarm.trading.curve): at most `points` points, the first and
last kept, a subset of the curve in its order, every bucket's extremes kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfarm.trading.curve import downsample, downsample_indices

curves = st.lists(st.floats(-1e9, 1e9, allow_nan=False), max_size=3000)


@settings(max_examples=300, deadline=None)
@given(curves, st.integers(2, 600))
def test_a_downsampled_curve_is_a_short_ordered_subset_with_both_ends(values: list[float],
                                                                        points: int) -> None:
    ts = [1_000 * index for index in range(len(values))]
    kept_ts, kept = downsample(ts, values, points)
    assert len(kept_ts) == len(kept) <= points
    if len(values) <= points:
        assert (kept_ts, kept) == (ts, values)  # nothing to drop
    if values:
        assert (kept_ts[0], kept[0]) == (ts[0], values[0])
        assert (kept_ts[-1], kept[-1]) == (ts[-1], values[-1])
    assert kept_ts == sorted(set(kept_ts))  # strictly increasing: in order, no repeats
    assert all(values[stamp // 1_000] == value for stamp, value in zip(kept_ts, kept,
                                                                       strict=True))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=50, max_size=2000),
       st.integers(6, 40))
def test_the_extremes_of_the_whole_curve_survive(values: list[float], points: int) -> None:
    indices = downsample_indices(values, points)
    kept = [values[index] for index in indices]
    assert min(kept) == min(values) and max(kept) == max(values)


def test_a_drawdown_between_samples_is_not_lost() -> None:
    # Every 10th point would read a flat curve; the trough at 4,321 is what an operator needs.
    values = np.full(10_000, 1_000.0)
    values[4_321] = 400.0
    ts, kept = downsample(np.arange(10_000), values, 50)
    assert 400.0 in kept and ts[kept.index(400.0)] == 4_321
    assert len(kept) <= 50


def test_points_below_two_or_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        downsample_indices([1.0, 2.0, 3.0], 1)
    with pytest.raises(ValueError, match="3 times for 2 values"):
        downsample([1, 2, 3], [1.0, 2.0], 2)
