"""`Farm`: the API of a farm's network, called by the command line and the dashboard alike.

Each method is one command an operator means and returns its result as data (a `FarmReport`,
a `NetworkStatus`, pull results); nothing here prints. Nodes are worked on in parallel by
sfarm.remote.controller, which turns any node's failure into that node's result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

from sfarm.errors import UsageError
from sfarm.farm.results import FarmReport, Note
from sfarm.farm.status import fill_lags, running_with_data, services_that_cannot_start
from sfarm.inventory import LoadedInventory, NodeSpec, load_inventory
from sfarm.inventory.load import read_declared_indicators, read_strategy_indicators
from sfarm.inventory.problems import did_you_mean, known_names
from sfarm.remote.controller import (
    CONNECT_TIMEOUT_S,
    DEFAULT_FORKS,
    FarmController,
    NodeOutcome,
    describe_failure,
)

# What one command needs loads with that command: `sfarm status` (the controller, the
# protocol, the status models) loads no plan, wiring, live arming or log tail.
if TYPE_CHECKING:
    from sfarm.farm.flow import FlowEdge
    from sfarm.farm.logs import LogTail
    from sfarm.remote.agent import NodeAgent
    from sfarm.remote.pull import PullResult
    from sfarm.runtime.protocol import (
        Action,
        DatasetSummary,
        DatasetTail,
        FactsReply,
        SessionView,
    )
    from sfarm.status import NetworkStatus

PullProgress = Callable[[str, int, int], None]  # dataset id, its index, how many in all


class Farm:
    """The nodes of one network of an inventory (or one node of it). With `keep_connections`
    each node's connection stays open between calls (status --watch, the dashboard): `close()`
    or a `with` block ends them."""

    def __init__(self, inventory: LoadedInventory, network: str, node: str | None = None, *,
                 keep_connections: bool = False, forks: int = DEFAULT_FORKS,
                 connect_timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.controller = FarmController(inventory, network, node,
                                         keep_connections=keep_connections, forks=forks,
                                         connect_timeout=connect_timeout)
        self.inventory = inventory
        self.network = network

    @classmethod
    def open(cls, inventory: Path | None, network: str | None, node: str | None = None, *,
             keep_connections: bool = False, forks: int = DEFAULT_FORKS,
             connect_timeout: float = CONNECT_TIMEOUT_S, check_strategies: bool = True) -> Farm:
        """The farm of the inventory at `inventory` (found as the command line finds it when
        None), its network `network` (the only one when None); `forks` nodes are changed at
        once; an SSH node not connected within `connect_timeout` seconds is unreachable.
        Without `check_strategies`, the strategy files are read for the indicators they
        declare, not checked (that loads polars): for a command that only looks (status)."""
        loaded = load_inventory(inventory, strategy_reader=read_strategy_indicators
                                if check_strategies else read_declared_indicators)
        return cls(loaded, loaded.select_network(network), node,
                   keep_connections=keep_connections, forks=forks,
                   connect_timeout=connect_timeout)

    @property
    def nodes(self) -> list[NodeSpec]:
        return self.controller.nodes

    def node(self, name: str) -> NodeSpec:
        names = [spec.name for spec in self.nodes]
        if name not in names:
            raise UsageError(f"no node {name!r} among the selected nodes of {self.network!r}",
                             hint=did_you_mean(name, names) or known_names("nodes", names))
        return self.nodes[names.index(name)]

    def check_task(self, task: str | None) -> None:
        """UsageError unless `task` (when given) is placed on a selected node."""
        self.controller.check_task(task)

    def close(self) -> None:
        self.controller.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------

    def deploy(self, *, rotate_farm_key: bool = False, dry_run: bool = False,
               boot: bool = False, offline: bool = False,
               node: str | None = None) -> FarmReport:
        """Make every node match the inventory (idempotent: a second deploy changes nothing);
        with `rotate_farm_key`, the network's farm key is made anew; with `boot`, each node's
        supervisord starts at boot; `offline`, the nodes install sfarm with no package index
        (from a wheelhouse sent by this machine). With `dry_run`, what would change, nothing
        changed. `node`: that node only (of the selected ones), as `sfarm deploy --node`."""
        from sfarm.farm.former import former_notes

        deployed = self.controller.deploy(rotate_farm_key=rotate_farm_key, dry_run=dry_run,
                                          boot=boot, offline=offline, node=node)
        return FarmReport("deploy", deployed, former_notes(deployed), dry_run=dry_run)

    def up(self, *, live: bool = False, dry_run: bool = False,
           offline: bool = False) -> FarmReport:
        """Deploy (`offline` as deploy's), then (when every node deployed) start every worker
        and, with `live`, arm the live tasks' workers once they run. Deploy restarts exactly
        the workers whose task definition changed and removes those of tasks no longer on
        their node (each a step); a live worker left running keeps its arming, one restarted
        or started comes up disarmed unless `live` (only arms naming no running worker are
        removed). One outcome per node, its deploy steps then its start steps; notes name the
        nodes an earlier deploy knew that the inventory no longer lists. With `dry_run`,
        deploy's dry run (which workers would be restarted, removed, added) and a note of
        what up would then do: nothing started."""
        if dry_run:
            then = ("arm the live trade tasks (if any)" if live else
                    "leave the live trade tasks' running workers armed as they are (a "
                    "restarted one comes up disarmed)")
            checked = self.deploy(dry_run=True, offline=offline)
            note = Note("note", f"dry run: up would then start every worker and {then}")
            return FarmReport("up", checked.nodes, [*checked.notes, note], dry_run=True)
        from sfarm.farm.former import former_notes

        deployed = self.controller.deploy(offline=offline)
        former = former_notes(deployed)
        if not all(outcome.ok for outcome in deployed):
            return FarmReport("up", deployed, former)
        kept = self.set_live(False, command="up", stale_only=True).notes
        started = {outcome.node: outcome for outcome in self.controller.control("start")}
        notes = self.set_live(True, command="up").notes if live else kept
        merged = [NodeOutcome(outcome.node, outcome.steps + started[outcome.node].steps,
                              started[outcome.node].error) for outcome in deployed]
        return FarmReport("up", merged, former + notes)

    def control(self, action: Action, task: str | None = None, *, live: bool = False,
                node: str | None = None) -> FarmReport:
        """Start, stop or restart the workers (of `task` only, when given; of `node` only, when
        given: the other nodes are not contacted). Live trade tasks are armed by a start or
        restart with `live` once their new worker runs (arming is the worker's, by its pid:
        sfarm.trading.live_guard), disarmed otherwise."""
        self.check_task(task)
        if node is not None and task is not None and task not in self.node(node).tasks:
            raise UsageError(f"no task {task!r} on node {node!r}",
                             hint=known_names("tasks", self.node(node).tasks))
        arm = live and action != "stop"
        notes = [] if arm else self.set_live(False, task, command=action, node=node).notes
        outcomes = self.controller.control(action, task, node=node)
        if arm:
            notes = self.set_live(True, task, command=action, node=node).notes
        return FarmReport(action, outcomes, notes)

    def resume(self, task: str, *, live: bool = False) -> FarmReport:
        """Let trade task `task`, halted by its kill switch, trade again: stop its worker, clear
        the halt in its session (the kill switch then measures from the equity it halted at;
        recorded in the node's audit log), start it (armed with `live`). The operator's
        confirmation is the caller's to ask."""
        stopped = self.control("stop", task)
        if not stopped.ok:
            return FarmReport("resume", stopped.nodes, stopped.notes)
        resumed = self.controller.resume(task)
        if not all(outcome.ok for outcome in resumed):
            return FarmReport("resume", resumed)
        started = self.control("start", task, live=live)
        by_node = {outcome.node: outcome for outcome in started.nodes}
        merged = [NodeOutcome(outcome.node, outcome.steps + by_node[outcome.node].steps,
                              by_node[outcome.node].error) if outcome.node in by_node
                  else outcome for outcome in resumed]
        return FarmReport("resume", merged, started.notes)

    def start(self, task: str | None = None, *, live: bool = False) -> FarmReport:
        return self.control("start", task, live=live)

    def stop(self, task: str | None = None) -> FarmReport:
        return self.control("stop", task)

    def restart(self, task: str | None = None, *, live: bool = False) -> FarmReport:
        return self.control("restart", task, live=live)

    def down(self, node: str | None = None) -> FarmReport:
        """Disarm the live tasks, then stop every worker and each node's supervisord (of
        `node` only, when given). A `node` the inventory no longer lists but an earlier deploy
        of the network did (a former node: sfarm.runtime.former) is reached as that deploy
        declared it, stopped, and then forgotten by the nodes that remembered it."""
        if node is not None and node not in {spec.name for spec in self.nodes}:
            return self._down_former(node)
        notes = self.set_live(False, command="down", node=node).notes
        return FarmReport("down", self.controller.down(node), notes)

    def _down_former(self, name: str) -> FarmReport:
        """`down --node NAME` of a former node: ask the network's nodes (in parallel; one that
        cannot answer knows none) how to reach it, stop it, and make them forget it."""
        from sfarm.remote.deploy import address_spec

        known = self.controller.each(lambda spec, agent: agent.former(),
                                     lambda spec, error: [])  # in node order
        holders = [spec for spec, former in zip(self.nodes, known, strict=True)
                   if any(address.name == name for address in former)]
        address = next((address for former in known for address in former
                        if address.name == name), None)
        if address is None:
            names = [spec.name for spec in self.nodes]
            raise UsageError(f"no node {name!r} in network {self.network!r}, nor among the "
                             "nodes an earlier deploy of it declared",
                             hint=did_you_mean(name, names) or known_names("nodes", names))
        try:
            agent = self.controller.agent(address_spec(self.network, address))
            try:
                steps = agent.down()
            finally:
                agent.close()
        except Exception as error:  # the node's failure is its result, as for any node
            return FarmReport("down", [NodeOutcome(name, [], describe_failure(error))])

        def forget(holder: NodeSpec, agent: NodeAgent) -> bool:
            agent.former([name])
            return True

        forgotten = self.controller.each(forget, lambda holder, error: False, holders)
        told = (f"the nodes of {self.network!r} no longer remember it" if all(forgotten) else
                "some nodes could not be told to forget it: `sfarm down --node "
                f"{name}` again once they answer")
        return FarmReport("down", [NodeOutcome(name, steps)],
                          [Note("note", f"node {name} stopped; {told}")])

    def set_live(self, armed: bool, task: str | None = None, *, command: str = "start",
                 node: str | None = None, stale_only: bool = False) -> FarmReport:
        """Arm (or disarm) the live trade tasks that `command` acts on (all of them, or `task`;
        on every node, or `node`), on their nodes; nodes without one are not contacted. With
        `stale_only`, disarming leaves the arms of running workers (sfarm.runtime.node). The
        notes say what a person should know: a live task left unarmed places no order (see
        sfarm.trading.live_guard), one left armed places orders."""
        from sfarm.farm.live import arming_notes, live_tasks

        chosen = {spec.name for spec in self.controller.select(node)}
        live_of = {spec.name: live_tasks(self.inventory, self.controller.tasks_of(spec, task))
                   if spec.name in chosen else [] for spec in self.nodes}
        outcomes = self.controller.set_live(lambda spec: live_of[spec.name], armed,
                                            f"sfarm {command}" + (" --live" if armed else ""),
                                            stale_only=stale_only)
        return FarmReport("live" if armed else "disarm", outcomes,
                          arming_notes(command, armed, outcomes, live_of))

    # -- status and logs --------------------------------------------------------------------

    def status(self, now: float | None = None) -> NetworkStatus:
        """Every node's tasks, each dataset with its lag behind the live edge as of `now`
        (unix seconds; the controller's clock by default)."""
        moment = time.time() if now is None else now
        return fill_lags(self.controller.status(), moment * 1000)

    def flow(self, status: NetworkStatus) -> list[FlowEdge]:
        """Which node feeds which dataset to which in this network, and how fresh each
        hand-over is in `status` (sfarm.farm.flow.data_flow over the network's plan)."""
        from sfarm.farm.flow import data_flow
        from sfarm.plan import plan_network

        return data_flow(plan_network(self.inventory, self.network), status)

    def wait_until_running(self, timeout_s: float, *, interval_s: float = 1.0,
                           on_poll: Callable[[NetworkStatus], None] | None = None
                           ) -> tuple[NetworkStatus, bool]:
        """Poll the status until every task runs with data, or `timeout_s`, or a service
        cannot start (sfarm.farm.status.services_that_cannot_start: failed again since the
        first poll); the last status and whether it got there."""
        deadline = time.monotonic() + timeout_s
        first: NetworkStatus | None = None
        while True:
            status = self.status()
            first = first or status
            if on_poll is not None:
                on_poll(status)
            ready = running_with_data(status)
            if ready or services_that_cannot_start(status, since=first) \
                    or time.monotonic() >= deadline:
                return status, ready
            time.sleep(interval_s)

    def logs(self, node: str, task: str | None = None, lines: int = 40) -> LogTail:
        """The logs of a node's workers (of `task` only, when given: a task, or a service the
        node runs, such as its exchange emulator); close the tail after."""
        from sfarm.farm.logs import LogTail, unknown_log_hint

        spec = self.node(node)
        # A tail asks again and again: one agent on the node for its life (over SSH).
        agent = self.controller.agent(spec, serve=True)
        if task is not None and task not in spec.tasks:
            try:  # the node says which services it runs: those it was deployed with
                services = [service.name for service in agent.status({}).services]
            except BaseException:
                agent.close()
                raise
            if task not in services:
                agent.close()
                raise UsageError(f"no task or service {task!r} on node {node!r}",
                                 hint=unknown_log_hint(task, spec.tasks, services))
        return LogTail(agent, [task] if task else list(spec.tasks), lines)

    # -- datasets ---------------------------------------------------------------------------

    def datasets(self, node: str, ids: Sequence[str] | None = None, *,
                 mirrors: bool = False) -> list[DatasetSummary]:
        """The datasets a node holds (its own; its mirrors' too with `mirrors`), from their
        manifests on the node."""
        return self.controller.ask(self.node(node), lambda agent: agent.datasets(ids, mirrors))

    def tail(self, node: str, dataset_id: str, limit: int = 120, *,
             mirror_of: str | None = None) -> DatasetTail:
        """The last `limit` rows (1..5000) of a dataset `node` holds: its own, else the one
        mirror of it there (`mirror_of`: that producer's). A dataset missing or unreadable is
        a tail whose `error` says so; a node that cannot be asked raises SfarmError."""
        return self.controller.ask(self.node(node), lambda agent: agent.tail(
            dataset_id, limit, mirror_of=mirror_of))

    def session(self, node: str, task: str, *, points: int = 200,
                trades: int = 10) -> SessionView | None:
        """Trade task `task`'s session on `node` (equity, PnL, position, the equity curve in
        at most `points` points, the last `trades` trades), None before its first step."""
        return self.controller.ask(self.node(node), lambda agent: agent.session(
            task, points, trades))

    def trade_node(self, task: str) -> str:
        """The selected node that runs trade task `task` (a network runs a session once: its
        datasets have one producer); UsageError when there is none."""
        self.check_task(task)
        kind = self.inventory.model.tasks[task].kind
        if kind != "trade":
            raise UsageError(f"task {task!r} is a {kind} task; a session is a trade task's",
                             hint=known_names("trade tasks", self.trade_tasks()))
        return next(spec.name for spec in self.nodes if task in spec.tasks)

    def trade_tasks(self) -> list[str]:
        """The trade tasks placed on the selected nodes."""
        return sorted({name for spec in self.nodes for name in spec.tasks
                       if self.inventory.model.tasks[name].kind == "trade"})

    def facts(self, node: str) -> FactsReply:
        """What `node` says of itself: its sfarm, python, user, root and keys."""
        return self.controller.ask(self.node(node), lambda agent: agent.facts())

    def pull(self, node: str, ids: Sequence[str], local_root: Path,
             progress: PullProgress | None = None) -> list[PullResult]:
        """Pull datasets of `node` (every dataset it produces when `ids` is empty) into
        `local_root/mirror/<node>/`, incrementally (sfarm.remote.pull)."""
        from sfarm.remote.pull import pull  # rsync and the store (polars): not for status

        agent = self.controller.agent(self.node(node))
        try:
            wanted = list(ids) or [summary.id for summary in agent.datasets()]
            if not wanted:
                raise UsageError(f"node {node} has no datasets under "
                                 f"{agent.transport.root}/data")
            results = []
            for index, dataset_id in enumerate(wanted):
                if progress is not None:
                    progress(dataset_id, index, len(wanted))
                results.append(pull(agent.transport.connection, agent.transport.root, node,
                                    dataset_id, local_root, python=agent.spec.python))
            return results
        finally:
            agent.close()

