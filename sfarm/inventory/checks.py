"""Checks across sections of a validated inventory (pure: values in, problems out).

Each value already passed its own model; here a node's task must exist, a task's exchange must
be declared, a `local` node must not carry SSH settings, and so on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sfarm.exchanges.live_support import LIVE_EXCHANGES, supports_live
from sfarm.inventory.model import Inventory, Node
from sfarm.inventory.problems import Problem, did_you_mean, known_names
from sfarm.status.services import AGENT_SERVICE as AGENT_SERVICE  # re-exported (deploy)
from sfarm.status.services import RESOLVER_SERVICE as RESOLVER_SERVICE  # re-exported (deploy)
from sfarm.status.services import SIM_SERVICE_PREFIX
from sfarm.tasks import TradeTask

# Settings that only mean something over SSH; on a `local` node they are a sign of a mistake.
SSH_ONLY_KEYS = ("user", "port", "identity_file", "proxy_jump")


@dataclass(frozen=True)
class Declared:
    """Names the file declares, valid or not. When an invalid entry was left out of the model
    (sfarm.inventory.partial), a reference to it is not unknown: its value is the problem."""

    tasks: frozenset[str] = frozenset()
    exchanges: frozenset[str] = frozenset()

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Declared:
        return cls(tasks=_keys(raw.get("tasks")), exchanges=_keys(raw.get("exchanges")))


def _keys(section: object) -> frozenset[str]:
    return frozenset(str(name) for name in section) if isinstance(section, dict) else frozenset()


def check_inventory(inventory: Inventory, ccxt_ids: Iterable[str],
                    declared: Declared = Declared()) -> list[Problem]:
    problems: list[Problem] = []
    problems += _check_exchanges(inventory, set(ccxt_ids))
    problems += _check_task_exchanges(inventory, declared)
    problems += _check_task_names(inventory)
    problems += _check_emulator_accounts(inventory)
    for network_name, network in inventory.networks.items():
        for node_name, node in network.nodes.items():
            path = ("networks", network_name, "nodes", node_name)
            problems += _check_node_tasks(inventory, node, path, declared)
            problems += _check_local_node(node, path)
    return problems


def _check_exchanges(inventory: Inventory, ccxt_ids: set[str]) -> list[Problem]:
    problems = []
    for name, exchange in inventory.exchanges.items():
        if exchange.ccxt not in ccxt_ids:
            problems.append(Problem(
                ("exchanges", name, "ccxt"),
                f"{exchange.ccxt!r} is not an exchange id ccxt knows",
                did_you_mean(exchange.ccxt, ccxt_ids) or "see `python -c 'import ccxt; "
                "print(ccxt.exchanges)'`",
            ))
    return problems


def _check_task_names(inventory: Inventory) -> list[Problem]:
    """A node's supervisord runs its tasks beside services named `sim-<exchange>` (an
    emulator), `sfarm-resolver` and `sfarm-agent`: a task must not take one of those names."""
    services = {RESOLVER_SERVICE, AGENT_SERVICE} | {
        f"{SIM_SERVICE_PREFIX}{name}" for name in inventory.exchanges}
    return [Problem(("tasks", name), f"task name {name!r} is taken by a service sfarm runs "
                    "on nodes", "rename the task")
            for name in inventory.tasks if name in services]


def _check_task_exchanges(inventory: Inventory, declared: Declared) -> list[Problem]:
    problems = []
    for name, task in inventory.tasks.items():
        exchange = inventory.exchanges.get(task.exchange)
        if exchange is None and task.exchange in declared.exchanges:
            continue  # declared with an invalid value: that is its problem
        if exchange is None:
            problems.append(Problem(
                ("tasks", name, "exchange"),
                f"unknown exchange {task.exchange!r}",
                did_you_mean(task.exchange, inventory.exchanges)
                or known_names("exchanges", inventory.exchanges),
            ))
        elif isinstance(task, TradeTask) and task.mode == "live" \
                and not supports_live(exchange.ccxt):
            problems.append(Problem(
                ("tasks", name, "mode"),
                f"live trading on {exchange.ccxt!r} (exchange {task.exchange!r}): sfarm cannot "
                "guarantee there that an order is never placed twice and that a restart "
                "reconciles the session by client order id",
                "live trading is supported on: " + ", ".join(LIVE_EXCHANGES)
                + " (paper mode works on every exchange)"))
        elif (isinstance(task, TradeTask) and task.mode == "live" and exchange.credentials is None
              and not exchange.emulate):  # an emulated exchange: the node's own account
            problems.append(Problem(
                ("tasks", name, "mode"),
                f"live trading needs credentials on exchange {task.exchange!r}",
                f'add credentials = "PREFIX" to [exchanges.{task.exchange}] and set '
                "PREFIX_API_KEY / PREFIX_SECRET in the environment or secrets.toml",
            ))
    return problems


def _check_emulator_accounts(inventory: Inventory) -> list[Problem]:
    """Nodes of a network on one machine share one emulator per emulated exchange, served by
    the first of them that uses it; its account is kept by that node alone (deploy makes it
    there, sfarm.sim.accounts), so a live trade task on it can run only on that node."""
    problems = []
    for network_name, network in inventory.networks.items():
        server: dict[tuple[str, str], str] = {}  # (host, exchange) -> the node serving it
        for node_name, node in network.nodes.items():
            for index, task_name in enumerate(node.tasks):
                task = inventory.tasks.get(task_name)
                exchange = inventory.exchanges.get(task.exchange) if task else None
                if task is None or exchange is None or not exchange.emulate:
                    continue
                serving = server.setdefault((node.host, task.exchange), node_name)
                if serving != node_name and isinstance(task, TradeTask) and task.mode == "live":
                    problems.append(Problem(
                        ("networks", network_name, "nodes", node_name, "tasks", index),
                        f"live task {task_name!r} trades on the emulated exchange "
                        f"{task.exchange!r}, whose emulator on host {node.host!r} is node "
                        f"{serving!r}'s, with an account only {serving!r} holds",
                        f"run {task_name!r} on node {serving!r}, or give node {node_name!r} "
                        "an emulated exchange of its own (another port in url)"))
    return problems


def _check_node_tasks(inventory: Inventory, node: Node, path: tuple[str, ...],
                      declared: Declared) -> list[Problem]:
    problems = []
    for index, task_name in enumerate(node.tasks):
        if task_name not in inventory.tasks and task_name not in declared.tasks:
            problems.append(Problem(
                (*path, "tasks", index),
                f"unknown task {task_name!r}",
                did_you_mean(task_name, inventory.tasks)
                or known_names("tasks", inventory.tasks),
            ))
    return problems


def _check_local_node(node: Node, path: tuple[str, ...]) -> list[Problem]:
    if not node.is_local:
        return []
    return [
        Problem((*path, key), f'{key} is an SSH setting but host = "local" uses no SSH',
                f'remove {key}, or give the machine\'s address as host to reach it over SSH')
        for key in SSH_ONLY_KEYS
        if getattr(node, key) is not None
    ]
