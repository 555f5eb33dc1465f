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

import itertools
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sfarm.errors import UsageError
from sfarm.inventory import NodeSpec
from sfarm.plan import Plan
from sfarm.resolver.authorized import authorized_line, jump_line, marker
from sfarm.resolver.routes import (
    KEY_KINDS,
    LOCAL_HOST,
    FarmKeyInfo,
    Hop,
    Input,
    KeyKind,
    Peer,
    Routes,
)
from sfarm.resolver.sshfs_command import sftp_authorized_line
from sfarm.runtime.protocol import AuthorizedKeyLine

DEFAULT_SSH_PORT = 22


@dataclass(frozen=True)
class Reach:
    """How peers reach a node: its address as the controller resolved and checked it."""

    host: str  # LOCAL_HOST for a node of this machine
    port: int = DEFAULT_SSH_PORT
    user: str | None = None
    host_key: str | None = None  # "ssh-ed25519 AAAA..."; None for a local node
    jumps: tuple[Hop, ...] = ()  # its proxy_jump hosts, the first one first
    jump_keys: tuple[str, ...] = ()  # their host keys, as the controller checked them


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
    farm_key: FarmKeyInfo | None = None  # the keys the node holds now
    sshfs_key: FarmKeyInfo | None = None
    sftp_server: str | None = None  # its sftp-server (an SSHFS key's forced command)
    jumps: tuple[Hop, ...] = ()  # how the controller reached it (proxy_jump), the first first
    jump_keys: tuple[str, ...] = ()

    @property
    def local(self) -> bool:
        return self.host == LOCAL_HOST

    def holds(self, kind: KeyKind) -> FarmKeyInfo | None:
        return self.farm_key if kind == "farm" else self.sshfs_key


@dataclass(frozen=True)
class FarmKey:
    """A network key of one kind: its public facts, and its private half when it is new."""

    info: FarmKeyInfo
    private: bytes | None  # None: the consumers hold it already


@dataclass(frozen=True)
class NodeKey:
    """A node's part of one network key."""

    kind: KeyKind
    info: FarmKeyInfo | None  # None: the node must hold no key of this kind
    private: bytes | None  # the private half to write (a new key); None: keep what it holds
    authorized: AuthorizedKeyLine | None  # None: a local node, its user's keys are untouched


@dataclass(frozen=True)
class NodeWiring:
    routes: Routes
    known_hosts: bytes  # every SSH node's host key (and its jump hosts'), empty without one
    keys: tuple[NodeKey, ...]  # one per key kind
    jump_lines: tuple[AuthorizedKeyLine, ...] = ()  # where the node is a peer's jump host

    @property
    def mounts(self) -> bool:
        """Whether the node mounts a peer with sshfs."""
        return any(peer.transport == "sshfs" for peer in self.routes.peers)


def _over_ssh(specs: Mapping[str, NodeSpec], source: str, target: str) -> bool:
    return not (specs[source].is_local and specs[target].is_local)


def transport_of(specs: Mapping[str, NodeSpec], source: str, target: str) -> KeyKind | None:
    """How `target` reads `source`: with the farm key (rsync), the SSHFS key, or no key (both
    nodes on this machine: the gate without SSH)."""
    if not _over_ssh(specs, source, target):
        return None
    return "sshfs" if specs[target].transport == "sshfs" else "farm"


def consumers(plan: Plan, specs: Mapping[str, NodeSpec], kind: KeyKind = "farm") -> set[str]:
    """The nodes that read a peer over SSH the `kind` way: they hold that key."""
    return {transfer.target for transfer in plan.transfers
            if transport_of(specs, transfer.source, transfer.target) == kind}


def key_to_keep(holders: set[str], surveys: Mapping[str, NodeSurvey], rotate: bool,
                kind: KeyKind = "farm") -> FarmKeyInfo | None:
    """The key of `kind` the network keeps, or None when a new one must be made: every
    consumer surveyed holds one same key, given to exactly the consumers of today."""
    if rotate or not holders:
        return None
    held = {surveys[node].holds(kind) for node in holders if node in surveys}
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
                 surveys: Mapping[str, NodeSurvey],
                 keys: Mapping[KeyKind, FarmKey | None]) -> dict[str, NodeWiring]:
    """Every surveyed node's wiring, but for nodes that read from a node not surveyed (see
    unsurveyed_producers). `keys`: the network's key of each kind (None: nobody reads that
    way)."""
    check_reachable(plan, specs)
    fed_by: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for transfer in plan.transfers:
        fed_by[transfer.target][transfer.source].append(transfer.dataset)
    lines = {kind: _authorized_lines(plan, specs, surveys, keys.get(kind),
                                     marker(farm, plan.network, kind), kind)
             for kind in KEY_KINDS}
    holders = {kind: consumers(plan, specs, kind) for kind in KEY_KINDS}
    jumps = jump_lines_of(plan, farm, specs, surveys, keys)
    # Every node holds every SSH node's host key: its resolver checks its peers with them, and
    # an operator managing the farm from it checks every node with them.
    known_hosts = b"".join(_known_host(surveys[name]) for name in sorted(surveys)
                           if not surveys[name].local)
    wiring = {}
    for name, survey in surveys.items():
        if unsurveyed_producers(plan, surveys, name):
            continue  # it cannot be told where its inputs come from: see unsurveyed_producers
        peers = tuple(_peer(surveys, source, transport_of(specs, source, name), datasets)
                      for source, datasets in sorted(fed_by[name].items()))
        routes = Routes(network=plan.network, node=name, peers=peers,
                        inputs=_inputs(plan, name))
        node_keys = []
        for kind in KEY_KINDS:
            key = keys.get(kind) if name in holders[kind] else None
            node_keys.append(NodeKey(kind, key.info if key else None,
                                     key.private if key else None,
                                     None if survey.local else lines[kind][(survey.host,
                                                                            survey.user)]))
        wiring[name] = NodeWiring(
            routes=routes,
            known_hosts=known_hosts,
            keys=tuple(node_keys),
            jump_lines=() if survey.local else tuple(
                lines.get(_hop_of(survey), AuthorizedKeyLine(mark, None))
                for mark, lines in jumps.items()))
    return wiring


