"""The services sfarm supervises on a node beside the tasks' workers, and what `sfarm status`
says of each.

A node's supervisord runs, besides a worker per task, the exchange emulator of each emulated
exchange the node serves (`sim-<exchange>`), its data resolver when it reads other nodes' data
(`sfarm-resolver`) and, on a node reached over SSH, its resident agent (`sfarm-agent`). The
inventory keeps task names off these names (sfarm.inventory.checks), so a program is a service
by its name alone.

supervisord counts no restarts and forgets why a start failed once the next one begins, so both
come from logs: the restarts and whether the service is failing from supervisord's own log
(`service_history`: its "exited: NAME (...; not expected)" lines, each followed by a restart,
since supervisord last started), the reason from the service's log (`logged_error`: sfarm's
`error:` line, e.g. the emulator's "port 127.0.0.1:8900 is in use by another process"). Pure:
lines in, a ServiceStatus out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sfarm.status.model import ServiceStatus, TaskState

SIM_SERVICE_PREFIX = "sim-"  # + the exchange's name: its emulator (sfarm sim serve)
RESOLVER_SERVICE = "sfarm-resolver"  # a node's data resolver (sfarm.resolver)
AGENT_SERVICE = "sfarm-agent"  # a node's resident agent (sfarm.runtime.agent_server)

# How often a failing service is restarted before `up --wait` stops waiting for it: one failed
# start may be a blip (a port being released), three in a row are not.
RESTARTS_BEFORE_GIVING_UP = 2

_DAEMON_STARTED = " supervisord started with pid "


def is_service(name: str) -> bool:
    """Whether the supervised program `name` is a service (not a task's worker)."""
    return name in (RESOLVER_SERVICE, AGENT_SERVICE) or name.startswith(SIM_SERVICE_PREFIX)


@dataclass(frozen=True)
class ServiceHistory:
    """What supervisord's log says of a program since supervisord last started: how often it
    restarted it after the program ended unexpectedly, and whether its last run ended so
    without a run that lasted (supervisord's "success") since."""

    restarts: int = 0
    failing: bool = False


def service_history(supervisord_lines: Iterable[str], name: str) -> ServiceHistory:
    """The history of program `name` in supervisord's log lines (oldest first; a tail of the
    log will do: what it misses of an older start is not counted)."""
    spawned = f" spawned: '{name}' with pid "
    succeeded = f" success: {name} entered RUNNING state"
    exited = f" exited: {name} ("
    gave_up = f" gave up: {name} entered FATAL state"
    stopped = f" stopped: {name} ("
    restarts, failing, restart_due = 0, False, False
    for line in supervisord_lines:
        if _DAEMON_STARTED in line:
            restarts, failing, restart_due = 0, False, False
        elif spawned in line:
            restarts += restart_due
            restart_due = False
        elif succeeded in line:
            failing = False
        elif exited in line:
            unexpected = line.rstrip().endswith("; not expected)")
            failing = restart_due = unexpected
        elif gave_up in line:
            failing, restart_due = True, False
        elif stopped in line:
            failing = restart_due = False
    return ServiceHistory(restarts, failing)


def logged_error(log_lines: Sequence[str]) -> tuple[str, str | None] | None:
    """The last error sfarm reported in a service's log (its `error:` line) and its hint (the
    `hint:` line after it), else the log's last line that is not blank (a traceback's last
    line, say) without a hint; None for an empty log."""
    for index in range(len(log_lines) - 1, -1, -1):
        line = log_lines[index].strip()
        if line.startswith("error: "):
            after = log_lines[index + 1].strip() if index + 1 < len(log_lines) else ""
            hint = after.removeprefix("hint: ") if after.startswith("hint: ") else None
            return line.removeprefix("error: "), hint
    last = next((line.strip() for line in reversed(log_lines) if line.strip()), None)
    return None if last is None else (last, None)


def service_status(name: str, process: Mapping[str, Any] | None, history: ServiceHistory,
                   log_lines: Sequence[str] = ()) -> ServiceStatus:
    """A service's status from supervisord's process info (None: supervisord does not run it,
    or does not run at all), its history (service_history) and the end of its log.

    A service supervisord keeps restarting because it ends as soon as it starts is `failed`
    (in supervisord's BACKOFF, and in the STARTING of each retry alike: the state must not
    flicker between checks), as one supervisord gave up on (FATAL); its last error says why.
    """
    statename = None if process is None else process.get("statename")
    state: TaskState
    if statename == "RUNNING":
        state = "running"
    elif statename in ("BACKOFF", "FATAL") or (
            statename in ("STARTING", "EXITED") and history.failing):
        state = "failed"
    elif statename == "STARTING":
        state = "starting"
    elif statename == "UNKNOWN":
        state = "unknown"
    else:  # STOPPED, STOPPING, an expected EXITED, or no supervisord
        state = "stopped"
    last_error = None
    if state == "failed":
        spawn_error = (process or {}).get("spawnerr") or "it ended as soon as it started"
        reason, hint = logged_error(log_lines) or (spawn_error, None)
        then = ("supervisord gave up restarting it" if statename == "FATAL"
                else "supervisord keeps restarting it")
        last_error = f"{reason}; {then}" + (f" (hint: {hint})" if hint else "")
    pid = ((process or {}).get("pid") or None) if state in ("running", "starting") else None
    return ServiceStatus(name=name, state=state, restarts=history.restarts, pid=pid,
                         last_error=last_error)
