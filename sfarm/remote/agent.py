"""A node agent does a node's side of every command. One interface, two kinds of node:
`LocalAgent` calls `sfarm.runtime.node` in-process; `sfarm.remote.ssh_agent.SSHAgent` runs the
same functions on the node through `sfarm node ...` over SSH."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.runtime import node as node_ops
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import Action, LogChunk, StepResult
from sfarm.status import NodeStatus


class NodeAgent(Protocol):
    spec: NodeSpec

    def deploy(self, inventory: LoadedInventory) -> list[StepResult]: ...

    def status(self, tasks: dict[str, str]) -> NodeStatus: ...

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]: ...

    def down(self) -> StepResult: ...

    def set_live(self, names: Iterable[str], armed: bool, command: str) -> list[StepResult]: ...

    def read_log(self, name: str | None, offset: int | None, lines: int) -> LogChunk: ...

    def close(self) -> None: ...


class LocalAgent:
    def __init__(self, spec: NodeSpec, root: Path) -> None:
        self.spec = spec
        self.root = NodeRoot(root)

    def deploy(self, inventory: LoadedInventory) -> list[StepResult]:
        from sfarm.remote.deploy import build_deployment

        return node_ops.apply_deployment(self.root, build_deployment(inventory, self.spec,
                                                                     self.root.path))

    def status(self, tasks: dict[str, str]) -> NodeStatus:
        return NodeStatus(name=self.spec.name, host=self.spec.host, reachable=True,
                          tasks=node_ops.node_task_status(self.root, tasks))

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]:
        return node_ops.control(self.root, action, names)

    def down(self) -> StepResult:
        return node_ops.shutdown(self.root)

    def set_live(self, names: Iterable[str], armed: bool, command: str) -> list[StepResult]:
        return node_ops.set_live(self.root, names, armed, command)

    def read_log(self, name: str | None, offset: int | None, lines: int) -> LogChunk:
        return node_ops.read_log(self.root, name, offset=offset, lines=lines)

    def close(self) -> None:
        pass
