"""The farm controller: one node operation on every selected node, in parallel.

A failure on one node, whatever it is (unreachable, a timeout, a malformed or failing reply, a
bug), becomes that node's result with a clear error: the other nodes' results are never lost
and no traceback reaches the user. `_on_node` is the one place that turns failures into
results. The commands an operator means (up, live arming, lag) are sfarm.farm's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sfarm.errors import SfarmError, UsageError
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.inventory.problems import did_you_mean, known_names
from sfarm.remote.agent import InProcessTransport, NodeAgent
from sfarm.remote.defaults import CONNECT_TIMEOUT_S, DEFAULT_FORKS, READ_PARALLEL
from sfarm.remote.local_root import local_root
from sfarm.resolver.routes import KNOWN_HOSTS_FILE
from sfarm.runtime.envelope import NodeError
from sfarm.runtime.protocol import Action, StepResult
from sfarm.status import NetworkStatus, NodeStatus

if TYPE_CHECKING:  # deploy's machinery (the plan, the wiring) loads when deploy runs
    from sfarm.plan import Plan
    from sfarm.remote.refresh import StatusRefresher
    from sfarm.remote.wiring import FarmKey, NodeSurvey
    from sfarm.resolver.routes import KeyKind

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


@dataclass(frozen=True)
class _Surveyed:
    node: str
    steps: list[StepResult]
    python: str | None = None
    survey: NodeSurvey | None = None
    error: str | None = None
    answers: bool = True  # the node runs this sfarm (a dry run may find it does not yet)


def _survey(spec: NodeSpec, agent: NodeAgent, *, install: bool, wired: bool,
            dry_run: bool = False, offline: bool = False) -> _Surveyed:
    """Deploy's first phase on a node: install sfarm (when the node is being deployed; a dry
    run only checks; with no package index on the node when `offline`) and learn what the
    network's wiring needs of it (the farm key it holds only when data crosses nodes: that
    costs a request, of a node that can answer it)."""
    from sfarm.remote.wiring import NodeSurvey

    transport = agent.transport
    steps, python = ((transport.check_install(offline=offline) if dry_run
                      else transport.install(offline=offline)) if install else ([], None))
    # A real deploy has just installed this sfarm; a dry run installed nothing, so a node that
    # would need it cannot answer yet.
    answers = not dry_run or all(step.status == "ok" for step in steps)
    facts = agent.facts() if wired and answers else None
    reach = agent.transport.reach()
    survey = NodeSurvey(node=spec.name, host=reach.host, port=reach.port, user=reach.user,
                        root=agent.transport.root,
                        python=facts.python if facts else python or spec.python,
                        host_key=reach.host_key, farm_key=facts.farm_key if facts else None,
                        sshfs_key=facts.sshfs_key if facts else None,
                        sftp_server=facts.sftp_server if facts else None,
                        jumps=reach.jumps, jump_keys=reach.jump_keys)
    return _Surveyed(spec.name, steps, python, survey, answers=answers)


def _unwired(producers: list[str], surveyed: dict[str, _Surveyed]) -> str:
    first = producers[0]
    why = surveyed[first].error if first in surveyed else None
    return (f"not deployed: it reads data from node {', '.join(producers)}, which deploy could "
            f"not reach" + (f" ({why.splitlines()[0]})" if why else "")
            + "; deploy again once it is reachable")


def describe_failure(error: Exception) -> str:
    """What a person reads about a node's failure: sfarm's own message and hint, else the
    exception's type and text (its traceback goes to the DEBUG log only)."""
    if isinstance(error, SfarmError):
        return error.message + (f"\nhint: {error.hint}" if error.hint else "")
    if isinstance(error, OSError):
        return f"{type(error).__name__}: {error}"
    log.debug("unexpected error", exc_info=error)
    return f"unexpected {type(error).__name__}: {error}"


def _pick(nodes: list[NodeSpec], node: str | None, among: str) -> list[NodeSpec]:
    """`nodes`, or the one named `node` of them; UsageError naming the others when none is."""
    if node is None:
        return list(nodes)
    names = [spec.name for spec in nodes]
    if node not in names:
        raise UsageError(f"no node {node!r} in {among}",
                         hint=did_you_mean(node, names) or known_names("nodes", names))
    return [spec for spec in nodes if spec.name == node]


