"""One worker process runs one task: the engine in the main thread, heartbeats in another.

The engine is a function that works until `context.stop` is set, reporting progress on
`context.board`. The worker writes the board to `run/<task>.json` every interval (atomically),
turns SIGTERM/SIGINT into `stop` so the current step finishes and the process exits 0, and when
the engine raises, logs the error with its context, says so in its state and retries after a
capped exponential backoff.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sfarm.data.fsio import write_atomic
from sfarm.runtime.layout import NodeRoot
from sfarm.status import DatasetProgress, Heartbeat, TaskState, TradeProgress
from sfarm.status.model import HEARTBEAT_INTERVAL_S

log = logging.getLogger("sfarm.worker")


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
        with self._lock:
            self.last_error = message

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
class WorkerContext:
    root: NodeRoot
    task: str
    kind: str
    config: Any  # the task's inventory model (MineTask, IndicatorsTask, TradeTask)
    stop: threading.Event = field(default_factory=threading.Event)
    board: ProgressBoard = field(default_factory=ProgressBoard)

    def sleep(self, seconds: float) -> bool:
        """Sleep unless asked to stop; True when the worker should stop."""
        return self.stop.wait(seconds)


Engine = Callable[[WorkerContext], None]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff between engine restarts after an error."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))


class _Heartbeats(threading.Thread):
    def __init__(self, context: WorkerContext, started_at: float, interval_s: float) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.context = context
        self.started_at = started_at
        self.interval_s = interval_s
        self.done = threading.Event()

    def write(self) -> None:
        context = self.context
        beat = context.board.heartbeat(context.task, context.kind, self.started_at,
                                       self.interval_s)
        context.root.run.mkdir(parents=True, exist_ok=True)
        write_atomic(context.root.run, f"{context.task}.json",
                     beat.model_dump_json(indent=1).encode(), sync_dir=False)

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            try:
                self.write()
            except OSError as error:  # a full disk must not kill the worker; say it in the log
                log.warning("cannot write heartbeat: %s", error)


def run_worker(context: WorkerContext, engine: Engine, *,
               interval_s: float = HEARTBEAT_INTERVAL_S, backoff: Backoff = Backoff(),
               handle_signals: bool = True) -> int:
    """Run `engine` until stopped; return the process exit status (0 on a requested stop)."""
    if handle_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: context.stop.set())
    heartbeats = _Heartbeats(context, time.time(), interval_s)
    heartbeats.write()
    heartbeats.start()
    failures = 0
    try:
        while not context.stop.is_set():
            context.board.set_state("running")
            try:
                engine(context)
                break  # the engine returns when it is done or asked to stop
            except Exception as error:  # noqa: BLE001 - any engine failure is retried
                failures += 1
                delay = backoff.delay(failures)
                log.exception("task %s failed (attempt %d); retrying in %.0f s",
                              context.task, failures, delay)
                context.board.error(f"{type(error).__name__}: {error}")
                context.board.set_state("failed")
                heartbeats.write()
                context.sleep(delay)
        halted = context.board.state == "halted"
        context.board.set_state("halted" if halted else "stopped")
        return 0
    finally:
        heartbeats.done.set()
        heartbeats.write()


def configure_logging(level: int = logging.INFO) -> None:
    """Workers log to stderr; supervisord writes it to logs/<task>.log and rotates it."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.Formatter.converter = time.gmtime

