"""A node's supervisord: supervisor's own (`supervisor.supervisord.main`), which also keeps the
directory of its log files (the node root's logs/) in place.

supervisord opens a program's log file each time it spawns it. With logs/ gone (an operator
freeing disk space, a cleanup script) every spawn failed ("unknown error making dispatchers":
BACKOFF, then a task down) until the next `sfarm up` made the directory again, and the workers
that kept running wrote on into deleted files nobody could read. Here supervisord makes it
again itself:

* right before a spawn opens a program's log, so no spawn fails for want of it;
* within `CHECK_INTERVAL_S` of a log file's deletion (alone, or with logs/), opens it again
  (what SIGUSR2 does, for that file), so the running workers' output lands in files an
  operator can read, not in deleted ones that fill the disk unseen.

Why supervisord, and not the workers, `status` or deploy: it is the process that opens the
files, at the moment it opens them. A worker cannot make the directory its own spawn needs (and
a node may run one worker only); status and deploy run only when an operator does. A directory
whose parent is gone (the whole node root deleted) is not made again: that is `sfarm up`'s job.

Run as `python -m sfarm.runtime.supervisord -c CONFIG` (sfarm.runtime.supervisor's
`daemon_command`), with supervisord's own options. It imports supervisor and the store's file
helpers only: it starts with every node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from supervisor import loggers, options, supervisord

from sfarm.data.fsio import make_private_dirs

CHECK_INTERVAL_S = 1.0  # how often supervisord looks for its log directories


def _program_logs(config: Any) -> Iterator[Path]:
    """The log files of one program's config (None: NONE; Automatic: supervisor's temp dir)."""
    for value in (config.stdout_logfile, config.stderr_logfile):
        if isinstance(value, str):
            yield Path(value)


def _restore(directories: Iterable[Path]) -> list[Path]:
    """Make those of `directories` that are gone (0700) where their parent still is; the ones
    made."""
    made = []
    for directory in set(directories):
        if not directory.is_dir() and directory.parent.is_dir():
            make_private_dirs(directory)
            made.append(directory)
    return made


def _make_dispatchers_keeping_logs(original: Any) -> Any:
    def make_dispatchers(self: Any, proc: Any) -> Any:
        # An OSError here is supervisord's spawn error, as a failed open of the log would be.
        _restore(path.parent for path in _program_logs(self))
        return original(self, proc)
    return make_dispatchers


def _file_handlers(daemon: Any) -> Iterator[Any]:
    """Every log file supervisord holds open: its own and its programs' current ones."""
    handlers = list(daemon.options.logger.handlers)
    for group in daemon.process_groups.values():
        for process in group.processes.values():
            for dispatcher in process.dispatchers.values():
                for log in (getattr(dispatcher, "normallog", None),
                            getattr(dispatcher, "capturelog", None)):
                    handlers.extend(log.handlers if log is not None else ())
    return (handler for handler in handlers if isinstance(handler, loggers.FileHandler))


def _deleted(handler: Any) -> bool:
    try:
        return os.fstat(handler.stream.fileno()).st_nlink == 0
    except (OSError, ValueError):  # a closed stream
        return False


class _LogKeeper:
    """Called on each turn of supervisord's loop, acts at most every CHECK_INTERVAL_S: a log
    file that was deleted (alone, or with logs/) is opened again, its directory made again."""

    def __init__(self) -> None:
        self.next_check = 0.0

    def __call__(self, daemon: Any) -> None:
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + CHECK_INTERVAL_S
        gone = [handler for handler in _file_handlers(daemon) if _deleted(handler)]
        if not gone:
            return
        try:
            _restore(Path(handler.baseFilename).parent for handler in gone)
        except OSError as error:  # a full or read-only disk: try again next time
            daemon.options.logger.warn(f"cannot make the log directory again: {error}")
            return
        for handler in gone:
            if Path(handler.baseFilename).parent.is_dir():  # not when the whole root is gone
                handler.reopen()
        daemon.options.logger.warn(
            "log files deleted: opened again ("
            + ", ".join(sorted({str(handler.baseFilename) for handler in gone})) + ")")


def install() -> None:
    """Teach supervisor's classes to keep their log directories (idempotent)."""
    if getattr(supervisord.Supervisor, "_sfarm_keeps_logs", False):
        return
    config_class: Any = options.ProcessConfig
    config_class.make_dispatchers = _make_dispatchers_keeping_logs(config_class.make_dispatchers)
    keeper = _LogKeeper()
    tick = supervisord.Supervisor.tick

    def tick_keeping_logs(self: Any, now: float | None = None) -> None:
        tick(self, now)
        keeper(self)

    daemon_class: Any = supervisord.Supervisor
    daemon_class.tick = tick_keeping_logs
    daemon_class._sfarm_keeps_logs = True


def main() -> None:
    install()
    supervisord.main()


if __name__ == "__main__":
    main()
