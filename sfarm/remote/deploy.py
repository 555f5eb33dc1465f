"""What each node of a network needs: its files, its supervised programs, its secrets.

Built on the controller from the inventory, then applied on the node by
`sfarm.runtime.node.apply_deployment` (in-process for a local node, over SSH for a remote one).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import tomli_w

from sfarm.errors import UsageError
from sfarm.exchanges.credentials import load_credentials
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.inventory.checks import AGENT_SERVICE, RESOLVER_SERVICE
from sfarm.inventory.load import SECRETS_FILE
from sfarm.inventory.origin import INVENTORY_FILE, NODE_FILE, NodeOrigin
from sfarm.plan import Plan, TaskRef, plan_network
from sfarm.remote.local_root import local_root as local_root  # re-exported
from sfarm.remote.wiring import NodeWiring
from sfarm.resolver.routes import KNOWN_HOSTS_FILE, ROUTES_FILE, key_file, key_info_file
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import Deployment, NodeAddress, NodeFile, Program
from sfarm.sim.accounts import account_path
from sfarm.tasks import TradeTask

SIM_PROGRAM_PREFIX = "sim-"
RESOLVER_PROGRAM = RESOLVER_SERVICE
AGENT_PROGRAM = AGENT_SERVICE
# A program's environment variable holding the digest of what defines it: supervisord restarts
# a program whose configuration changed, so an edit that changes a task restarts its worker
# (and only its worker) on the next deploy.
DEFINITION_VARIABLE = "SFARM_DEFINITION"


def node_exchanges(inventory: LoadedInventory, node: NodeSpec) -> list[str]:
    """Exchanges this node's tasks use, in first-use order."""
    names = [inventory.model.tasks[task].exchange for task in node.tasks]
    return list(dict.fromkeys(names))


def emulator_host(inventory: LoadedInventory, node: NodeSpec, exchange: str) -> bool:
    """Whether `node` runs the emulator of `exchange`: the first node of its network on its
    machine that uses the exchange does (nodes of one machine cannot each bind its port)."""
    for other in inventory.nodes(node.network):
        if other.host == node.host and exchange in node_exchanges(inventory, other):
            return other.name == node.name
    return False


def served_emulators(inventory: LoadedInventory, node: NodeSpec) -> list[str]:
    """The emulated exchanges whose emulator `node` serves (and whose account it keeps)."""
    return [name for name in node_exchanges(inventory, node)
            if inventory.model.exchanges[name].emulate and emulator_host(inventory, node, name)]


def _digest(parts: object) -> str:
    """A short digest of JSON-able `parts` (bytes as their sha256)."""
    def encode(value: object) -> object:
        return hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else str(value)

    text = json.dumps(parts, sort_keys=True, default=encode)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def task_definition(inventory: LoadedInventory, plan: Plan, node: NodeSpec, task: str,
                    strategies: StrategySources) -> str:
    """The digest of what a task's worker reads when it starts (sfarm.cli.worker,
    sfarm.runtime.engines): its table and its exchange's (as validated, so a reformatted table
    is the same task), its strategy file and module, and where each of its inputs comes from
    (the plan: producer node and task, or none: computed by the task itself). Credentials are
    not in it (read from secrets.toml at start, which deploy may leave as it is): a worker
    whose credentials were rotated is restarted by hand (`sfarm restart --task`). `strategies`:
    the inventory's strategy files (strategy_sources)."""
    model = inventory.model.tasks[task]
    me = TaskRef(node.name, task)
    inputs = sorted((dataset.id, None if dataset.producer is None
                     else f"{dataset.producer.node}/{dataset.producer.task}")
                    for dataset in plan.datasets if me in dataset.consumers)
    parts: dict[str, object] = {
        "task": model.model_dump(mode="json"),
        "exchange": inventory.model.exchanges[model.exchange].model_dump(mode="json"),
        "inputs": inputs}
    if task in strategies:
        parts["strategy"] = [file.content for file in strategies[task]]
    return _digest(parts)


