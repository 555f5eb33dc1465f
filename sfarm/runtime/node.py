"""Operations on one node root, run on that node: apply a deployment, report, control workers.

The controller decides what a node needs (`Deployment`, plain data); these functions make the
node match it and say, step by step, whether anything changed (compared by content and mode,
never assumed from having run). They are the same for a local node and, run through
`sfarm node call` over SSH, for a remote one: sfarm.runtime.handler serves them as the node
protocol's requests. Applying a deployment (and its dry run) is sfarm.runtime.apply's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sfarm.errors import RunError
from sfarm.resolver.routes import load_routes
from sfarm.resolver.state import input_statuses, read_state
from sfarm.runtime import audit
from sfarm.runtime.apply import DIRECTORIES as DIRECTORIES  # re-exported: every node op here
from sfarm.runtime.apply import apply_deployment as apply_deployment
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node_lock import node_turn
from sfarm.runtime.protocol import (
    KEPT_ARMED,
    Action,
    DatasetSummary,
    LogChunk,
    StepResult,
    StepStatus,
)
from sfarm.runtime.supervisor import Supervisor, config_path
from sfarm.runtime.sweep import end_processes, node_processes
from sfarm.runtime.task_lock import task_holder
from sfarm.status import Heartbeat, Observed, ServiceStatus, TaskStatus, task_status
from sfarm.status.services import is_service, service_history, service_status


def read_heartbeat(root: NodeRoot, task: str) -> tuple[Heartbeat | None, str | None]:
    """The task's heartbeat, or None and why it cannot be read (no file is no problem: a
    worker that never ran, or not yet)."""
    path = root.heartbeat(task)
    try:
        return Heartbeat.model_validate_json(path.read_bytes()), None
    except FileNotFoundError:
        return None, None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return None, f"its heartbeat {path} cannot be read ({where + ': ' if where else ''}" \
                     f"{first['msg']})"
    except OSError as error:
        return None, f"its heartbeat {path} cannot be read ({error.strerror or error})"


def deployed_programs(root: NodeRoot) -> set[str]:
    """The programs of the node's supervisord config (none before the first deploy)."""
    try:
        text = config_path(root).read_text()
    except FileNotFoundError:
        return set()
    return set(re.findall(r"^\[program:([^\]]+)\]", text, flags=re.MULTILINE))


def supervised_processes(root: NodeRoot) -> dict[str, dict[str, Any]]:
    """supervisord's process info by program name; none when it does not run (or the root
    was never deployed)."""
    if not root.path.is_dir():
        return {}
    supervisor = Supervisor(root)
    return supervisor.processes() if supervisor.is_running() else {}


def node_task_status(root: NodeRoot, tasks: dict[str, str], now: float | None = None,
                     processes: dict[str, dict[str, Any]] | None = None) -> list[TaskStatus]:
    """Every task's state on this node, from its supervisord config and supervisord (if it
    runs: `processes`, asked here when not given), the tasks' locks (who runs each), the
    heartbeats and, for their inputs, the routes deploy wrote and the resolver's state."""
    if not root.path.is_dir():  # never deployed, or its root deleted: nothing runs there
        missing = f"no node root at {root.path}: `sfarm up` (or `sfarm deploy`) makes it"
        return [TaskStatus(name=name, kind=kind, state="not deployed", last_error=missing)
                for name, kind in tasks.items()]
    if processes is None:
        processes = supervised_processes(root)
    deployed = deployed_programs(root)
    moment = time.time() if now is None else now
    try:
        routes = load_routes(root.path)
    except RunError:  # a damaged routes.json costs the inputs' view, not the node's status
        routes = None
    resolver = read_state(root.path) if routes is not None and routes.peers else None
    statuses = []
    for name, kind in tasks.items():
        heartbeat, problem = read_heartbeat(root, name)
        process = processes.get(name, {})
        holder = task_holder(root, name)
        observed = Observed(deployed=name in deployed, supervisor_pid=process.get("pid") or None,
                            exit_status=process.get("exitstatus"),
                            holder_pid=holder.pid if holder is not None else None,
                            heartbeat_problem=problem)
        status = task_status(name, kind, process.get("statename"), heartbeat, moment, observed)
        if routes is not None:
            reported = heartbeat.inputs if heartbeat is not None else []
            status.inputs = input_statuses(routes, resolver, name, reported, moment)
        statuses.append(status)
    return statuses


