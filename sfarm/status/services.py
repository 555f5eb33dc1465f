"""The services sfarm supervises on a node beside the tasks' workers, and what `sfarm status`
says of each.

A node's supervisord runs, besides a worker per task, the exchange emulator of each emulated
exchange the node serves (`sim-<exchange>`), its data resolver when it reads other nodes' data
(`sfarm-resolver`) and, on a node reached over SSH, its resident agent (`sfarm-agent`). The
inventory keeps task names off these names (sfarm.inventory.checks), so a program is a service
by its name (`is_service`; the node is told its tasks too, for a task `sim-x` with no exchange
`x`).

supervisord counts no restarts and forgets why a start failed once the next one begins, so both
come from logs: the restarts and whether the service is failing from supervisord's own log
(`service_history`: its "exited: NAME (...; not expected)" lines, each followed by a restart,
since supervisord last started; failing when the last start ended so before it counted as
started), the reason from the service's log (`logged_error`: sfarm's `error:` line, e.g. the
emulator's "port 127.0.0.1:8900 is in use by another process"). Pure: lines in, a
ServiceStatus out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the models (pydantic) load with a status, not with the names above
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
    restarted it after the program ended unexpectedly and, when its last run ended so within
    SHORT_RUN_S of its start (a start that failed: a port taken, a bad setting), how long that
    run lasted (`failed_run_s`; None otherwise)."""

    restarts: int = 0
    failed_run_s: float | None = None

    @property
    def failing(self) -> bool:
        return self.failed_run_s is not None


# A run that ends unexpectedly within this many seconds of its spawn is a failed start, not a
# crash: supervisord's startsecs (2 s) is shorter than a Python start on a loaded machine, so
# supervisord's own "success" cannot tell them apart.
SHORT_RUN_S = 60.0
_STAMP = "%Y-%m-%d %H:%M:%S,%f"  # how supervisord's log lines begin (its local time)


def _moment(line: str) -> float | None:
    try:
        return datetime.strptime(line[:23], _STAMP).timestamp()
    except ValueError:
        return None


def service_history(supervisord_lines: Iterable[str], name: str) -> ServiceHistory:
    """The history of program `name` in supervisord's log lines (oldest first; a tail of the
    log will do: what it misses of an older start is not counted)."""
    spawned = f" spawned: '{name}' with pid "
    exited = f" exited: {name} ("
    gave_up = f" gave up: {name} entered FATAL state"
    stopped = f" stopped: {name} ("
    restarts, restart_due = 0, False
    failed_run_s: float | None = None
    spawned_at: float | None = None  # of the run under way (None: out of sight)
    for line in supervisord_lines:
        if _DAEMON_STARTED in line:
            restarts, restart_due, failed_run_s, spawned_at = 0, False, None, None
        elif spawned in line:
            restarts += restart_due
            restart_due, spawned_at = False, _moment(line)
        elif exited in line:
            restart_due = line.rstrip().endswith("; not expected)")
            ended = _moment(line)
            lasted = None if ended is None or spawned_at is None else max(0.0, ended - spawned_at)
            failed_run_s = lasted if restart_due and lasted is not None \
                and lasted < SHORT_RUN_S else None
        elif gave_up in line:
            restart_due = False
            failed_run_s = failed_run_s if failed_run_s is not None else 0.0
        elif stopped in line:
            restart_due, failed_run_s = False, None
    return ServiceHistory(restarts, failed_run_s)


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

    A service whose last start failed is `failed` while supervisord retries it: in BACKOFF,
    STARTING, and RUNNING too until the run under way has lasted twice as long as the failed
    one (supervisord's RUNNING comes after 2 s, a failed start may take longer to fail), so
    the state does not flicker between checks; so is one supervisord gave up on (FATAL). Its
    last error says why.
    """
    from sfarm.status.model import ServiceStatus

    info = process or {}
    statename = info.get("statename")
    state: TaskState
    if statename in ("BACKOFF", "FATAL") or (history.failing and statename in (
            "STARTING", "EXITED")) or (statename == "RUNNING" and _unproven(info, history)):
        state = "failed"
    elif statename == "RUNNING":
        state = "running"
    elif statename == "STARTING":
        state = "starting"
    elif statename == "UNKNOWN":
        state = "unknown"
    else:  # STOPPED, STOPPING, an expected EXITED, or no supervisord
        state = "stopped"
    last_error = None
    if state == "failed":
        spawn_error = info.get("spawnerr") or "it ended as soon as it started"
        reason, hint = logged_error(log_lines) or (spawn_error, None)
        then = ("supervisord gave up restarting it" if statename == "FATAL"
                else "supervisord keeps restarting it")
        last_error = f"{reason}; {then}" + (f" (hint: {hint})" if hint else "")
    pid = (info.get("pid") or None) if statename in ("RUNNING", "STARTING") else None
    return ServiceStatus(name=name, state=state, restarts=history.restarts, pid=pid,
                         last_error=last_error)


def _unproven(info: Mapping[str, Any], history: ServiceHistory) -> bool:
    """Whether a running service's run has not yet lasted twice its failed start's run."""
    if history.failed_run_s is None:
        return False
    started, now = info.get("start"), info.get("now")
    if not isinstance(started, int | float) or not isinstance(now, int | float):
        return False
    return now - started < 2 * history.failed_run_s