class FarmController:
    """Runs node operations on the nodes of one network. With `keep_connections`, each node's
    agent (its SSH connection, and the `sfarm node serve` on it) stays open between calls, for
    callers that poll (status --watch, the dashboard); `close()` ends them. Otherwise every
    call opens and closes its own. A node not connected within `connect_timeout` seconds is
    reported unreachable."""

    def __init__(self, inventory: LoadedInventory, network: str,
                 node: str | None = None, *, keep_connections: bool = False,
                 forks: int = DEFAULT_FORKS,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        if forks < 1:
            raise UsageError(f"--forks must be at least 1, not {forks}")
        self.inventory = inventory
        self.network = network
        self.forks = forks  # nodes changed at once (deploy, start, ...); reads go wider
        self.connect_timeout = connect_timeout
        self._open: dict[str, NodeAgent] | None = {} if keep_connections else None
        self._refresher: StatusRefresher | None = None  # kept connections' status
        self._node_locks: dict[str, threading.Lock] = {spec.name: threading.Lock()
                                                       for spec in inventory.nodes(network)}
        self.nodes = _pick(inventory.nodes(network), node, f"network {network!r}")

    def select(self, node: str | None) -> list[NodeSpec]:
        """The selected nodes (None), or only `node` of them: the selection a command made
        with `--node` narrowed once more (the dashboard acts on one node of the farm it
        shows); UsageError naming the selected nodes when `node` is not one of them."""
        return _pick(self.nodes, node, f"the selected nodes of {self.network!r}")

    def agent(self, spec: NodeSpec, *, serve: bool | None = None) -> NodeAgent:
        """A new agent of the node; close it after use (an SSH agent holds a connection).
        With `serve` (default: when connections are kept) its requests go to one
        `sfarm node serve` on the node, for an agent asked many times (a log tail).

        Run in a remote node's root (the inventory deploy placed there), the other nodes are
        reached with the operator's own credentials and checked against the host keys deploy
        shipped to that root; the nodes of the deploying machine (host = "local") are not
        reachable from there."""
        origin = self.inventory.origin
        if spec.is_local:
            if origin is not None and not origin.local:
                raise UsageError(
                    f"node {spec.name} is host = \"local\": it lives on the machine that "
                    f"deployed it, and this command runs on node {origin.node}",
                    hint="manage the nodes of a machine from that machine")
            return NodeAgent(spec, InProcessTransport(spec, local_root(self.inventory, spec)))
        # Fabric and paramiko load only when a node needs them.
        from sfarm.remote.ssh import SSHConnection
        from sfarm.remote.ssh_transport import SSHTransport

        # An agent kept for several requests keeps `sfarm node serve` running on the node.
        serve = self._open is not None if serve is None else serve
        if origin is None or origin.local:
            connection = SSHConnection(spec, connect_timeout=self.connect_timeout)
        else:
            connection = SSHConnection(spec, known_hosts=self.inventory.path.parent
                                       / KNOWN_HOSTS_FILE, managed_from=origin.node,
                                       connect_timeout=self.connect_timeout)
        return NodeAgent(spec, SSHTransport(spec, connection, serve=serve))

    def ask(self, spec: NodeSpec, work: Callable[[NodeAgent], T]) -> T:
        """`work` with the node's agent: the kept one when connections are kept (one thread
        at a time on it), else one opened and closed for this call. Failures raise (unlike
        `each`): a caller asking one node wants its error."""
        return self._with_agent(spec, work)

    def _with_agent(self, spec: NodeSpec, work: Callable[[NodeAgent], T]) -> T:
        if self._open is None:
            agent = self.agent(spec)
            try:
                return work(agent)
            finally:
                agent.close()
        # One thread at a time on a node's kept agent: a status refresh may still be under way
        # in the background (sfarm.remote.refresh) when another command reaches the node.
        with self._node_locks[spec.name]:
            agent = self._open.get(spec.name) or self._open.setdefault(spec.name,
                                                                      self.agent(spec))
            try:
                return work(agent)
            except NodeError:
                raise  # the node answered (with an error): its connection is fine, kept
            except BaseException:
                # The connection may be what failed: the next call opens a new one.
                self._open.pop(spec.name, None)
                agent.close()
                raise

    def close(self) -> None:
        """Close the agents kept open (keep_connections)."""
        if self._refresher is not None:
            self._refresher.close()
            self._refresher = None
        for agent in list((self._open or {}).values()):
            agent.close()
        if self._open:
            self._open.clear()

    def each(self, work: Callable[[NodeSpec, NodeAgent], T],
             failed: Callable[[NodeSpec, str], T],
             nodes: Iterable[NodeSpec] | None = None, *, parallel: int | None = None) -> list[T]:
        """`work` on every node (or `nodes`), at most `parallel` (default: forks) at once,
        results in node order; a node whose work raised anything gets `failed(node, what went
        wrong)` instead, and the others go on."""
        selected = list(self.nodes if nodes is None else nodes)
        if not selected:
            return []
        with ThreadPoolExecutor(max_workers=min(parallel or self.forks, len(selected))) as pool:
            return list(pool.map(lambda spec: self._on_node(spec, work, failed), selected))

    def _on_node(self, spec: NodeSpec, work: Callable[[NodeSpec, NodeAgent], T],
                 failed: Callable[[NodeSpec, str], T]) -> T:
        """`work` on one node, or `failed(node, what went wrong)`: whatever the work raised."""
        try:
            return self._with_agent(spec, lambda agent: work(spec, agent))
        except Exception as error:  # a node's failure, whatever it is, is its result
            return failed(spec, describe_failure(error))

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

    def deploy(self, *, rotate_farm_key: bool = False, dry_run: bool = False,
               boot: bool = False, offline: bool = False,
               node: str | None = None) -> list[NodeOutcome]:
        """Install and configure the selected nodes, and wire the network's data: every node
        of the network is surveyed, so each consumer learns how to reach its producers, every
        node gets every node's host key (to be managed from), and the farm key is kept or
        renewed (sfarm.remote.wiring). With `boot`, each node's supervisord starts at boot.
        With `dry_run`, every step as it would go ("changed": would change) and nothing
        changed anywhere (sfarm.remote.dry_run). `offline`: every selected node installs with
        no package index (as a node with `offline = true` always does). `node`: only that one
        of the selected nodes is deployed (`select`)."""
        from sfarm.plan import plan_network
        from sfarm.remote.deploy import build_deployment
        from sfarm.remote.dry_run import unasked_steps, withhold_new_keys
        from sfarm.remote.jump_hosts import outside_jump_lines, sync_jump_hosts
        from sfarm.remote.wiring import jump_lines_of, unsurveyed_producers, wire_network
        from sfarm.resolver.routes import KEY_KINDS

        chosen = self.select(node)
        plan = plan_network(self.inventory, self.network)
        everyone = {spec.name: spec for spec in self.inventory.nodes(self.network)}
        selected = {spec.name for spec in chosen}
        surveyed = list(everyone.values())
        kept = self._open is not None
        if not kept:
            self._open = {}  # one connection per node for both phases
        try:
            first = {result.node: result for result in self.each(
                lambda spec, agent: _survey(spec, agent, install=spec.name in selected,
                                            wired=bool(plan.transfers), dry_run=dry_run,
                                            offline=offline),
                lambda spec, error: _Surveyed(spec.name, [], error=error), surveyed)}
            surveys = {name: result.survey for name, result in first.items()
                       if result.survey is not None}
            keys = {kind: self._key(kind, plan, everyone, surveys, selected, rotate_farm_key)
                    for kind in KEY_KINDS}
            new_keys: dict[str, list[StepResult]] = {}
            if dry_run:
                keys, new_keys = withhold_new_keys(keys)
            wiring = wire_network(plan, self.inventory.model.farm.name, everyone, surveys, keys)

            outside = outside_jump_lines(jump_lines_of(plan, self.inventory.model.farm.name,
                                                       everyone, surveys, keys), surveys)

            def apply(spec: NodeSpec, agent: NodeAgent) -> NodeOutcome:
                done = first[spec.name]
                if done.error is not None:
                    return NodeOutcome(spec.name, done.steps, done.error)
                missing = unsurveyed_producers(plan, surveys, spec.name)
                if missing:
                    return NodeOutcome(spec.name, done.steps, _unwired(missing, first))
                steps = done.steps + new_keys.get(spec.name, [])
                if not done.answers:  # a dry run, of a node that has no sfarm to ask yet
                    deployment = build_deployment(self.inventory, spec,
                                                  Path(agent.transport.root), done.python,
                                                  wiring.get(spec.name), plan)
                    steps += unasked_steps(deployment, boot, after=steps)
                else:
                    steps += agent.apply(self.inventory, done.python, wiring.get(spec.name),
                                         dry_run=dry_run, boot=boot, plan=plan)
                survey = surveys.get(spec.name)
                if survey is not None and survey.jumps:
                    steps += sync_jump_hosts(agent.transport.connection, survey, outside,
                                             check_only=dry_run)
                return NodeOutcome(spec.name, steps)

            return self.each(apply, lambda spec, error: NodeOutcome(
                spec.name, first[spec.name].steps, error), chosen)
        finally:
            if not kept:
                self.close()
                self._open = None

    def _key(self, kind: KeyKind, plan: Plan, everyone: dict[str, NodeSpec],
             surveys: dict[str, NodeSurvey], selected: set[str], rotate: bool) -> FarmKey | None:
        """The network's key of `kind`: the one its consumers hold, or a new one (which every
        node of the network must take part in)."""
        from sfarm.remote.wiring import FarmKey, consumers, key_to_keep

        holders = consumers(plan, everyone, kind)
        if not holders:
            return None
        info = key_to_keep(holders, surveys, rotate, kind)
        if info is not None:
            return FarmKey(info, None)
        if selected != set(everyone):
            raise UsageError(
                f"the {kind} key of network {self.network!r} must be made anew (new or removed "
                f"consumers, a node without it, or --rotate-farm-key), and every node of the "
                f"network takes part", hint="run `sfarm deploy` without --node")
        from sfarm.remote.farm_key import new_farm_key

        return new_farm_key(self.inventory.model.farm.name, self.network, holders, kind)

    def control(self, action: Action, task: str | None = None, *,
                node: str | None = None) -> list[NodeOutcome]:
        """`action` on the workers of every node, or of `node` only (`select`); with `task`,
        on the nodes that run it only: the others are not contacted."""
        self.check_task(task)
        return self._steps_each(
            lambda spec, agent: agent.control(action, self.tasks_of(spec, task)),
            [spec for spec in self.select(node) if task is None or task in spec.tasks])

    def set_live(self, names_of: Callable[[NodeSpec], list[str]], armed: bool,
                 command: str, *, stale_only: bool = False) -> list[NodeOutcome]:
        """Arm or disarm, on each node, the live trade tasks `names_of(node)` lists; a node
        with none is not contacted. `stale_only`: see sfarm.runtime.node.set_live."""
        outcomes = {outcome.node: outcome for outcome in self._steps_each(
            lambda spec, agent: agent.set_live(names_of(spec), armed, command,
                                               stale_only=stale_only),
            [spec for spec in self.nodes if names_of(spec)])}
        return [outcomes.get(spec.name, NodeOutcome(spec.name, [])) for spec in self.nodes]

    def resume(self, task: str) -> list[NodeOutcome]:
        """Let `task`'s halted session trade again, on the nodes that run it (its workers
        stopped)."""
        self.check_task(task)
        return self._steps_each(lambda spec, agent: agent.resume(task),
                                [spec for spec in self.nodes if task in spec.tasks])

    def down(self, node: str | None = None) -> list[NodeOutcome]:
        """Stop every worker and supervisord of the selected nodes, or of `node` only."""
        return self._steps_each(lambda spec, agent: agent.down(), self.select(node))

    def status(self) -> NetworkStatus:
        """Every node's tasks as the nodes report them (sfarm.farm adds the lag)."""
        def work(spec: NodeSpec, agent: NodeAgent) -> NodeStatus:
            return agent.status({name: self.inventory.model.tasks[name].kind
                                 for name in spec.tasks})

        def failed(spec: NodeSpec, error: str) -> NodeStatus:
            return NodeStatus(name=spec.name, host=spec.host, reachable=False, error=error)

        if self._open is None:
            return NetworkStatus(network=self.network,
                                 nodes=self.each(work, failed, parallel=READ_PARALLEL))
        # Kept connections are polled: a slow or dead node must not hold up every refresh.
        if self._refresher is None:
            from sfarm.remote.refresh import StatusRefresher

            self._refresher = StatusRefresher(
                lambda spec: self._on_node(spec, work, failed), self.connect_timeout,
                READ_PARALLEL)
        return NetworkStatus(network=self.network, nodes=self._refresher.refresh(self.nodes))
