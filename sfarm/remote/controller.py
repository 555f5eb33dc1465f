"""The farm controller: run a command's node side on every selected node, in parallel.

A failure on one node never stops the others; each node's outcome is reported, and the command's
exit status comes from the outcomes (1 when any node failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sfarm.errors import SfarmError, UsageError
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.inventory.problems import did_you_mean, known_names
from sfarm.remote.agent import LocalAgent, NodeAgent
from sfarm.remote.connection import Connection, LocalConnection
from sfarm.remote.deploy import local_root
from sfarm.runtime.node import Action, StepResult
from sfarm.status import NetworkStatus, NodeStatus

T = TypeVar("T")


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    steps: list[StepResult]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(step.status != "failed" for step in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "ok": self.ok, "error": self.error,
                "steps": [step.to_json() for step in self.steps]}


class FarmController:
    """Runs commands on the nodes of one network. With `keep_connections`, each node's agent
    (its SSH connection) stays open between calls, for callers that poll (status --watch, the
    dashboard); `close()` ends them. Otherwise every call opens and closes its own."""

    def __init__(self, inventory: LoadedInventory, network: str,
                 node: str | None = None, *, keep_connections: bool = False) -> None:
        self.inventory = inventory
        self.network = network
        self._open: dict[str, NodeAgent] | None = {} if keep_connections else None
        nodes = inventory.nodes(network)
        if node is not None:
            names = [spec.name for spec in nodes]
            if node not in names:
                raise UsageError(f"no node {node!r} in network {network!r}",
                                 hint=did_you_mean(node, names) or known_names("nodes", names))
            nodes = [spec for spec in nodes if spec.name == node]
        self.nodes = nodes

    def agent(self, spec: NodeSpec) -> NodeAgent:
        """The node's agent; close it after use (an SSH agent holds a connection)."""
        if spec.is_local:
            return LocalAgent(spec, local_root(self.inventory, spec))
        # Fabric and paramiko load only when a node needs them.
        from sfarm.remote.ssh import SSHConnection
        from sfarm.remote.ssh_agent import SSHAgent

        return SSHAgent(spec, SSHConnection(spec))

    def node_access(self, spec: NodeSpec) -> tuple[Connection, str]:
        """A connection to the node's machine and its node root there (close the connection)."""
        if spec.is_local:
            return LocalConnection(), str(local_root(self.inventory, spec))
        from sfarm.remote.ssh import SSHConnection
        from sfarm.remote.ssh_agent import SSHAgent

        connection = SSHConnection(spec)
        return connection, SSHAgent(spec, connection).root

    def _with_agent(self, spec: NodeSpec, work: Callable[[NodeAgent], T]) -> T:
        if self._open is None:
            agent = self.agent(spec)
            try:
                return work(agent)
            finally:
                agent.close()
        # Each node is worked on by one thread at a time (see _each): no lock needed per key.
        agent = self._open.get(spec.name) or self._open.setdefault(spec.name, self.agent(spec))
        try:
            return work(agent)
        except BaseException:
            # The connection may be what failed: the next call opens a new one.
            self._open.pop(spec.name, None)
            agent.close()
            raise

    def close(self) -> None:
        """Close the agents kept open (keep_connections)."""
        for agent in (self._open or {}).values():
            agent.close()
        if self._open:
            self._open.clear()

    def tasks_of(self, spec: NodeSpec, task: str | None = None) -> list[str]:
        if task is None:
            return list(spec.tasks)
        return [task] if task in spec.tasks else []

    def _each(self, work: Callable[[NodeSpec], T]) -> list[T]:
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(self.nodes)))) as pool:
            return list(pool.map(work, self.nodes))

    def _outcome(self, spec: NodeSpec, work: Callable[[], list[StepResult]]) -> NodeOutcome:
        try:
            return NodeOutcome(spec.name, work())
        except SfarmError as error:
            return NodeOutcome(spec.name, [], error.message)
        except OSError as error:
            return NodeOutcome(spec.name, [], f"{type(error).__name__}: {error}")

    def check_task(self, task: str | None) -> None:
        if task is None:
            return
        placed = {name for spec in self.nodes for name in spec.tasks}
        if task not in placed:
            raise UsageError(f"no task {task!r} on the selected nodes of {self.network!r}",
                             hint=did_you_mean(task, placed) or known_names("tasks", placed))

    def deploy(self) -> list[NodeOutcome]:
        return self._each(lambda spec: self._outcome(spec, lambda: self._with_agent(
            spec, lambda agent: agent.deploy(self.inventory))))

    def control(self, action: Action, task: str | None = None) -> list[NodeOutcome]:
        self.check_task(task)

        def work(spec: NodeSpec) -> NodeOutcome:
            names = self.tasks_of(spec, task)
            return self._outcome(spec, lambda: self._with_agent(
                spec, lambda agent: agent.control(action, names)))

        return self._each(work)

    def set_live(self, names_of: Callable[[NodeSpec], list[str]], armed: bool,
                 command: str) -> list[NodeOutcome]:
        """Arm or disarm, on each node, the live trade tasks `names_of(node)` lists."""
        def work(spec: NodeSpec) -> NodeOutcome:
            names = names_of(spec)
            if not names:
                return NodeOutcome(spec.name, [])
            return self._outcome(spec, lambda: self._with_agent(
                spec, lambda agent: agent.set_live(names, armed, command)))

        return self._each(work)

    def down(self) -> list[NodeOutcome]:
        return self._each(lambda spec: self._outcome(spec, lambda: self._with_agent(
            spec, lambda agent: [agent.down()])))

    def status(self) -> NetworkStatus:
        def work(spec: NodeSpec) -> NodeStatus:
            tasks = {name: self.inventory.model.tasks[name].kind for name in spec.tasks}
            try:
                return self._with_agent(spec, lambda agent: agent.status(tasks))
            except (SfarmError, OSError) as error:
                message = error.message if isinstance(error, SfarmError) else str(error)
                return NodeStatus(name=spec.name, host=spec.host, reachable=False,
                                  error=message)

        return NetworkStatus(network=self.network, nodes=self._each(work))

    def wait_until(self, ready: Callable[[NetworkStatus], bool], timeout_s: float,
                   on_poll: Callable[[NetworkStatus], None] | None = None,
                   interval_s: float = 1.0) -> NetworkStatus:
        """Poll status until `ready` or the timeout; return the last status."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.status()
            if on_poll is not None:
                on_poll(status)
            if ready(status) or time.monotonic() >= deadline:
                return status
            time.sleep(interval_s)


def running_with_data(status: NetworkStatus) -> bool:
    """Every task runs and every output it reports has rows: the farm is up and producing."""
    return all(
        node.reachable and node.tasks and all(
            task.state == "running" and task.datasets and all(d.rows > 0 for d in task.datasets)
            for task in node.tasks)
        for node in status.nodes)

