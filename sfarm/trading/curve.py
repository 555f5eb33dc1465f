"""An equity curve made small enough to draw or to send: min/max-preserving downsampling.

A chart a few hundred cells wide cannot show a million points, and every-k-th sampling would
hide the drawdowns an operator looks for. So the curve is cut into buckets, and each bucket
keeps its lowest and highest point, in time order: every peak and trough of the curve's shape
survives at the chart's resolution. Pure: arrays in, indices out.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np


def downsample_indices(values: Sequence[float] | np.ndarray, points: int) -> np.ndarray:
    """The indices (increasing, int64) of at most `points` of `values` that keep the curve's
    shape: all of them when there are no more than `points`; else the first, the last, and in
    between each of `(points - 2) // 2` equal buckets' minimum and maximum (one index when
    they are the same point). `points` must be at least 2. A NaN counts as the extreme of its
    bucket (numpy's argmin/argmax), so a gap stays visible."""
    if points < 2:
        raise ValueError(f"points must be at least 2, not {points}")
    array = np.asarray(values, dtype=np.float64)
    count = len(array)
    if count <= points:
        return np.arange(count, dtype=np.int64)
    buckets = (points - 2) // 2
    kept = [np.array([0], dtype=np.int64)]
    # Bucket edges over the interior [1, count - 1): as even as integers allow.
    edges = np.linspace(1, count - 1, buckets + 1).astype(np.int64).tolist()
    for start, end in pairwise(edges):
        if end <= start:
            continue
        segment = array[start:end]
        low, high = start + int(np.argmin(segment)), start + int(np.argmax(segment))
        kept.append(np.array(sorted({low, high}), dtype=np.int64))
    kept.append(np.array([count - 1], dtype=np.int64))
    return np.concatenate(kept)


def downsample(ts: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray,
               points: int) -> tuple[list[int], list[float]]:
    """`ts` and `values` (same length) downsampled together by `downsample_indices`: at most
    `points` pairs, the first and last kept, a subset of the input in its order."""
    times = np.asarray(ts, dtype=np.int64)
    array = np.asarray(values, dtype=np.float64)
    if len(times) != len(array):
        raise ValueError(f"{len(times)} times for {len(array)} values")
    indices = downsample_indices(array, points)
    return times[indices].tolist(), array[indices].tolist()
