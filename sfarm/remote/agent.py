"""A node agent does a node's side of every command. One interface, two kinds of node:
`LocalAgent` calls `sfarm.runtime.node` in-process; the SSH agent (with the deployment issue)
will run the same functions on the node through `sfarm node ...` over Fabric."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from sfarm.errors import RunError
from sfarm.inventory import NodeSpec
from sfarm.runtime import node as node_ops
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import Action, Deployment, StepResult
from sfarm.status import NodeStatus


class NodeAgent(Protocol):
    spec: NodeSpec

    def deploy(self, deployment: Deployment) -> list[StepResult]: ...

    def status(self, tasks: dict[str, str]) -> NodeStatus: ...

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]: ...

    def down(self) -> StepResult: ...

    def log_file(self, name: str | None) -> Path: ...


class LocalAgent:
    def __init__(self, spec: NodeSpec, root: Path) -> None:
        self.spec = spec
        self.root = NodeRoot(root)

    def deploy(self, deployment: Deployment) -> list[StepResult]:
        return node_ops.apply_deployment(self.root, deployment)

    def status(self, tasks: dict[str, str]) -> NodeStatus:
        return NodeStatus(name=self.spec.name, host=self.spec.host, reachable=True,
                          tasks=node_ops.node_task_status(self.root, tasks))

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]:
        return node_ops.control(self.root, action, names)

    def down(self) -> StepResult:
        return node_ops.shutdown(self.root)

    def log_file(self, name: str | None) -> Path:
        return node_ops.log_path(self.root, name)


class UnreachableAgent:
    """A node sfarm cannot act on (yet): every call fails with the reason."""

    def __init__(self, spec: NodeSpec, reason: str) -> None:
        self.spec = spec
        self.reason = reason

    def _fail(self) -> RunError:
        return RunError(f"node {self.spec.name} ({self.spec.host}): {self.reason}")

    def deploy(self, deployment: Deployment) -> list[StepResult]:
        raise self._fail()

    def status(self, tasks: dict[str, str]) -> NodeStatus:
        return NodeStatus(name=self.spec.name, host=self.spec.host, reachable=False,
                          error=self.reason)

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]:
        raise self._fail()

    def down(self) -> StepResult:
        raise self._fail()

    def log_file(self, name: str | None) -> Path:
        raise self._fail()
