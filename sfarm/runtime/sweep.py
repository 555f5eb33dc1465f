"""The processes of a node root, found without its supervisord (which may have died), so that
`sfarm down` leaves none behind.

A process belongs to the root when it is the root's supervisord (its pid file, its command
naming the root's config), holds one of the root's task locks (a worker, supervised or started
by hand: sfarm.runtime.task_lock), or was started by the root's supervisord, it or its
children: supervisord names its socket in the environment of everything it starts
(SUPERVISOR_SERVER_URL). Nothing else is touched: not an operator's shell or editor in the
root, not a deploy at work in it, not this process or the ones it runs under.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import process_start, read_holder
from sfarm.runtime.supervisor import config_path, socket_path

COMMAND_SHOWN = 100  # characters of a command line in a report
PROC = Path("/proc")


@dataclass(frozen=True)
class NodeProcess:
    pid: int
    command: str
    why: str  # how it belongs to the root: "supervisord", "holds run/x.lock", "supervised"


def _command(pid: int) -> str | None:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    command = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return command if len(command) <= COMMAND_SHOWN else command[:COMMAND_SHOWN - 3] + "..."


def _ancestors() -> set[int]:
    """This process and every process above it (never to be ended by it)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            stat = (PROC / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[-1].split()[1])
    return pids


def _supervised(marker: bytes) -> list[int]:
    """The pids whose environment holds `marker` (the ones this user may read)."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        if marker in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def _supervisord(root: NodeRoot) -> int | None:
    try:
        pid = int((root.supervisor / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    command = _command(pid)
    return pid if command is not None and str(config_path(root)) in command else None


def node_processes(root: NodeRoot) -> list[NodeProcess]:
    """The live processes of `root` (see the module's doc), each once, this one's kin left out."""
    found: dict[int, str] = {}
    supervisord = _supervisord(root)
    if supervisord is not None:
        found[supervisord] = "supervisord"
    for lock in sorted(root.run.glob("*.lock")) if root.run.is_dir() else []:
        holder = read_holder(lock)
        if holder is not None:
            found.setdefault(holder.pid, f"holds {lock.relative_to(root.path)}")
    marker = f"SUPERVISOR_SERVER_URL=unix://{socket_path(root)}".encode()
    for pid in _supervised(marker):
        found.setdefault(pid, "started by its supervisord")
    kin = _ancestors()
    processes = []
    for pid, why in found.items():
        command = _command(pid)
        if pid not in kin and command is not None:
            processes.append(NodeProcess(pid, command, why))
    return processes


def end_processes(processes: Iterable[NodeProcess], grace_s: float = 15.0) -> list[str]:
    """SIGTERM each process (a worker finishes its step), SIGKILL the ones still there after
    `grace_s`; what became of each, in words."""
    pending = {}
    for process in processes:
        try:
            os.kill(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        pending[process.pid] = process
    deadline = time.monotonic() + grace_s
    while any(process_start(pid) is not None for pid in pending) and time.monotonic() < deadline:
        time.sleep(0.1)
    outcomes = []
    for pid, process in pending.items():
        how = "stopped"
        if process_start(pid) is not None:
            try:
                os.kill(pid, signal.SIGKILL)
                how = f"killed (still running {grace_s:.0f} s after SIGTERM)"
            except ProcessLookupError:
                pass
        outcomes.append(f"{how} pid {pid} ({process.why}): {process.command}")
    return outcomes
