"""A node's agent: every operation on one node, as a request of the node protocol
(sfarm.runtime.protocol) sent through a transport, and its reply.

One agent for every node; what differs is the transport. `InProcessTransport` hands the request
bytes to the node's handler in this process (a local node: no process to start), and
`sfarm.remote.ssh_transport.SSHTransport` runs `sfarm node call` on the node over SSH, or, for a
request that only reads (a status, a log), a relay to the node's resident agent (`query`).
Either way the request is encoded and the reply parsed, so a local farm exercises the whole
protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from sfarm.errors import UsageError
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.runtime.agent_server import READS
from sfarm.runtime.envelope import decode_reply, encode_request
from sfarm.runtime.protocol import (
    Action,
    ApplyRequest,
    ControlRequest,
    DatasetsReply,
    DatasetsRequest,
    DatasetSummary,
    DatasetTail,
    DownRequest,
    FactsReply,
    FactsRequest,
    FormerReply,
    FormerRequest,
    LiveRequest,
    LogChunk,
    LogReply,
    LogRequest,
    NodeAddress,
    Request,
    ResumeRequest,
    SessionReply,
    SessionRequest,
    SessionView,
    StatusReply,
    StatusRequest,
    StepResult,
    StepsReply,
    TailReply,
    TailRequest,
)
from sfarm.status import NodeStatus

if TYPE_CHECKING:  # the wiring and the plan are deploy's: a status loads neither
    from sfarm.plan import Plan
    from sfarm.remote.connection import Connection, LocalConnection
    from sfarm.remote.wiring import NodeWiring, Reach

R = TypeVar("R", bound=BaseModel)


class NodeTransport(Protocol):
    """How an agent reaches its node: request bytes in, reply bytes out."""

    @property
    def where(self) -> str:
        """The node as messages name it: "node lab (this machine)"."""
        ...

    @property
    def root(self) -> str:
        """The node root, as a path on the node's machine."""
        ...

    @property
    def connection(self) -> Connection:
        """The node's machine, for what is no request (rsync of datasets)."""
        ...

    def reach(self) -> Reach:
        """How peers reach the node (address, host key)."""
        ...

    def install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        """Make the node able to answer this sfarm's requests (deploy's first step), with no
        package index on the node when `offline`; the steps and the python its workers run
        with (None: the deployment's default)."""
        ...

    def check_install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        """What `install` would do, doing nothing (a dry run): its steps ("changed": would
        install, so the node cannot answer this sfarm's requests yet) and the python."""
        ...

    def call(self, request: bytes) -> bytes: ...

    def query(self, request: bytes) -> bytes:
        """`call` for a request that only reads (sfarm.runtime.agent_server.READS): one the
        node's resident agent may answer."""
        ...

    def close(self) -> None: ...


class InProcessTransport:
    """A node root on this machine: the node's handler runs in this process."""

    def __init__(self, spec: NodeSpec, root: Path) -> None:
        self.where = f"node {spec.name} (this machine)"
        self._root = root
        self._connection: LocalConnection | None = None

    @property
    def root(self) -> str:
        return str(self._root)

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            from sfarm.remote.connection import LocalConnection

            self._connection = LocalConnection()
        return self._connection

    def reach(self) -> Reach:
        from sfarm.remote.wiring import LOCAL_REACH

        return LOCAL_REACH

    def install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        return [], None  # a local node runs the sfarm running this command: nothing to install

    def check_install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        return [], None

    def call(self, request: bytes) -> bytes:
        from sfarm.runtime.handler import handle

        return handle(self._root, request)

    def query(self, request: bytes) -> bytes:
        return self.call(request)

    def close(self) -> None:
        pass


