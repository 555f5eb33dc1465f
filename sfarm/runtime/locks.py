"""Lock files that say who holds them: an `fcntl.flock` on a 0600 file whose content names the
holder (pid, the process's start time, since when, its command, its operator).

The flock is what excludes: the kernel drops it when its holder dies, whatever killed it, so a
lock is never left behind. The content is what a person is told about the holder, and what
`sfarm down` and `sfarm status` go by without touching the lock (taking it, even for a moment,
would make a worker starting at that moment refuse): a holder is alive while a process of its
pid runs that started when it did (a pid reused by another process is not the holder).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

from sfarm.data.fsio import PRIVATE_FILE, make_private_dirs

COMMAND_SHOWN = 120  # characters of the holder's command line kept in the file


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat's 22nd field);
    None when no such process runs (a zombie, dead but not reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name, in (), may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _command_line() -> str:
    program = Path(sys.argv[0])
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m
    command = " ".join([name, *sys.argv[1:]])
    return command if len(command) <= COMMAND_SHOWN else command[:COMMAND_SHOWN - 3] + "..."


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file says."""

    pid: int
    start: int | None  # process_start of the holder when it took the lock
    since: float  # unix seconds
    command: str = ""
    operator: str = ""

    @classmethod
    def of_this_process(cls, operator: str = "") -> Holder:
        return cls(os.getpid(), process_start(os.getpid()), time.time(), _command_line(),
                   operator)

    @property
    def alive(self) -> bool:
        return self.start is not None and process_start(self.pid) == self.start

    def describe(self) -> str:
        """`pid 4242 (alice@lab, `sfarm up`, since 12:00:03 UTC)`."""
        when = time.strftime("%H:%M:%S UTC", time.gmtime(self.since))
        who = [part for part in (self.operator, f"`{self.command}`" if self.command else "",
                                 f"since {when}") if part]
        return f"pid {self.pid} ({', '.join(who)})"


def read_holder(path: Path) -> Holder | None:
    """The live holder named in lock file `path`; None when the file names nobody alive (no
    file, an empty or damaged one: a holder that has not written itself yet, or a dead one)."""
    try:
        fields = json.loads(path.read_bytes())
        holder = Holder(int(fields["pid"]), fields.get("start"), float(fields["since"]),
                        str(fields.get("command", "")), str(fields.get("operator", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return holder if holder.alive else None


class HeldLock:
    """A lock this process holds, until `release` (or its death)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # names nobody once released
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def try_lock(path: Path, operator: str = "") -> HeldLock | None:
    """Take lock `path` now, writing this process in it; None when another process holds it."""
    make_private_dirs(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    record = json.dumps(asdict(Holder.of_this_process(operator))).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    return HeldLock(path, fd)


class LockBusy(Exception):
    """The lock stayed held longer than the caller would wait; `holder` is who held it last
    (None: a holder that had not written itself)."""

    def __init__(self, path: Path, holder: Holder | None) -> None:
        super().__init__(f"{path} is held")
        self.path = path
        self.holder = holder


# A holder writes who it is just after it takes the lock: a waiter that finds the lock held by
# nobody named gives it this long to write itself before saying it waits for an unnamed one.
UNNAMED_HOLDER_GRACE_S = 1.0


def wait_lock(path: Path, wait_s: float, *, operator: str = "",
              on_wait: Callable[[Holder | None], None] = lambda holder: None,
              poll_s: float = 0.2) -> HeldLock:
    """Take lock `path`, waiting up to `wait_s` seconds for its holder; `on_wait` is told once
    whom it waits for (each time the holder changes; an unnamed holder only once it stayed
    unnamed UNNAMED_HOLDER_GRACE_S). LockBusy when the time is up."""
    began = time.monotonic()
    deadline = began + wait_s
    told: Holder | bool | None = False  # False: nobody told yet
    while True:
        lock = try_lock(path, operator)
        if lock is not None:
            return lock
        holder = read_holder(path)
        named_or_late = holder is not None \
            or time.monotonic() - began >= min(UNNAMED_HOLDER_GRACE_S, wait_s)
        if holder != told and named_or_late:
            on_wait(holder)
            told = holder
        if time.monotonic() >= deadline:
            raise LockBusy(path, holder)
        time.sleep(poll_s)
