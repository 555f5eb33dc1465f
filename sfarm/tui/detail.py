"""What the dashboard's detail pane says about the selection: the network, a node or a task.
Pure: status objects in, rich renderables out (a chart, when there is one, is drawn by the app)."""

from __future__ import annotations

from collections import Counter

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sfarm.data.layout import format_ts
from sfarm.farm.flow import FlowEdge
from sfarm.farm.status import STATE_COLOURS, format_age, short_ts, task_note
from sfarm.runtime.protocol import DatasetTail, FactsReply, SessionView
from sfarm.status import NetworkStatus, NodeStatus, TaskStatus

FLOW_COLOURS = {"current": "green", "behind": "yellow", "stale": "magenta", "unknown": "dim"}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_COLOURS.get(state, ""))


def _facts(rows: list[tuple[str, RenderableType]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def network_detail(status: NetworkStatus, flow: list[FlowEdge]) -> RenderableType:
    """How many nodes answer, how many tasks are in each state, and the network's data flow:
    each dataset from the node that produces it to each node that reads it."""
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
    if not flow:
        return _facts(rows)
    edges = Table(box=None, padding=(0, 1), header_style="bold")
    edges.add_column("data flow", overflow="fold")
    for name in ("from", "to", "produced", "received", "state"):
        edges.add_column(name, no_wrap=True)
    for edge in flow:
        edges.add_row(edge.dataset, edge.producer, edge.consumer,
                      short_ts(edge.produced_last_ts), short_ts(edge.received_last_ts),
                      Text(edge.state, style=FLOW_COLOURS[edge.state]))
    return Group(_facts(rows), Text(), edges)


def node_detail(node: NodeStatus, facts: FactsReply | None = None) -> RenderableType:
    """A node's reachability, what it says of itself (`facts`, when asked) and its tasks'
    states."""
    rows: list[tuple[str, RenderableType]] = [("node", node.name), ("host", node.host)]
    if node.reachable:
        rows.append(("reachable", Text("yes", style="green")))
        if facts is not None:
            rows += [("sfarm", f"{facts.sfarm} (node protocol {facts.protocol})"),
                     ("python", f"{facts.python_version} ({facts.python})"),
                     ("user", facts.user), ("root", facts.root)]
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


def session_detail(view: SessionView) -> RenderableType:
    """A trade session: equity, PnL and return, the open position, why it halted, and its
    last trades."""
    rows: list[tuple[str, RenderableType]] = [
        ("session", f"{view.mode}, strategy {view.strategy}, as of {format_ts(view.last_ts)}"),
        ("equity", f"{view.equity:,.2f} (from {view.cash:,.2f})"),
        ("pnl", Text(f"{view.pnl:+,.2f} ({view.return_pct:+.2f}%)",
                     style="green" if view.pnl >= 0 else "red")),
        ("drawdown", f"{view.max_drawdown:.2%} at worst"),
        ("trades", f"{view.trade_count:,}"),
        ("position", f"{view.position:g}" + (f" at {view.entry_price:,.2f}"
                                              if view.entry_price is not None and view.position
                                              else ""))]
    if view.halted:
        rows.append(("halted", Text(view.halted, style="red")))
    parts: list[RenderableType] = [_facts(rows)]
    if view.trades:
        trades = Table(f"last trades ({len(view.trades)} of {view.trade_count})", "entry",
                       "exit", "size", "pnl", box=None, padding=(0, 1), header_style="bold")
        for trade in view.trades:
            trades.add_row(trade.side, f"{format_ts(trade.entry_ts)} {trade.entry_price:,.2f}",
                           f"{format_ts(trade.exit_ts)} {trade.exit_price:,.2f}",
                           f"{trade.size:g}",
                           Text(f"{trade.pnl:+,.2f}", style="green" if trade.pnl >= 0
                                else "red"))
        parts.append(trades)
    return Group(*parts)


def chart_series(tail: DatasetTail) -> tuple[str, list[int], list[float]] | None:
    """What the chart of a dataset draws: its closes (candles) or its first column (an
    indicator), with the rows that have a value; None when there is nothing to draw."""
    if not tail.columns:
        return None
    name = "close" if "close" in tail.columns else next(iter(tail.columns))
    points = [(ts, value) for ts, value in zip(tail.ts, tail.columns[name], strict=True)
              if value is not None]
    if not points:
        return None
    return f"{tail.id} {name}", [ts for ts, _ in points], [value for _, value in points]
