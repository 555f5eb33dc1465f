"""plan_network: where every dataset of a network is produced, who reads it, what moves where.

Within a network each dataset has exactly one producer; a task on node X that reads a dataset
produced on node Y implies a transfer Y -> X that the data resolver performs. The plan is
deterministic: the same inventory always gives the same plan, in the same order.
"""

from __future__ import annotations

import graphlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from sfarm.plan.datasets import task_inputs, task_outputs
from sfarm.tasks import Task

# What the planner reads of an inventory, by shape: `sfarm.inventory`'s models fit, and the
# planner stays below the inventory, which checks every plan when it loads.


class PlannedNode(Protocol):
    @property
    def host(self) -> str: ...
    @property
    def tasks(self) -> Sequence[str]: ...


class PlannedNetwork(Protocol):
    @property
    def nodes(self) -> Mapping[str, PlannedNode]: ...


class PlannedModel(Protocol):
    @property
    def tasks(self) -> Mapping[str, Task]: ...
    @property
    def networks(self) -> Mapping[str, PlannedNetwork]: ...


class PlannableInventory(Protocol):
    """The model and each trade task's strategy indicators (a `LoadedInventory`)."""

    @property
    def model(self) -> PlannedModel: ...
    @property
    def strategy_indicators(self) -> Mapping[str, Sequence[str]]: ...


# A key path into the inventory document, e.g. ("networks", "prod", "nodes", "a", "tasks", 0).
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class TaskRef:
    node: str
    task: str

    def to_json(self) -> dict[str, str]:
        return {"node": self.node, "task": self.task}


@dataclass(frozen=True)
class NodePlan:
    name: str
    host: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class DatasetPlan:
    id: str
    producer: TaskRef | None
    consumers: tuple[TaskRef, ...]


@dataclass(frozen=True, order=True)
class Transfer:
    dataset: str
    source: str
    target: str


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class PlanProblem:
    severity: Severity
    code: str  # duplicate-producer | missing-producer | cycle | computed-locally
    message: str
    path: KeyPath = ()
    dataset: str | None = None
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "dataset": self.dataset, "hint": self.hint}


