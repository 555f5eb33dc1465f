"""What the dashboard's detail pane says about the selection: the network, a node or a task.
Pure: status objects in, rich renderables out (a chart, when there is one, is drawn by the app)."""

from __future__ import annotations

from collections import Counter

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sfarm.data.layout import format_ts
from sfarm.farm.status import STATE_COLOURS, format_age, task_note
from sfarm.status import NetworkStatus, NodeStatus, TaskStatus


def state_text(state: str) -> Text:
    return Text(state, style=STATE_COLOURS.get(state, ""))


def _facts(rows: list[tuple[str, RenderableType]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def network_detail(status: NetworkStatus) -> RenderableType:
    """How many nodes answer and how many tasks are in each state."""
    answered = [node for node in status.nodes if node.reachable]
    states = Counter(task.state for node in answered for task in node.tasks)
    counts = Text(", ").join(Text.assemble((f"{count} ", ""), state_text(state))
                             for state, count in sorted(states.items())) or Text("no task")
    silent = [node.name for node in status.nodes if not node.reachable]
    rows: list[tuple[str, RenderableType]] = [
        ("network", status.network),
        ("nodes", f"{len(answered)} of {len(status.nodes)} answer"),
        ("tasks", counts)]
    if silent:
        rows.append(("unreachable", Text(", ".join(silent), style="red")))
    return _facts(rows)


def node_detail(node: NodeStatus) -> RenderableType:
    """A node's reachability and its tasks' states."""
    rows: list[tuple[str, RenderableType]] = [("node", node.name), ("host", node.host)]
    if node.reachable:
        rows.append(("reachable", Text("yes", style="green")))
        for task in node.tasks:
            rows.append((task.name, Text.assemble(state_text(task.state),
                                                  f"  {task.kind}")))
    else:
        rows.append(("reachable", Text("no", style="red")))
        rows.append(("why", Text(node.error or "no reason given")))
    return _facts(rows)


def task_detail(node: str, task: TaskStatus, now: float) -> RenderableType:
    """A task's state and process, each output's freshness and each input's source."""
    rows: list[tuple[str, RenderableType]] = [
        ("task", f"{task.name} ({task.kind}) on {node}"),
        ("state", state_text(task.state)),
        ("pid", str(task.pid) if task.pid is not None else "-"),
        ("heartbeat", f"{format_age(task.heartbeat_age_s)} ago"
         if task.heartbeat_age_s is not None else "-")]
    if note := task_note(task, now):
        rows.append(("note", Text(note, style="yellow" if task.state != "failed" else "red")))
    if task.trade is not None:
        rows += [("equity", f"{task.trade.equity:,.2f}"),
                 ("position", f"{task.trade.position:g}"),
                 ("pnl", Text(f"{task.trade.pnl:+,.2f}",
                              style="green" if task.trade.pnl >= 0 else "red"))]
    parts: list[RenderableType] = [_facts(rows)]
    if task.datasets:
        outputs = Table("output", "rows", "last candle", "lag", box=None, padding=(0, 1),
                        header_style="bold")
        for dataset in task.datasets:
            outputs.add_row(dataset.id, f"{dataset.rows:,}", format_ts(dataset.last_ts),
                            format_age(dataset.lag_s))
        parts.append(outputs)
    if task.inputs:
        inputs = Table("input", "from", "last candle", "stale for", box=None, padding=(0, 1),
                       header_style="bold")
        for entry in task.inputs:
            stale = (Text(format_age(now - entry.stale_since), style="magenta")
                     if entry.stale_since is not None else Text("current", style="green"))
            inputs.add_row(entry.id, entry.source_node, format_ts(entry.last_ts), stale)
        parts.append(inputs)
    return Group(*parts)