def programs_for(inventory: LoadedInventory, node: NodeSpec, root: Path, python: str,
                 plan: Plan | None = None,
                 strategies: StrategySources | None = None) -> tuple[Program, ...]:
    """A worker per task, plus the exchange emulator where an exchange asks for it: on the
    address the exchange names (sfarm.tasks.Exchange.emulator_address), serving only the
    node's own account, read from its file (its command line names the file, not the secret).
    Each program's environment holds the digest of its definition (`DEFINITION_VARIABLE`):
    a deploy restarts exactly the programs whose definition changed."""
    plan = plan_network(inventory, node.network) if plan is None else plan
    strategies = strategy_sources(inventory) if strategies is None else strategies
    programs = []
    for name in served_emulators(inventory, node):
        exchange = inventory.model.exchanges[name]
        host, port = exchange.emulator_address()
        programs.append(Program(f"{SIM_PROGRAM_PREFIX}{name}", [
            python, "-m", "sfarm", "sim", "serve", "--host", host, "--port", str(port),
            "--account-file", str(account_path(NodeRoot(root).secrets, name))],
            environment={DEFINITION_VARIABLE: _digest(exchange.model_dump(mode="json"))}))
    programs += [Program(task, [python, "-m", "sfarm", "worker", "run", "--root", str(root),
                                "--task", task],
                         environment={DEFINITION_VARIABLE: task_definition(inventory, plan,
                                                                           node, task,
                                                                           strategies)})
                 for task in node.tasks]
    return tuple(programs)


def _relative_inside(path: str) -> str:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise UsageError(f"strategy path {path!r} must stay inside the inventory's folder",
                         hint="nodes receive strategies at the same relative path")
    return str(relative)


# The strategy files of each trade task, by task name: read once per deployment, for the
# files it sends and for its workers' definitions.
StrategySources = dict[str, tuple[NodeFile, ...]]


def strategy_sources(inventory: LoadedInventory) -> StrategySources:
    """Each trade task's strategy file, at its path relative to the inventory, and the module
    of a class strategy that lies beside its file (its trusted code: the tasks that trade with
    it import it on the node; nothing else does)."""
    from sfarm.trading.strategy import load_strategy

    base = inventory.path.parent.resolve()
    sources: StrategySources = {}
    for name, task in inventory.model.tasks.items():
        if not isinstance(task, TradeTask):
            continue
        path = inventory.strategy_path(task)
        files = [NodeFile(_relative_inside(task.strategy), path.read_bytes())]
        module = load_strategy(path, check=False).module_file()
        if module is not None:
            if not module.resolve().is_relative_to(base):
                raise UsageError(f"strategy module {module} must stay inside the inventory's "
                                 "folder", hint="nodes receive it at the same relative path")
            files.append(NodeFile(module.resolve().relative_to(base).as_posix(),
                                  module.read_bytes()))
        sources[name] = tuple(files)
    return sources


def strategy_files(strategies: StrategySources) -> list[NodeFile]:
    """Every file of `strategies` once (tasks share strategies), by path."""
    files = {file.path: file for task_files in strategies.values() for file in task_files}
    return [files[path] for path in sorted(files)]


@dataclass(frozen=True)
class NodeSecrets:
    """What deploy does with a node's secrets/secrets.toml: write `content`, or delete it
    (no content, nothing missing: the node trades live on no exchange that needs any), or leave
    it as it is when some credentials are not at hand where deploy runs (`missing`: their
    prefixes; another control point, say), never blanking what the node holds."""

    content: bytes | None
    missing: tuple[str, ...] = ()


def node_secrets(inventory: LoadedInventory, node: NodeSpec,
                 environ: Mapping[str, str] | None = None) -> NodeSecrets:
    """secrets.toml for this node: the credentials of the exchanges its live trade tasks trade
    on, and nothing else (public candles need none; an emulated exchange's account is the
    node's own, sfarm.sim.accounts)."""
    secrets_file = inventory.path.parent / SECRETS_FILE
    prefixes: dict[str, None] = {}
    for name in node.tasks:
        task = inventory.model.tasks[name]
        exchange = inventory.model.exchanges[task.exchange]
        if isinstance(task, TradeTask) and task.mode == "live" and not exchange.emulate \
                and exchange.credentials is not None:
            prefixes[exchange.credentials] = None
    tables: dict[str, dict[str, str]] = {}
    missing = []
    for prefix in prefixes:
        try:
            credentials = load_credentials(
                prefix, secrets_file if secrets_file.exists() else None, environ=environ)
        except UsageError:
            missing.append(prefix)
            continue
        table = {"api_key": credentials.api_key, "secret": credentials.secret}
        if credentials.password:
            table["password"] = credentials.password
        tables[prefix] = table
    if missing:
        return NodeSecrets(None, tuple(missing))
    return NodeSecrets(tomli_w.dumps(tables).encode() if tables else None)


def wiring_files(wiring: NodeWiring) -> tuple[list[NodeFile], list[str]]:
    """The files of the node's wiring to write, and those it must not hold."""
    files = [NodeFile(ROUTES_FILE, wiring.routes.model_dump_json(indent=1).encode(), 0o600),
             NodeFile(KNOWN_HOSTS_FILE, wiring.known_hosts, 0o600)]
    absent = []
    for key in wiring.keys:
        if key.info is None:
            absent += [key_file(key.kind), key_info_file(key.kind)]
            continue
        files.append(NodeFile(key_info_file(key.kind), key.info.model_dump_json().encode(),
                              0o600))
        if key.private is not None:
            files.append(NodeFile(key_file(key.kind), key.private, 0o600))
    return files, absent