@dataclass(frozen=True)
class Plan:
    network: str
    nodes: tuple[NodePlan, ...]
    datasets: tuple[DatasetPlan, ...]
    transfers: tuple[Transfer, ...]
    problems: tuple[PlanProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not any(problem.severity == "error" for problem in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "nodes": [{"name": n.name, "host": n.host, "tasks": list(n.tasks)} for n in self.nodes],
            "datasets": [{"id": d.id, "producer": d.producer.to_json() if d.producer else None,
                          "consumers": [c.to_json() for c in d.consumers]}
                         for d in self.datasets],
            "transfers": [{"dataset": t.dataset, "from": t.source, "to": t.target}
                          for t in self.transfers],
            "problems": [p.to_json() for p in self.problems],
        }


def _placement_path(network: str, ref: TaskRef, index: int) -> KeyPath:
    return ("networks", network, "nodes", ref.node, "tasks", index)


def plan_network(inventory: PlannableInventory, network: str) -> Plan:
    """Plan one network of a validated inventory."""
    model = inventory.model
    nodes = model.networks[network].nodes
    placements: list[tuple[TaskRef, int, Task]] = [
        (TaskRef(node_name, task_name), index, model.tasks[task_name])
        for node_name, node in nodes.items()
        for index, task_name in enumerate(node.tasks)
        if task_name in model.tasks
    ]
    problems: list[PlanProblem] = []

    producers: dict[str, list[tuple[TaskRef, int]]] = defaultdict(list)
    for ref, index, task in placements:
        for dataset in task_outputs(ref.task, task):
            producers[dataset].append((ref, index))
    for dataset, refs in sorted(producers.items()):
        if len(refs) > 1:
            (first, _), (second, index) = refs[0], refs[1]
            problems.append(PlanProblem(
                "error", "duplicate-producer",
                f"dataset {dataset} is produced twice in network {network!r}: by task "
                f"{first.task!r} on node {first.node!r} and by task {second.task!r} on node "
                f"{second.node!r}",
                _placement_path(network, second, index), dataset,
                "within a network each dataset has exactly one producer: place the task on "
                "one node, or split markets/timeframes between tasks",
            ))

    consumers: dict[str, set[TaskRef]] = defaultdict(set)
    edges: dict[TaskRef, set[TaskRef]] = {ref: set() for ref, _, _ in placements}
    for ref, index, task in placements:
        for need in task_inputs(task, inventory.strategy_indicators.get(ref.task, ())):
            consumers[need.dataset].add(ref)
            if need.dataset in producers:
                edges[ref].update(producer for producer, _ in producers[need.dataset])
            elif need.optional:
                problems.append(PlanProblem(
                    "warning", "computed-locally",
                    f"task {ref.task!r} on node {ref.node!r} computes {need.dataset} itself: "
                    f"no indicators task in network {network!r} produces it",
                    _placement_path(network, ref, index), need.dataset,
                ))
            else:
                problems.append(PlanProblem(
                    "error", "missing-producer",
                    f"task {ref.task!r} on node {ref.node!r} reads {need.dataset}, which nothing "
                    f"in network {network!r} produces",
                    _placement_path(network, ref, index), need.dataset,
                    _would_produce(model, need.dataset, network),
                ))
    problems += _cycles(edges, network, placements)

    datasets = tuple(
        DatasetPlan(dataset, producers[dataset][0][0] if dataset in producers else None,
                    tuple(sorted(consumers.get(dataset, ()))))
        for dataset in sorted(set(producers) | set(consumers))
    )
    transfers = tuple(sorted({
        Transfer(plan.id, plan.producer.node, consumer.node)
        for plan in datasets if plan.producer is not None
        for consumer in plan.consumers if consumer.node != plan.producer.node
    }))
    node_plans = tuple(NodePlan(name, node.host, tuple(node.tasks)) for name, node in nodes.items())
    return Plan(network, node_plans, datasets, transfers, tuple(problems))


def _would_produce(model: PlannedModel, dataset: str, network: str) -> str:
    """Name the task that would produce `dataset`, or the task to write."""
    for name, task in sorted(model.tasks.items()):  # by name: the hint must not depend on order
        if dataset in task_outputs(name, task):
            return f"task {name!r} produces it: place it on a node of network {network!r}"
    parts = dataset.split("/")
    if parts[0] == "candles":
        exchange, market, timeframe = parts[1], parts[2].replace("-", "/", 1), parts[3]
        return (f"add a mine task with exchange = {exchange!r}, markets = [{market!r}], "
                f"timeframes = [{timeframe!r}] to a node of network {network!r}")
    if parts[0] == "indicators":
        return f"add an indicators task computing {parts[4]!r} on {parts[2]} {parts[3]}"
    return f"no task in the inventory produces {dataset}"


def _cycles(edges: dict[TaskRef, set[TaskRef]], network: str,
            placements: list[tuple[TaskRef, int, Task]]) -> list[PlanProblem]:
    # Successors sorted: a set's order varies between processes (string hashing), and the cycle
    # graphlib finds, hence the message, depends on it.
    ordered = {ref: sorted(producers) for ref, producers in edges.items()}
    try:
        graphlib.TopologicalSorter(ordered).prepare()
    except graphlib.CycleError as error:
        cycle: list[TaskRef] = error.args[1]
        described = " -> ".join(f"{ref.task}@{ref.node}" for ref in cycle)
        first = cycle[0]
        index = next(i for ref, i, _ in placements if ref == first)
        return [PlanProblem("error", "cycle",
                            f"tasks read each other's datasets in a cycle: {described}",
                            _placement_path(network, first, index),
                            hint="break the cycle by removing one of the `inputs`")]
    return []

