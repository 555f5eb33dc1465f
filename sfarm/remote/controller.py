"""The farm controller: one node operation on every selected node, in parallel.

A failure on one node, whatever it is (unreachable, a timeout, a malformed or failing reply, a
bug), becomes that node's result with a clear error: the other nodes' results are never lost
and no traceback reaches the user. `_on_node` is the one place that turns failures into
results. The commands an operator means (up, live arming, lag) are sfarm.farm's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sfarm.errors import SfarmError, UsageError
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.inventory.problems import did_you_mean, known_names
from sfarm.remote.agent import InProcessTransport, NodeAgent
from sfarm.remote.deploy import local_root
from sfarm.runtime.protocol import Action, StepResult
from sfarm.status import NetworkStatus, NodeStatus

T = TypeVar("T")
log = logging.getLogger(__name__)


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


def describe_failure(error: Exception) -> str:
    """What a person reads about a node's failure: sfarm's own message and hint, else the
    exception's type and text (its traceback goes to the DEBUG log only)."""
    if isinstance(error, SfarmError):
        return error.message + (f"\nhint: {error.hint}" if error.hint else "")
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error}"
    log.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {error}"


class FarmController:
    """Runs node operations on the nodes of one network. With `keep_connections`, each node's
    agent (its SSH connection) stays open between calls, for callers that poll (status
    --watch, the dashboard); `close()` ends them. Otherwise every call opens and closes its
    own."""

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
        """A new agent of the node; close it after use (an SSH agent holds a connection)."""
        if spec.is_local:
            return NodeAgent(spec, InProcessTransport(spec, local_root(self.inventory, spec)))
        # Fabric and paramiko load only when a node needs them.
        from sfarm.remote.ssh import SSHConnection
        from sfarm.remote.ssh_transport import SSHTransport

        return NodeAgent(spec, SSHTransport(spec, SSHConnection(spec)))

    def _with_agent(self, spec: NodeSpec, work: Callable[[NodeAgent], T]) -> T:
        if self._open is None:
            agent = self.agent(spec)
            try:
                return work(agent)
            finally:
                agent.close()
        # Each node is worked on by one thread at a time (see each): no lock needed per key.
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

    def each(self, work: Callable[[NodeSpec, NodeAgent], T],
             failed: Callable[[NodeSpec, str], T],
             nodes: Iterable[NodeSpec] | None = None) -> list[T]:
        """`work` on every node (or `nodes`) in parallel, in node order; a node whose work
        raised anything gets `failed(node, what went wrong)` instead."""
        selected = list(self.nodes if nodes is None else nodes)

        def on_node(spec: NodeSpec) -> T:
            try:
                return self._with_agent(spec, lambda agent: work(spec, agent))
            except Exception as error:  # a node's failure, whatever it is, is its result
                return failed(spec, describe_failure(error))

        if not selected:
            return []
        with ThreadPoolExecutor(max_workers=min(16, len(selected))) as pool:
            return list(pool.map(on_node, selected))

    def _steps_each(self, work: Callable[[NodeSpec, NodeAgent], list[StepResult]],
                    nodes: Iterable[NodeSpec] | None = None) -> list[NodeOutcome]:
        return self.each(lambda spec, agent: NodeOutcome(spec.name, work(spec, agent)),
                         lambda spec, error: NodeOutcome(spec.name, [], error), nodes)

    def tasks_of(self, spec: NodeSpec, task: str | None = None) -> list[str]:
        if task is None:
            return list(spec.tasks)
        return [task] if task in spec.tasks else []

    def check_task(self, task: str | None) -> None:
        if task is None:
            return
        placed = {name for spec in self.nodes for name in spec.tasks}
        if task not in placed:
            raise UsageError(f"no task {task!r} on the selected nodes of {self.network!r}",
                             hint=did_you_mean(task, placed) or known_names("tasks", placed))

    def deploy(self) -> list[NodeOutcome]:
        return self._steps_each(lambda spec, agent: agent.deploy(self.inventory))

    def control(self, action: Action, task: str | None = None) -> list[NodeOutcome]:
        self.check_task(task)
        return self._steps_each(
            lambda spec, agent: agent.control(action, self.tasks_of(spec, task)))

    def set_live(self, names_of: Callable[[NodeSpec], list[str]], armed: bool,
                 command: str) -> list[NodeOutcome]:
        """Arm or disarm, on each node, the live trade tasks `names_of(node)` lists; a node
        with none is not contacted."""
        outcomes = {outcome.node: outcome for outcome in self._steps_each(
            lambda spec, agent: agent.set_live(names_of(spec), armed, command),
            [spec for spec in self.nodes if names_of(spec)])}
        return [outcomes.get(spec.name, NodeOutcome(spec.name, [])) for spec in self.nodes]

    def down(self) -> list[NodeOutcome]:
        return self._steps_each(lambda spec, agent: agent.down())

    def status(self) -> NetworkStatus:
        """Every node's tasks as the nodes report them (sfarm.farm adds the lag)."""
        def work(spec: NodeSpec, agent: NodeAgent) -> NodeStatus:
            return agent.status({name: self.inventory.model.tasks[name].kind
                                 for name in spec.tasks})

        def failed(spec: NodeSpec, error: str) -> NodeStatus:
            return NodeStatus(name=spec.name, host=spec.host, reachable=False, error=error)

        return NetworkStatus(network=self.network, nodes=self.each(work, failed))
