"""What a worker reports about itself (the heartbeat) and what `sfarm status` shows.

A worker writes its `Heartbeat` to `run/<task>.json` at least every few seconds; the status
collector combines it with the supervisor's view of the process into a `TaskStatus`. Both are
plain data: the combination rules (`task_status`) are pure and tested without processes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskState = Literal["running", "stopped", "starting", "failed", "stale", "halted",
                    "not deployed", "unknown"]
TASK_STATES: tuple[str, ...] = ("running", "stopped", "starting", "failed", "stale", "halted",
                                "not deployed", "unknown")
# States in which a worker process is said to run: what a damaged heartbeat cannot confirm.
_ALIVE_STATES = ("running", "starting", "stale")

HEARTBEAT_INTERVAL_S = 5.0
# A heartbeat older than this many intervals means the worker is stuck, not just busy.
STALE_AFTER_INTERVALS = 3


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DatasetProgress(_Model):
    id: str
    last_ts: int | None = None
    rows: int = 0


class DatasetStatus(DatasetProgress):
    """A task's output as `sfarm status` shows it: its progress and, filled in by the farm's
    status (sfarm.farm), how many seconds it is behind the last closed candle of its timeframe
    (None: no data, or a dataset without a timeframe)."""

    lag_s: float | None = None


class InputStatus(_Model):
    """An input of a task as its node's resolver sees it: where it comes from, the last candle
    the node holds, and since when (unix seconds) it may lag its producer (None: current)."""

    id: str
    source_node: str
    last_ts: int | None = None
    stale_since: float | None = None


class TradeProgress(_Model):
    equity: float
    position: float
    pnl: float


class Heartbeat(_Model):
    """The content of `run/<task>.json`, written atomically by the worker."""

    task: str
    kind: str
    state: TaskState
    pid: int | None = None
    started_at: float  # unix seconds
    heartbeat: float  # unix seconds of this write
    interval_s: float = HEARTBEAT_INTERVAL_S
    outputs: list[DatasetProgress] = []
    inputs: list[DatasetProgress] = []
    counters: dict[str, int] = {}
    last_error: str | None = None
    waiting_for: str | None = None
    trade: TradeProgress | None = None


# supervisord's process states, reduced to what an operator needs to know.
_SUPERVISOR_STATES: dict[str, TaskState] = {
    "RUNNING": "running", "STARTING": "starting", "BACKOFF": "starting",
    "STOPPING": "stopped", "STOPPED": "stopped", "EXITED": "stopped",
    "FATAL": "failed", "UNKNOWN": "failed",
}


class TaskStatus(_Model):
    name: str
    kind: str
    state: TaskState
    pid: int | None = None
    heartbeat_age_s: float | None = None
    last_error: str | None = None
    waiting_for: str | None = None
    datasets: list[DatasetStatus] = []
    inputs: list[InputStatus] = []
    trade: TradeProgress | None = None

    @property
    def lag_s(self) -> float | None:
        """The largest lag of its datasets: how far the task is behind, as a whole."""
        lags = [dataset.lag_s for dataset in self.datasets if dataset.lag_s is not None]
        return max(lags) if lags else None


class ServiceStatus(_Model):
    """A program supervisord runs on a node beside the tasks' workers (the exchange emulator,
    the data resolver, the resident agent; sfarm.status.services): its state, how often
    supervisord restarted it since it started, and why it fails (None while it runs)."""

    name: str
    state: TaskState
    restarts: int = 0
    pid: int | None = None
    last_error: str | None = None


class NodeStatus(_Model):
    name: str
    host: str
    reachable: bool
    error: str | None = None
    tasks: list[TaskStatus] = []
    services: list[ServiceStatus] = []

    @property
    def failed_services(self) -> list[ServiceStatus]:
        """The services that do not run although they should: what turns the node red."""
        return [service for service in self.services if service.state == "failed"]


class NetworkStatus(_Model):
    network: str
    nodes: list[NodeStatus] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def healthy(self) -> bool:
        """Every node reachable, every task and every service running, every input
        current."""
        return all(node.reachable and all(
            task.state == "running" and all(entry.stale_since is None for entry in task.inputs)
            for task in node.tasks)
            and all(service.state == "running" for service in node.services)
            for node in self.nodes)


class Observed(_Model):
    """What a node knows of a task's worker besides its heartbeat: whether the task is in the
    node's supervisord config at all (`deployed`), supervisord's pid of its program and its
    last exit status, the live process
    holding the task's lock (sfarm.runtime.task_lock: the worker that runs it, supervised or
    not), and why the heartbeat file could not be read when it could not."""

    deployed: bool = True
    supervisor_pid: int | None = None
    exit_status: int | None = None
    holder_pid: int | None = None
    heartbeat_problem: str | None = None


# The exit status of a worker that refused to start because another one runs its task
# (sfarm.runtime.task_lock); EX_UNAVAILABLE.
TASK_HELD_EXIT = 69


def task_status(name: str, kind: str, supervisor_state: str | None,
                heartbeat: Heartbeat | None, now: float,
                observed: Observed | None = None) -> TaskStatus:
    """Combine the supervisor's process state with the worker's own heartbeat.

    The supervisor knows whether the process exists; the heartbeat knows whether it makes
    progress. A running process whose heartbeat is older than STALE_AFTER_INTERVALS intervals
    is `stale`; a worker that halted itself (kill switch) stays `halted` whatever its process.

    `observed` adds what only the node can see: a task missing from the deployed config is
    `not deployed`; a live holder of the task's lock that is not supervisord's worker of it
    (started by hand, or left by a supervisord that died) means the task runs, unsupervised,
    and says so; a heartbeat that exists but cannot be read makes a live worker `unknown`,
    never `running`.
    """
    seen = Observed() if observed is None else observed
    state: TaskState = _SUPERVISOR_STATES.get(supervisor_state or "", "stopped")
    if not seen.deployed and seen.holder_pid is None:
        return TaskStatus(name=name, kind=kind, state="not deployed",
                          last_error=f"task {name} is not in this node's supervisord config: "
                                     f"`sfarm deploy` (or `sfarm up`) deploys it")
    problems = []
    supervised = supervisor_state in ("RUNNING", "STARTING")
    unsupervised = seen.holder_pid is not None and (
        not supervised or seen.supervisor_pid != seen.holder_pid)
    if unsupervised:
        state = "running"
        problems.append(f"its worker pid {seen.holder_pid} runs outside this node's "
                        f"supervisord (started by hand, or left by a supervisord that died): "
                        f"`sfarm down` ends it, then `sfarm up` starts one supervised")
    elif supervisor_state == "EXITED" and seen.exit_status == TASK_HELD_EXIT:
        state = "failed"
        problems.append("its worker refused to start: another process was running the task "
                        "(see its log); `sfarm start` starts it again")
    worker_pid = (seen.holder_pid if unsupervised
                  else seen.supervisor_pid if supervised else None)
    if heartbeat is not None and worker_pid is not None and heartbeat.pid != worker_pid \
            and heartbeat.state != "halted":  # a kill switch outlives its worker
        # The heartbeat of the worker before this one (a restart, an `up` after `down`, a
        # worker started by hand after supervisord died): its rows and state say nothing of
        # the worker running now, which has not beaten yet.
        heartbeat = None
    age = None if heartbeat is None else max(0.0, now - heartbeat.heartbeat)
    if heartbeat is not None:
        if heartbeat.state == "halted":
            state = "halted"
        elif state == "running":
            if age is not None and age > STALE_AFTER_INTERVALS * heartbeat.interval_s:
                state = "stale"
            elif heartbeat.state in ("starting", "failed"):
                state = heartbeat.state
    elif seen.heartbeat_problem is not None:
        problems.insert(0, seen.heartbeat_problem)
        if state in _ALIVE_STATES:
            state = "unknown"
    if heartbeat is not None and heartbeat.last_error:
        problems.append(heartbeat.last_error)
    pid = (seen.holder_pid if unsupervised
           else heartbeat.pid if heartbeat is not None and state != "stopped" else None)
    return TaskStatus(
        name=name, kind=kind, state=state, pid=pid,
        heartbeat_age_s=None if age is None else round(age, 3),
        last_error="; ".join(problems) or None,
        waiting_for=heartbeat.waiting_for if heartbeat else None,
        datasets=[DatasetStatus(**output.model_dump()) for output in heartbeat.outputs]
        if heartbeat else [],
        trade=heartbeat.trade if heartbeat else None,
    )
