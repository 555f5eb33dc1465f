"""The farm's status as an operator reads it: how far each dataset is behind the live edge,
whether the farm is up and producing, and the words and colours `sfarm status` and the
dashboard show for it. Pure: the status comes in, the clock is an argument."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.data.layout import format_ts
from sfarm.timeframes import candle_open, timeframe_ms

if TYPE_CHECKING:  # the models (pydantic) are the caller's: `sfarm --help` loads none
    from sfarm.status import DatasetStatus, NetworkStatus, ServiceStatus, TaskStatus

# States whose heartbeat values (age, lag, equity, what it waits for) describe the present.
LIVE_STATES = frozenset({"running", "starting", "stale", "halted"})

# A task's state as a colour (rich's names), the same in every view of the farm.
STATE_COLOURS = {"running": "green", "starting": "yellow", "stopped": "dim", "failed": "red",
                 "stale": "magenta", "halted": "red", "unreachable": "red",
                 "not deployed": "dim", "unknown": "magenta"}


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
    """Every task and every service runs and every output a task reports has rows: the farm is
    up and producing."""
    return all(
        node.reachable and node.tasks and all(
            task.state == "running" and task.datasets and all(d.rows > 0 for d in task.datasets)
            for task in node.tasks)
        and all(service.state == "running" for service in node.services)
        for node in status.nodes)


def services_that_cannot_start(status: NetworkStatus, since: NetworkStatus | None = None
                               ) -> list[tuple[str, ServiceStatus]]:
    """(node, service) of every service that failed and was restarted in vain at least
    RESTARTS_BEFORE_GIVING_UP times, and, given an earlier status `since`, once more since
    then (a cause removed meanwhile, a port freed, shows at supervisord's next retry: only a
    retry that failed again says it is still there). Waiting longer for the farm to come up
    is pointless until someone removes the cause (its last error)."""
    from sfarm.status.services import RESTARTS_BEFORE_GIVING_UP

    before = {} if since is None else {
        (node.name, service.name): service.restarts
        for node in since.nodes for service in node.services}
    return [(node.name, service) for node in status.nodes for service in node.failed_services
            if service.restarts >= RESTARTS_BEFORE_GIVING_UP
            and service.restarts > before.get((node.name, service.name), -1)]


def format_age(seconds: float | None) -> str:
    """`42s`, `17m`, `3.5h`; `-` for None."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def stale_note(task: TaskStatus, now: float) -> str:
    """Which of the task's inputs its node cannot keep current, and for how long."""
    stale = [entry for entry in task.inputs if entry.stale_since is not None]
    if not stale:
        return ""
    first = stale[0]
    more = f" (+{len(stale) - 1} more)" if len(stale) > 1 else ""
    return (f"{first.id} from {first.source_node} stale for "
            f"{format_age(now - (first.stale_since or now))}{more}")


def shows_live_values(task: TaskStatus) -> bool:
    """Whether the task's heartbeat speaks of now: a stopped or failed task's last heartbeat
    (its age, its equity, what it waited for) is history, not its state."""
    return task.state in LIVE_STATES


def task_note(task: TaskStatus, now: float) -> str:
    """What an operator should read about a task beside its state: its last error, else its
    stale inputs, else, while it runs, a trade session's equity and PnL and what it waits for
    ("" when nothing)."""
    if task.last_error:
        return task.last_error
    if stale := stale_note(task, now):
        return stale
    if not shows_live_values(task):
        return ""
    parts = []
    if task.trade is not None:
        parts.append(f"equity {task.trade.equity:,.2f} ({task.trade.pnl:+,.2f})")
    if task.waiting_for:
        parts.append(f"waiting for {task.waiting_for}")
    return "; ".join(parts)


def service_note(service: ServiceStatus) -> str:
    """What an operator should read about a service beside its state: why it fails, else how
    often supervisord restarted it ("" when never)."""
    if service.last_error:
        return service.last_error
    if service.restarts:
        return f"restarted {service.restarts} time{'s' if service.restarts > 1 else ''}"
    return ""


def short_ts(ts_ms: int | None) -> str:
    """`12-02 06:20` (UTC): a candle's time where a column is narrow."""
    return format_ts(ts_ms)[5:] if ts_ms is not None else "-"


def newest_candle(task: TaskStatus) -> int | None:
    """The last candle (ms) among the task's outputs, None without data."""
    stamps = [dataset.last_ts for dataset in task.datasets if dataset.last_ts is not None]
    return max(stamps) if stamps else None
