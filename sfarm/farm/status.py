"""The farm's status as an operator reads it: how far each dataset is behind the live edge,
and whether the farm is up and producing. Pure: the status comes in, the clock is an argument."""

from __future__ import annotations

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.status import DatasetStatus, NetworkStatus
from sfarm.timeframes import candle_open, timeframe_ms


def behind_live_edge_s(dataset: DatasetStatus, now_ms: float) -> float | None:
    """How far a dataset is behind the last closed candle of its timeframe (0: up to date);
    None without data or for a dataset with no timeframe in its id."""
    if dataset.last_ts is None:
        return None
    try:
        timeframe = parse_dataset_id(dataset.id).timeframe
    except BadDatasetId:
        return None
    if timeframe is None:
        return None
    last_closed = candle_open(int(now_ms), timeframe) - timeframe_ms(timeframe)
    return max(0.0, (last_closed - dataset.last_ts) / 1000)


def fill_lags(status: NetworkStatus, now_ms: float) -> NetworkStatus:
    """`status` with every dataset's `lag_s` set as of `now_ms` (in place; returned)."""
    for node in status.nodes:
        for task in node.tasks:
            for dataset in task.datasets:
                dataset.lag_s = behind_live_edge_s(dataset, now_ms)
    return status


def running_with_data(status: NetworkStatus) -> bool:
    """Every task runs and every output it reports has rows: the farm is up and producing."""
    return all(
        node.reachable and node.tasks and all(
            task.state == "running" and task.datasets and all(d.rows > 0 for d in task.datasets)
            for task in node.tasks)
        for node in status.nodes)