class NodeAgent:
    """Every operation on one node. Failures raise SfarmError: the node's own error reply
    (protocol.NodeError), an unusable reply (protocol.ProtocolError) or the transport's."""

    def __init__(self, spec: NodeSpec, transport: NodeTransport) -> None:
        self.spec = spec
        self.transport = transport

    def call(self, request: Request, expected: type[R]) -> R:
        raw = encode_request(request)
        reply = (self.transport.query(raw) if isinstance(request, READS)
                 else self.transport.call(raw))
        return decode_reply(reply, expected, self.transport.where)

    def apply(self, inventory: LoadedInventory, python: str | None,
              wiring: NodeWiring | None, *, dry_run: bool = False,
              boot: bool = False, plan: Plan | None = None) -> list[StepResult]:
        """Make the node match the inventory (`python`: its interpreter, from install); with
        `dry_run` say what would change, changing nothing; with `boot`, supervisord starts at
        boot (see ApplyRequest). `plan`: the network's, when at hand."""
        from sfarm.remote.deploy import build_deployment

        deployment = build_deployment(inventory, self.spec, Path(self.transport.root), python,
                                      wiring, plan)
        request = ApplyRequest(deployment=deployment, dry_run=dry_run, boot=boot,
                               operator=operator_identity())
        return self.call(request, StepsReply).steps

    def status(self, tasks: dict[str, str]) -> NodeStatus:
        reply = self.call(StatusRequest(tasks=tasks), StatusReply)
        return NodeStatus(name=self.spec.name, host=self.spec.host, reachable=True,
                          tasks=reply.tasks, services=reply.services)

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]:
        return self.call(ControlRequest(action=action, tasks=list(names)), StepsReply).steps

    def set_live(self, names: Iterable[str], armed: bool, command: str, *,
                 stale_only: bool = False) -> list[StepResult]:
        request = LiveRequest(tasks=list(names), armed=armed, by=command,
                              operator=operator_identity(), stale_only=stale_only)
        return self.call(request, StepsReply).steps

    def former(self, forget: Iterable[str] = ()) -> list[NodeAddress]:
        """The former nodes of the network this node remembers, once it forgot `forget`
        (sfarm.runtime.former)."""
        return self.call(FormerRequest(forget=list(forget)), FormerReply).nodes

    def resume(self, task: str) -> list[StepResult]:
        request = ResumeRequest(task=task, operator=operator_identity())
        return self.call(request, StepsReply).steps

    def down(self) -> list[StepResult]:
        return self.call(DownRequest(), StepsReply).steps

    def read_log(self, name: str | None, offset: int | None, lines: int) -> LogChunk:
        return self.call(LogRequest(task=name, offset=offset, lines=lines), LogReply).chunk

    def datasets(self, ids: Iterable[str] | None = None,
                 mirrors: bool = False) -> list[DatasetSummary]:
        request = DatasetsRequest(ids=None if ids is None else list(ids), mirrors=mirrors)
        return self.call(request, DatasetsReply).datasets

    def facts(self) -> FactsReply:
        return self.call(FactsRequest(), FactsReply)

    def tail(self, dataset_id: str, limit: int = 120, *,
             mirror_of: str | None = None) -> DatasetTail:
        """The last `limit` rows of a dataset the node holds (see TailRequest); a dataset
        missing or unreadable is a tail with `error`."""
        request = _asked(TailRequest, id=dataset_id, limit=limit, mirror_of=mirror_of)
        return self.call(request, TailReply).tail

    def session(self, task: str, points: int = 200, trades: int = 10) -> SessionView | None:
        """Trade task `task`'s session on the node (see SessionRequest); None before its
        first step."""
        request = _asked(SessionRequest, task=task, points=points, trades=trades)
        return self.call(request, SessionReply).session

    def close(self) -> None:
        self.transport.close()


def _asked(model: type[R], **fields: object) -> R:
    """The request `model` with `fields`; UsageError naming what is out of range (a limit of
    0, too many points) instead of pydantic's exception."""
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
                             for item in error.errors())
        raise UsageError(f"bad {model.__name__}: {problems}") from None


def operator_identity() -> str:
    """user@host of this command: who the nodes' audit logs name."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"
