"""The network's data flow: which node feeds which dataset to which, and how fresh each
hand-over is, from the plan (who produces, who reads) and a status (what each side holds).

Pure: the plan and the status come in, edges go out. The dashboard draws them; `sfarm status`
could print them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sfarm.plan import Plan
from sfarm.status import NetworkStatus, NodeStatus

FlowState = Literal["current", "behind", "stale", "unknown"]


@dataclass(frozen=True)
class FlowEdge:
    """A dataset going from its producer's node to a node that reads it (the same node for a
    task reading its neighbour's output).

    `produced_last_ts`: the dataset's last row on the producer (its task's status);
    `received_last_ts`: the last row the consumer's tasks hold as their input (the least of
    them, when several read it); `stale_since` (unix seconds): since when the consumer's
    resolver says its copy may lag the producer's. `state`:

    * `unknown`: either node unreachable (or not in the status), the consumer's tasks not
      reporting the input (not deployed, stopped before reading it), or no row produced yet;
    * `stale`: the consumer's resolver cannot follow the producer (its `stale_since`);
    * `behind`: the consumer holds less than the producer has (nothing yet, or older rows);
      new candles arrive at the producer first, so a live edge is `behind` for a moment after
      each one until the resolver hands it over;
    * `current`: the consumer holds the producer's last row.
    """

    dataset: str
    producer: str
    consumer: str
    produced_last_ts: int | None
    received_last_ts: int | None
    stale_since: float | None
    state: FlowState


def data_flow(plan: Plan, status: NetworkStatus) -> list[FlowEdge]:
    """An edge for every cross-node transfer of the plan (what the consumer's resolver
    brings) and every dataset read on the node that produces it, sorted by dataset, producer
    and consumer."""
    nodes = {node.name: node for node in status.nodes}
    datasets = {dataset.id: dataset for dataset in plan.datasets}
    pairs = {(transfer.dataset, transfer.target) for transfer in plan.transfers}
    pairs |= {(dataset.id, dataset.producer.node) for dataset in plan.datasets
              if dataset.producer is not None
              and any(consumer.node == dataset.producer.node for consumer in dataset.consumers)}
    edges = []
    for dataset_id, consumer in sorted(pairs):
        dataset = datasets[dataset_id]
        if dataset.producer is None:  # a transfer always has a producer: the plan made it so
            continue
        readers = {ref.task for ref in dataset.consumers if ref.node == consumer}
        edges.append(_edge(dataset_id, dataset.producer.node, dataset.producer.task, consumer,
                           readers, nodes))
    return sorted(edges, key=lambda edge: (edge.dataset, edge.producer, edge.consumer))


def _edge(dataset: str, producer: str, producer_task: str, consumer: str,
          consumer_tasks: set[str], nodes: dict[str, NodeStatus]) -> FlowEdge:
    source, target = nodes.get(producer), nodes.get(consumer)
    produced = _produced(source, producer_task, dataset)
    inputs = [entry for task in (target.tasks if target is not None else [])
              if task.name in consumer_tasks
              for entry in task.inputs if entry.id == dataset and entry.source_node == producer]
    held = [entry.last_ts for entry in inputs]
    received = min((ts for ts in held if ts is not None), default=None) \
        if None not in held else None
    stales = [entry.stale_since for entry in inputs if entry.stale_since is not None]
    stale_since = min(stales, default=None)
    state: FlowState
    if target is None or not target.reachable or not inputs:
        state = "unknown"  # nothing known of what the consumer holds
    elif stale_since is not None:
        state = "stale"  # the consumer's own word, whether or not the producer answers
    elif source is None or not source.reachable or produced is None:
        state = "unknown"
    elif received is None or received < produced:
        state = "behind"
    else:
        state = "current"
    return FlowEdge(dataset, producer, consumer, produced, received, stale_since, state)


def _produced(node: NodeStatus | None, task: str, dataset: str) -> int | None:
    """The dataset's last row as its producing task reports it; None when unknown."""
    if node is None or not node.reachable:
        return None
    return next((output.last_ts for status in node.tasks if status.name == task
                 for output in status.datasets if output.id == dataset), None)
