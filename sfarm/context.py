"""What a task's engine is given to run: the node root, its typed task model, a stop event and
the board it reports progress on. The seam between the worker runtime (`sfarm.runtime`, which
builds the context and writes the board to `run/<task>.json`) and the engines (`sfarm.mining`,
`sfarm.indicators`, `sfarm.trading`), which import this module and never the runtime.

A leaf: imports the standard library, `sfarm.status` and `sfarm.tasks` (the task models) only.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from sfarm.redact import redact
from sfarm.status import DatasetProgress, Heartbeat, TaskState, TradeProgress
from sfarm.tasks import IndicatorsTask, MineTask, TradeTask

COMMIT_WATCH_S = 0.05  # how often an engine waiting for input looks at its inputs' manifests

TaskT = TypeVar("TaskT", MineTask, IndicatorsTask, TradeTask)


class ProgressBoard:
    """What the engine tells the world; read by the heartbeat thread, so guarded by a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: TaskState = "starting"
        self.outputs: dict[str, DatasetProgress] = {}
        self.inputs: dict[str, DatasetProgress] = {}
        self.counters: dict[str, int] = {}
        self.last_error: str | None = None
        self.waiting_for: str | None = None
        self.trade: TradeProgress | None = None

    def set_state(self, state: TaskState) -> None:
        with self._lock:
            self.state = state

    def output(self, dataset: str, last_ts: int | None, rows: int) -> None:
        with self._lock:
            self.outputs[dataset] = DatasetProgress(id=dataset, last_ts=last_ts, rows=rows)

    def input(self, dataset: str, last_ts: int | None, rows: int) -> None:
        with self._lock:
            self.inputs[dataset] = DatasetProgress(id=dataset, last_ts=last_ts, rows=rows)

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + amount

    def set_counters(self, values: dict[str, int]) -> None:
        """Replace counters an engine keeps itself (totals over its datasets, say)."""
        with self._lock:
            self.counters.update(values)

    def wait_for(self, what: str | None) -> None:
        """Say what the engine waits for (None when it no longer waits)."""
        with self._lock:
            self.waiting_for = what

    def error(self, message: str | None) -> None:
        """The task's last error, as `status` shows it (secrets masked: sfarm.redact)."""
        with self._lock:
            self.last_error = None if message is None else redact(message)

    def set_trade(self, equity: float, position: float, pnl: float) -> None:
        with self._lock:
            self.trade = TradeProgress(equity=equity, position=position, pnl=pnl)

    def heartbeat(self, task: str, kind: str, started_at: float, interval_s: float) -> Heartbeat:
        with self._lock:
            return Heartbeat(
                task=task, kind=kind, state=self.state, pid=os.getpid(), started_at=started_at,
                heartbeat=time.time(), interval_s=interval_s,
                outputs=list(self.outputs.values()), inputs=list(self.inputs.values()),
                counters=dict(self.counters), last_error=self.last_error,
                waiting_for=self.waiting_for, trade=self.trade,
            )


@dataclass
class TaskContext(Generic[TaskT]):
    """One task of one node, as its engine sees it.

    An engine works until `stop` is set, reporting on `board`; it reads and writes datasets
    under `root` (the node root: `data/`, `mirror/`, `sessions` are `sfarm.data`'s business).

    Example:
        >>> context = TaskContext(Path("/tmp/node"), "mine-binance", mine_task)  # doctest: +SKIP
        >>> run_mine(context)  # returns once context.stop is set  # doctest: +SKIP
    """

    root: Path  # the node root
    task: str  # the task's name in the inventory
    config: TaskT  # the task's inventory model
    secrets_file: Path | None = None  # the node's secrets.toml (credentials); may not exist
    stop: threading.Event = field(default_factory=threading.Event)
    board: ProgressBoard = field(default_factory=ProgressBoard)

    @property
    def kind(self) -> str:
        return self.config.kind

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the engine should stop."""
        return self.stop.wait(seconds)

    def sleep_until_commit(self, dataset_ids: Sequence[str], seconds: float) -> bool:
        """Sleep up to `seconds`, waking as soon as one of the datasets commits (here, or in
        a mirror the resolver just updated): a consumer follows its producers within
        COMMIT_WATCH_S, not within a poll. True when the engine should stop."""
        from sfarm.data import commit_marks

        before = commit_marks(self.root, dataset_ids)
        deadline = time.monotonic() + seconds
        while not self.stop.wait(min(COMMIT_WATCH_S, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or commit_marks(self.root, dataset_ids) != before:
                return False
        return True