# How much of supervisord's log a status reads for the services' restarts: its last lines
# (~256 KiB), cheap enough for every poll; older restarts are not counted.
SUPERVISORD_LOG_LINES = 1000
# The end of a service's log that holds why it fails.
SERVICE_LOG_LINES = 20


def node_service_status(root: NodeRoot, tasks: Iterable[str] = (),
                        processes: dict[str, dict[str, Any]] | None = None
                        ) -> list[ServiceStatus]:
    """The state of every service in this node's supervisord config (sfarm.status.services;
    a program of one of `tasks` is a task's, whatever its name), from supervisord (if it runs:
    `processes`, asked here when not given), its log and the service's own."""
    if not root.path.is_dir():  # never deployed (or its root deleted): no service there
        return []
    workers = set(tasks)
    names = sorted(name for name in deployed_programs(root)
                   if is_service(name) and name not in workers)
    if not names:
        return []
    if processes is None:
        processes = supervised_processes(root)
    daemon_log = tail_lines(log_path(root, None), SUPERVISORD_LOG_LINES)
    statuses = []
    for name in names:
        history = service_history(daemon_log, name)
        # Its log only matters when it may fail: that of one running well is not read.
        doubtful = history.failing or processes.get(name, {}).get("statename") != "RUNNING"
        log_lines = tail_lines(root.log(name), SERVICE_LOG_LINES) if doubtful else ()
        statuses.append(service_status(name, processes.get(name), history, log_lines))
    return statuses


def control(root: NodeRoot, action: Action, names: Iterable[str]) -> list[StepResult]:
    supervisor = Supervisor(root)
    results = []
    if not supervisor.is_running():
        if action == "stop":
            return [StepResult(f"{action} {name}", "ok", "not running") for name in names]
        if not config_path(root).is_file():
            raise RunError(f"nothing to start in {root.path}: it is not deployed",
                           hint="`sfarm up` deploys and starts")
        with node_turn(root) as turn:  # one supervisord, whoever else starts it now
            supervisor.start_daemon()
        results += turn.steps()
    for name in names:
        before = supervisor.processes().get(name, {}).get("statename")
        if action in ("stop", "restart"):
            supervisor.stop(name)
        if action in ("start", "restart"):
            supervisor.start(name)
        after = supervisor.processes().get(name, {}).get("statename")
        status: StepStatus = "ok" if before == after and action != "restart" else "changed"
        results.append(StepResult(f"{action} {name}", status, f"{before} -> {after}"))
    return results


def set_live(root: NodeRoot, names: Iterable[str], armed: bool,
             command: str, operator: str = "", *, stale_only: bool = False) -> list[StepResult]:
    """Arm (or disarm) live trade tasks: see sfarm.trading.live_guard. Arming arms the worker
    supervisord runs now (its pid); a task whose worker does not run cannot be armed. With
    `stale_only`, disarming removes only the arms that name no running worker of their task
    (`up`: a worker it left running stays armed). Every arming and every disarming that
    removed an arm is in the audit log (sfarm.runtime.audit), by `operator`."""
    from sfarm.trading import live_guard

    steps = []
    supervisor = Supervisor(root)
    asks = armed or stale_only
    running = supervisor.processes() if asks and supervisor.is_running() else {}
    for name in names:
        info = running.get(name, {})
        pid = info.get("pid") if info.get("statename") in ("STARTING", "RUNNING") else None
        if armed:
            if not pid:
                steps.append(StepResult(f"arm {name}", "failed",
                                        f"its worker is not running: start it first "
                                        f"(`sfarm start --task {name} --live` does both)"))
                continue
            live_guard.arm(root.path, name, int(pid), command)
            audit.record(root.logs, operator, f"arm {name}", f"{command} (pid {pid})")
            steps.append(StepResult(f"arm {name}", "changed", f"{command} (pid {pid})"))
        elif stale_only and pid and live_guard.is_armed(root.path, name, int(pid)):
            steps.append(StepResult(f"keep armed {name}", "ok",
                                    f"{KEPT_ARMED} (pid {pid}): left running"))
        else:
            existed = live_guard.disarm(root.path, name)
            if existed:
                audit.record(root.logs, operator, f"disarm {name}", command)
            steps.append(StepResult(f"disarm {name}", "changed" if existed else "ok"))
    return steps