def unsurveyed_producers(plan: Plan, surveys: Mapping[str, NodeSurvey], node: str) -> list[str]:
    """The nodes `node` reads from that were not surveyed (unreachable during deploy): it gets
    no wiring, rather than a wrong one, until they are."""
    return sorted({transfer.source for transfer in plan.transfers
                   if transfer.target == node and transfer.source not in surveys})


def _hop_of(survey: NodeSurvey) -> Hop:
    return Hop(host=survey.host, port=survey.port, user=survey.user)


def jump_lines_of(plan: Plan, farm: str, specs: Mapping[str, NodeSpec],
                  surveys: Mapping[str, NodeSurvey], keys: Mapping[KeyKind, FarmKey | None]
                  ) -> dict[str, dict[Hop, AuthorizedKeyLine]]:
    """For each key kind's jump marker, every jump host that a consumer goes through and its
    line: the key may forward only to the next hop or the producer, and nothing else."""
    result: dict[str, dict[Hop, AuthorizedKeyLine]] = {}
    for kind in KEY_KINDS:
        mark = marker(farm, plan.network, f"{kind}-jump")
        targets: dict[Hop, set[str]] = defaultdict(set)
        for transfer in plan.transfers:
            producer = surveys.get(transfer.source)
            if transport_of(specs, transfer.source, transfer.target) != kind or not producer:
                continue
            chain = [*producer.jumps, _hop_of(producer)]
            for hop, onward in itertools.pairwise(chain):
                targets[hop].add(onward.address)
        key = keys.get(kind)
        result[mark] = {hop: AuthorizedKeyLine(mark, jump_line(key.info.public_key,
                                                               sorted(opens), mark)
                                               if key is not None else None)
                        for hop, opens in targets.items()}
    return result


def _peer(surveys: Mapping[str, NodeSurvey], source: str, kind: KeyKind | None,
          datasets: list[str]) -> Peer:
    survey = surveys[source]
    host = LOCAL_HOST if kind is None else survey.host
    return Peer(node=source, host=host, port=survey.port, user=survey.user, root=survey.root,
                transport="sshfs" if kind == "sshfs" else "rsync",
                datasets=tuple(sorted(datasets)), jumps=() if kind is None else survey.jumps)


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
    """The node's host key, and its jump hosts' keys, as known_hosts lines."""
    if survey.host_key is None:
        return b""
    named = [(_hop_of(survey), survey.host_key), *zip(survey.jumps, survey.jump_keys,
                                                       strict=True)]
    return b"".join(f"{_known_name(hop)} {key}\n".encode() for hop, key in named)


def _known_name(hop: Hop) -> str:
    host = f"[{hop.host}]" if ":" in hop.host else hop.host
    return host if hop.port == DEFAULT_SSH_PORT else f"[{hop.host}]:{hop.port}"


def _authorized_lines(plan: Plan, specs: Mapping[str, NodeSpec],
                      surveys: Mapping[str, NodeSurvey], key: FarmKey | None, mark: str,
                      kind: KeyKind) -> dict[tuple[str, str | None], AuthorizedKeyLine]:
    """One line per unix user of a machine. The farm key's covers the roots of its nodes that
    are read with it (the gate confines it to their data/); the SSHFS key's is sftp-server -R,
    which reads whatever that user can."""
    read = {transfer.source for transfer in plan.transfers
            if transport_of(specs, transfer.source, transfer.target) == kind}
    roots: dict[tuple[str, str | None], list[NodeSurvey]] = defaultdict(list)
    for survey in surveys.values():
        if survey.node in read:
            roots[(survey.host, survey.user)].append(survey)
    lines = {}
    for survey in surveys.values():
        group = sorted(roots.get((survey.host, survey.user), []), key=lambda s: s.root)
        line = None
        if group and key is not None:
            line = _line(kind, key.info.public_key, group, mark)
        lines[(survey.host, survey.user)] = AuthorizedKeyLine(mark, line)
    return lines


def _line(kind: KeyKind, public_key: str, group: list[NodeSurvey], mark: str) -> str:
    if kind == "farm":
        return authorized_line(public_key, group[0].python, [m.root for m in group], mark)
    sftp = next((member.sftp_server for member in group if member.sftp_server), None)
    if sftp is None:
        raise UsageError(f"node {group[0].node!r} has no sftp-server, which transport = "
                         "\"sshfs\" reads it with",
                         hint="install openssh-server's sftp-server there, or read it with "
                              "transport = \"rsync\"")
    return sftp_authorized_line(public_key, sftp, mark)