def resolver_program(wiring: NodeWiring, root: Path, python: str) -> Program:
    """The node's resolver; its routes are its definition (`DEFINITION_VARIABLE`): a deploy
    that changes them restarts it."""
    return Program(RESOLVER_PROGRAM, [python, "-m", "sfarm", "worker", "resolver",
                                      "--root", str(root)],
                   environment={DEFINITION_VARIABLE: _digest(wiring.routes.model_dump(
                       mode="json"))})


def agent_program(root: Path, python: str) -> Program:
    """The node's resident agent (sfarm.runtime.agent_server), which answers the controller's
    reads without a Python start on the node each time: a node reached over SSH has one."""
    return Program(AGENT_PROGRAM, [python, "-m", "sfarm.cli.node_stdio", "agent",
                                   "--root", str(root)])


def node_address(inventory: LoadedInventory, spec: NodeSpec) -> NodeAddress:
    """How to reach `spec` (a local node's base_dir made absolute: the record outlives the
    inventory's place)."""
    base_dir = str(local_root(inventory, spec).parents[1]) if spec.is_local else spec.base_dir
    return NodeAddress(name=spec.name, host=spec.host, port=spec.port, base_dir=base_dir,
                       python=spec.python, transport=spec.transport, user=spec.user,
                       identity_file=spec.identity_file, proxy_jump=spec.proxy_jump,
                       offline=spec.offline)


def address_spec(network: str, address: NodeAddress) -> NodeSpec:
    """A NodeSpec to reach a node known by its address alone (a former node): no tasks."""
    return NodeSpec(network=network, name=address.name, host=address.host, tasks=(),
                    user=address.user, port=address.port, base_dir=address.base_dir,
                    python=address.python, transport=address.transport,
                    identity_file=address.identity_file, proxy_jump=address.proxy_jump,
                    offline=address.offline)


def build_deployment(inventory: LoadedInventory, node: NodeSpec, root: Path,
                     python: str | None = None, wiring: NodeWiring | None = None,
                     plan: Plan | None = None) -> Deployment:
    """Everything `node` needs, with the worker commands rooted at `root`, and its part of the
    network's data wiring (routes, keys) when given (`plan`: the network's, when at hand)."""
    # Every strategy the inventory names, not only this node's: any node can manage (and so
    # must be able to validate) the whole farm.
    origin = NodeOrigin(farm=inventory.model.farm.name, network=node.network, node=node.name,
                        local=node.is_local, inventory_dir=str(inventory.inventory_dir))
    files = [NodeFile(INVENTORY_FILE, inventory.path.read_bytes()),
             NodeFile(NODE_FILE, origin.to_json())]
    strategies = strategy_sources(inventory)
    files += strategy_files(strategies)
    secrets = node_secrets(inventory, node)
    secrets_path = f"secrets/{SECRETS_FILE}"
    if secrets.content is not None:
        files.append(NodeFile(secrets_path, secrets.content, mode=0o600))
    # A local node runs the sfarm that runs this command; a remote one its own venv.
    interpreter = python or (sys.executable if node.is_local else str(root / "venv/bin/python"))
    programs = programs_for(inventory, node, root, interpreter, plan, strategies)
    if not node.is_local:  # a local node's requests are answered in the command's process
        programs += (agent_program(root, interpreter),)
    absent: list[str] = []
    if wiring is not None:
        wired, absent = wiring_files(wiring)
        files += wired
        if wiring.routes.peers:
            programs += (resolver_program(wiring, root, interpreter),)
    if secrets.content is None and not secrets.missing:
        absent.append(secrets_path)  # no longer needed there: gone
    return Deployment(
        network=node.network, node=node.name, files=tuple(files), programs=programs,
        tasks={task: inventory.model.tasks[task].kind for task in node.tasks},
        absent=tuple(absent),
        authorized=() if wiring is None else tuple(
            [key.authorized for key in wiring.keys if key.authorized is not None]
            + list(wiring.jump_lines)),
        fuse=wiring is not None and wiring.mounts,
        emulators=tuple(served_emulators(inventory, node)),
        notices=tuple(f"{secrets_path} kept as it is: credentials {prefix} are not at hand "
                      "where this deploy runs (set PREFIX_API_KEY / PREFIX_SECRET, or "
                      "secrets.toml beside the inventory, and deploy again to renew them)"
                      .replace("PREFIX", prefix) for prefix in secrets.missing),
        network_nodes=tuple(node_address(inventory, spec)
                            for spec in inventory.nodes(node.network)),
    )