def resume(root: NodeRoot, task: str, operator: str = "") -> list[StepResult]:
    """Let `task`'s session, halted by its kill switch, trade again (its worker must be
    stopped: it holds the session's state); recorded in the audit log."""
    from sfarm.trading.session import resume_session

    running = supervised_processes(root)
    if running.get(task, {}).get("statename") in ("STARTING", "RUNNING", "BACKOFF"):
        return [StepResult(f"resume {task}", "failed",
                           "its worker runs: stop it first (`sfarm start --resume` does)")]
    why = resume_session(root.path, task)
    if why is None:
        return [StepResult(f"resume {task}", "ok", "not halted")]
    audit.record(root.logs, operator, f"resume {task}", f"halted: {why}")
    return [StepResult(f"resume {task}", "changed", f"was halted: {why}")]


def shutdown(root: NodeRoot) -> list[StepResult]:
    """Stop every worker and the node's supervisord, then end whatever process of the root is
    left (sfarm.runtime.sweep: a worker started by hand, what a supervisord that died left
    running), and the mounts its resolver left (a resolver killed outright cannot unmount its
    peers' sshfs mounts itself)."""
    if not root.path.is_dir():
        return [StepResult("supervisord", "ok", "not running (never deployed here)")]
    supervisor = Supervisor(root)
    with node_turn(root) as turn:  # not while a deploy starts it
        steps = turn.steps()
        if supervisor.is_running():
            supervisor.shutdown()
            steps.append(StepResult("supervisord", "changed", "stopped"))
        else:
            steps.append(StepResult("supervisord", "ok", "not running"))
        steps += [StepResult("leftover process", "changed", outcome)
                  for outcome in end_processes(node_processes(root))]
    return steps + _unmount_mirrors(root)


def _unmount_mirrors(root: NodeRoot) -> list[StepResult]:
    if not root.mirror.is_dir():
        return []
    from sfarm.resolver.sshfs import SSHFS_FS_TYPE, parse_mountinfo, unmount

    try:
        entries = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError:
        return []
    prefix = f"{root.mirror}/"
    return [StepResult(f"unmount {entry.mount_point}", "changed" if unmount(entry.mount_point)
                       else "ok")
            for entry in entries
            if entry.fs_type == SSHFS_FS_TYPE and entry.mount_point.startswith(prefix)]


def dataset_summaries(root: NodeRoot, ids: Iterable[str] | None = None,
                      mirrors: bool = False) -> list[DatasetSummary]:
    """The node's own datasets (and mirrored ones with `mirrors`), from their manifests;
    `ids` keeps only those. Own data first, then mirrors by producer, each sorted by id."""
    # The store loads only for this request: a status never pays for it.
    from sfarm.data.catalog import list_datasets

    wanted = None if ids is None else {dataset_id.strip("/") for dataset_id in ids}
    # Each info comes from one read of its manifest, so its fields describe one version.
    return [DatasetSummary(id=info.id, node=info.node, rows=info.rows, first_ts=info.first_ts,
                           last_ts=info.last_ts, generation=info.generation,
                           updated_at=info.updated_at, error=info.error)
            for info in list_datasets(root.path)
            if (info.node is None or mirrors) and (wanted is None or info.id in wanted)]


def log_path(root: NodeRoot, name: str | None) -> Path:
    return root.log(name) if name else root.logs / "supervisord.log"


def read_log(root: NodeRoot, name: str | None, *, offset: int | None = None,
             lines: int = 40) -> LogChunk:
    """The last `lines` lines of a log (offset None), or what was written after `offset`
    (from the start again when the file shrank: supervisord rotated it)."""
    path = log_path(root, name)
    if not path.exists():
        return LogChunk([], 0)
    if offset is None:
        return LogChunk(list(tail_lines(path, lines)), path.stat().st_size)
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(offset if offset <= size else 0)
        chunk = handle.read()
    return LogChunk(chunk.decode("utf-8", "replace").splitlines(),
                    (offset if offset <= size else 0) + len(chunk))


def tail_lines(path: Path, count: int) -> Sequence[str]:
    """The last `count` lines of a log, reading only its end."""
    if not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 256 * count))
        lines = handle.read().decode("utf-8", "replace").splitlines()
    return lines[-count:]


def require_root(root: NodeRoot) -> None:
    """Refuse to act on a node root that does not exist: a node never deployed, or its root
    deleted. Saying so beats reporting its tasks `stopped`, or a traceback."""
    if not root.path.is_dir():
        raise RunError(f"no node root at {root.path}",
                       hint="deploy the node first: `sfarm up` (or `sfarm deploy`) makes it")
