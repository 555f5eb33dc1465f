"""How the nodes of a network reach each other's data: pure, from the plan and deploy's survey.

Deploy first surveys every node (its root, interpreter, host key, the farm key it holds), then
gives each node its wiring: its routes (which peer feeds which input, and how to reach it), the
peers' host keys, its farm key role and its line in authorized_keys. Nothing here does I/O.

The farm key (one per network) goes to consumers only, the nodes that read a peer over SSH; it
is authorized on the producers they read, behind the gate. It is kept while the nodes holding
it are exactly the consumers; otherwise (a consumer added or removed, a node that lost it, or
on demand) a new one replaces it everywhere, so a node that stops consuming keeps no access.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sfarm.errors import UsageError
from sfarm.inventory import NodeSpec
from sfarm.plan import Plan
from sfarm.resolver.authorized import authorized_line, marker
from sfarm.resolver.routes import LOCAL_HOST, FarmKeyInfo, Input, Peer, Routes
from sfarm.runtime.protocol import AuthorizedKeyLine

DEFAULT_SSH_PORT = 22


@dataclass(frozen=True)
class Reach:
    """How peers reach a node: its address as the controller resolved and checked it."""

    host: str  # LOCAL_HOST for a node of this machine
    port: int = DEFAULT_SSH_PORT
    user: str | None = None
    host_key: str | None = None  # "ssh-ed25519 AAAA..."; None for a local node


LOCAL_REACH = Reach(LOCAL_HOST)


@dataclass(frozen=True)
class NodeSurvey:
    """What deploy learnt of a node before wiring the network."""

    node: str
    host: str  # as peers reach it (LOCAL_HOST for a node of this machine)
    port: int
    user: str | None
    root: str
    python: str  # the interpreter of its sfarm: the gate runs with it
    host_key: str | None  # "ssh-ed25519 AAAA...", as the controller checked it; None: local
    farm_key: FarmKeyInfo | None  # what the node holds now

    @property
    def local(self) -> bool:
        return self.host == LOCAL_HOST


@dataclass(frozen=True)
class NodeWiring:
    routes: Routes
    known_hosts: bytes  # the SSH peers' host keys (empty without one)
    farm_key: FarmKeyInfo | None  # None: the node must hold no farm key
    private_key: bytes | None  # the farm key's private half to write (a new key); None: keep
    authorized: AuthorizedKeyLine | None  # None: a local node, its user's keys are not touched


@dataclass(frozen=True)
class FarmKey:
    info: FarmKeyInfo
    private: bytes | None  # None: the consumers hold it already


def consumers(plan: Plan, specs: Mapping[str, NodeSpec]) -> set[str]:
    """The nodes that read a peer over SSH: they hold the farm key."""
    return {transfer.target for transfer in plan.transfers
            if not (specs[transfer.source].is_local and specs[transfer.target].is_local)}


def key_to_keep(holders: set[str], surveys: Mapping[str, NodeSurvey],
                rotate: bool) -> FarmKeyInfo | None:
    """The farm key the network keeps, or None when a new one must be made: every consumer
    surveyed holds one same key, given to exactly the consumers of today."""
    if rotate or not holders:
        return None
    held = {surveys[node].farm_key for node in holders if node in surveys}
    if len(held) != 1:
        return None
    (info,) = held
    if info is None or set(info.holders) != holders:
        return None
    return info


def check_reachable(plan: Plan, specs: Mapping[str, NodeSpec]) -> None:
    """UsageError when a node over SSH would read a node of this machine (it has no address)."""
    for transfer in plan.transfers:
        if specs[transfer.source].is_local and not specs[transfer.target].is_local:
            raise UsageError(
                f"node {transfer.target!r} reads {transfer.dataset} from node "
                f"{transfer.source!r}, which is host = \"local\": a remote node cannot reach it",
                hint=f"give node {transfer.source!r} an address other nodes can reach, or place "
                     "the task that reads it on a local node")


def wire_network(plan: Plan, farm: str, specs: Mapping[str, NodeSpec],
                 surveys: Mapping[str, NodeSurvey], key: FarmKey | None) -> dict[str, NodeWiring]:
    """Every surveyed node's wiring. `key` is the network's farm key (None: no consumer)."""
    check_reachable(plan, specs)
    fed_by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for transfer in plan.transfers:
        fed_by[transfer.target][transfer.source].append(transfer.dataset)
    holders = consumers(plan, specs)
    lines = _authorized_lines(plan, specs, surveys, key, marker(farm, plan.network))
    wiring = {}
    for name, survey in surveys.items():
        peers = tuple(_peer(surveys, source, specs[name].transport, datasets)
                      for source, datasets in sorted(fed_by[name].items()))
        routes = Routes(network=plan.network, node=name, peers=peers,
                        inputs=_inputs(plan, name))
        holds = key is not None and name in holders
        wiring[name] = NodeWiring(
            routes=routes,
            known_hosts=b"".join(_known_host(surveys[peer.node]) for peer in peers
                                 if not peer.local),
            farm_key=key.info if holds and key is not None else None,
            private_key=key.private if holds and key is not None else None,
            authorized=None if survey.local else lines[(survey.host, survey.user)])
    return wiring


def _peer(surveys: Mapping[str, NodeSurvey], source: str, transport: str,
          datasets: list[str]) -> Peer:
    if source not in surveys:
        raise UsageError(f"node {source!r} was not surveyed", hint="deploy the whole network")
    survey = surveys[source]
    return Peer(node=source, host=survey.host, port=survey.port, user=survey.user,
                root=survey.root, transport="sshfs" if transport == "sshfs" else "rsync",
                datasets=tuple(sorted(datasets)))


def _inputs(plan: Plan, node: str) -> dict[str, tuple[Input, ...]]:
    inputs: dict[str, list[Input]] = defaultdict(list)
    for dataset in plan.datasets:
        if dataset.producer is None:
            continue  # computed by the task itself
        for consumer in dataset.consumers:
            if consumer.node == node:
                inputs[consumer.task].append(Input(id=dataset.id,
                                                   source_node=dataset.producer.node))
    return {task: tuple(entries) for task, entries in sorted(inputs.items())}


def _known_host(survey: NodeSurvey) -> bytes:
    if survey.host_key is None:
        return b""
    host = survey.host if survey.port == DEFAULT_SSH_PORT else f"[{survey.host}]:{survey.port}"
    return f"{host} {survey.host_key}\n".encode()


def _authorized_lines(plan: Plan, specs: Mapping[str, NodeSpec],
                      surveys: Mapping[str, NodeSurvey], key: FarmKey | None,
                      mark: str) -> dict[tuple[str, str | None], AuthorizedKeyLine]:
    """One line per unix user of a machine: the roots of its nodes that producers read."""
    read_over_ssh = {transfer.source for transfer in plan.transfers
                     if not specs[transfer.target].is_local}
    roots: dict[tuple[str, str | None], list[NodeSurvey]] = defaultdict(list)
    for survey in surveys.values():
        if survey.node in read_over_ssh:
            roots[(survey.host, survey.user)].append(survey)
    lines = {}
    for survey in surveys.values():
        group = sorted(roots.get((survey.host, survey.user), []), key=lambda s: s.root)
        line = None
        if group and key is not None:
            line = authorized_line(key.info.public_key, group[0].python,
                                   [member.root for member in group], mark)
        lines[(survey.host, survey.user)] = AuthorizedKeyLine(mark, line)
    return lines
