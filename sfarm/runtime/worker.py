"""One worker process runs one task: the engine in the main thread, heartbeats in another.

The engine is a function of a `sfarm.context.TaskContext` that works until `context.stop` is
set, reporting progress on `context.board`. The worker writes the board to `run/<task>.json`
every interval (atomically), turns SIGTERM/SIGINT into `stop` so the current step finishes and
the process exits 0, and when the engine raises, logs the error with its context, says so in its
state and retries after a capped exponential backoff. The error stays in the heartbeat until a
later attempt commits rows (a full disk freed, a read-only directory made writable): then it no
longer holds, and status stops showing it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from sfarm.backoff import Backoff
from sfarm.context import TaskContext
from sfarm.data.fsio import make_private_dirs, write_atomic
from sfarm.errors import SfarmError
from sfarm.inventory.load import SECRETS_FILE
from sfarm.redact import RedactingFormatter
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.task_lock import TaskHeld, hold_task, outlast_start_seconds
from sfarm.status.model import HEARTBEAT_INTERVAL_S, Heartbeat
from sfarm.tasks import IndicatorsTask, MineTask, TradeTask

log = logging.getLogger("sfarm.worker")

Engine = Callable[[TaskContext[Any]], None]  # each engine takes its own task model's context


def task_context(root: NodeRoot, task: str,
                 config: MineTask | IndicatorsTask | TradeTask) -> TaskContext[Any]:
    """The context of `task` on the node at `root`, with the paths its engine may need."""
    return TaskContext(root.path, task, config, secrets_file=root.secrets / SECRETS_FILE)


ENGINE_RESTART = Backoff(base_s=1.0, cap_s=60.0)  # between engine restarts after an error


class _Heartbeats(threading.Thread):
    def __init__(self, context: TaskContext[Any], started_at: float, interval_s: float) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.context = context
        self.run_dir = NodeRoot(context.root).run
        self.started_at = started_at
        self.interval_s = interval_s
        self.done = threading.Event()
        # The engine's thread writes too (on errors, at the end). Each write has its own temp
        # file (write_atomic), so writers never tear each other's file; the lock keeps a
        # board read earlier from being renamed over one read later (the final "stopped").
        self._writing = threading.Lock()
        # The error a failed attempt put on the board, and the rows of each output as first
        # seen since then (what was stored: more than that is a commit after the failure).
        self._failure: tuple[str | None, dict[str, int]] | None = None

    def failed(self, error: Exception) -> None:
        """Say on the board that an attempt failed with `error`, until rows are committed."""
        board = self.context.board
        board.error(_error_text(error))
        board.set_state("failed")
        beat = board.heartbeat(self.context.task, self.context.kind, self.started_at,
                               self.interval_s)
        with self._writing:
            self._failure = (beat.last_error, _rows(beat))
        self.write()

    def _recovered(self, beat: Heartbeat) -> Heartbeat:
        """`beat` without the failed attempt's error once a later one committed rows (called
        holding `_writing`)."""
        if self._failure is None or beat.state != "running":
            return beat
        message, stored = self._failure
        rows = _rows(beat)
        for dataset, count in rows.items():
            stored.setdefault(dataset, count)  # first seen since the failure: what was stored
        if not any(count > stored[dataset] for dataset, count in rows.items()):
            return beat
        self._failure = None
        if beat.last_error != message:  # the engine reported something newer: keep it
            return beat
        self.context.board.error(None)
        return beat.model_copy(update={"last_error": None})

    def write(self) -> None:
        """Write the board to run/<task>.json; a refused write (a full disk) is logged, never
        raised: the worker goes on, and its next heartbeat may get through."""
        context = self.context
        with self._writing:
            beat = self._recovered(context.board.heartbeat(context.task, context.kind,
                                                           self.started_at, self.interval_s))
            try:
                make_private_dirs(self.run_dir)
                write_atomic(self.run_dir, f"{context.task}.json",
                             beat.model_dump_json(indent=1).encode(), sync_dir=False)
            except OSError as error:
                log.warning("cannot write the heartbeat %s: %s",
                            self.run_dir / f"{context.task}.json", error)

    def run(self) -> None:
        while not self.done.wait(self.interval_s):
            self.write()


def run_worker(context: TaskContext[Any], engine: Engine, *,
               interval_s: float = HEARTBEAT_INTERVAL_S, backoff: Backoff = ENGINE_RESTART,
               handle_signals: bool = True) -> int:
    """Run `engine` until stopped; return the process exit status (0 on a requested stop).
    TaskHeld, before anything is written, when another worker runs the task."""
    try:
        task_lock = hold_task(NodeRoot(context.root), context.task)
    except TaskHeld:
        outlast_start_seconds()
        raise
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
            except Exception as error:  # any engine failure is retried
                failures += 1
                delay = backoff.delay(failures)
                if isinstance(error, SfarmError):  # explained: its message says it all
                    log.error("task %s failed (attempt %d): %s; retrying in %.0f s",
                              context.task, failures, _error_text(error), delay)
                else:
                    log.exception("task %s failed (attempt %d); retrying in %.0f s",
                                  context.task, failures, delay)
                heartbeats.failed(error)
                context.sleep(delay)
        halted = context.board.state == "halted"
        context.board.set_state("halted" if halted else "stopped")
        return 0
    finally:
        heartbeats.done.set()
        try:
            heartbeats.write()
        finally:
            task_lock.release()  # after the last heartbeat: a next worker's first one wins


def _error_text(error: Exception) -> str:
    """A failed attempt as the heartbeat shows it: sfarm's own errors by their message and what
    to do, any other by its type and text."""
    if isinstance(error, SfarmError):
        return f"{error.message} ({error.hint})" if error.hint else error.message
    return f"{type(error).__name__}: {error}"


def _rows(beat: Heartbeat) -> dict[str, int]:
    return {output.id: output.rows for output in beat.outputs}


def configure_logging(level: int = logging.INFO) -> None:
    """Workers log to stderr; supervisord writes it to logs/<task>.log and rotates it. Every
    line, tracebacks included, passes through sfarm.redact: no secret reaches a log."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    logging.Formatter.converter = time.gmtime
