"""Commands that run the farm: deploy, up, start, stop, restart, down, status, logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from sfarm.cli.console import err, out, print_json
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption
from sfarm.data.ids import BadDatasetId, parse_dataset_id
from sfarm.data.layout import format_ts
from sfarm.errors import RunError
from sfarm.inventory import NodeSpec, load_inventory
from sfarm.remote.controller import FarmController, NodeOutcome, running_with_data
from sfarm.runtime.node import Action
from sfarm.status import DatasetProgress, NetworkStatus
from sfarm.timeframes import candle_open, timeframe_ms

NodeOption = Annotated[Optional[str], typer.Option("--node", help="Only this node.")]
TaskOption = Annotated[Optional[str], typer.Option("--task", "-t", help="Only this task.")]
LiveOption = Annotated[bool, typer.Option(
    "--live", help="Let the live trade tasks it starts place real orders (each also needs "
                   "live = true); without it they run but place none.")]
STATE_COLOURS = {"running": "green", "starting": "yellow", "stopped": "dim", "failed": "red",
                 "stale": "magenta", "halted": "red"}


def _controller(inventory: Path | None, network: str | None,
                node: str | None = None, *, keep_connections: bool = False) -> FarmController:
    loaded = load_inventory(inventory)
    return FarmController(loaded, loaded.select_network(network), node,
                          keep_connections=keep_connections)


def _report(command: str, outcomes: list[NodeOutcome], json: bool) -> None:
    """Print each node's steps (or JSON); exit 1 when any node failed."""
    if json:
        print_json({"command": command, "ok": all(o.ok for o in outcomes),
                    "nodes": [o.to_json() for o in outcomes]})
    else:
        for outcome in outcomes:
            mark = "[green]ok[/]" if outcome.ok else "[red]failed[/]"
            changed = sum(step.status == "changed" for step in outcome.steps)
            out.print(f"{mark} {outcome.node}: {command}, {changed} changed, "
                      f"{len(outcome.steps) - changed} unchanged")
            for step in outcome.steps:
                if step.status != "ok":
                    out.print(f"   {step.status:8} {escape(step.step)} [dim]{escape(step.detail)}[/]")
            if outcome.error:
                err.print(f"[red]error:[/] {outcome.node}: {escape(outcome.error)}")
    if not all(outcome.ok for outcome in outcomes):
        raise typer.Exit(1)


def deploy(inventory: InventoryOption = None, network: NetworkOption = None,
           node: NodeOption = None, json: JsonOption = False) -> None:
    """Provision nodes: node root, inventory and strategies, secrets they need, supervisord
    and its config. Idempotent: a second run reports every step unchanged.

    Example: [bold]sfarm deploy -i inventory/local.toml[/]
    """
    _report("deploy", _controller(inventory, network, node).deploy(), json)


def _arm_live(controller: FarmController, task: str | None, live: bool, command: str) -> None:
    """Arm (`--live`) or disarm, on their nodes, the live trade tasks that `command` (start,
    restart, up, stop, down) acts on (see sfarm.trading.live_guard); a live task started
    without --live is told about, and one that could not be armed places no order."""
    from sfarm.tasks import TradeTask
    from sfarm.trading import live_guard

    def live_tasks(spec: NodeSpec) -> list[str]:
        return [name for name in controller.tasks_of(spec, task)
                if isinstance(model := controller.inventory.model.tasks[name], TradeTask)
                and model.mode == "live"]

    outcomes = controller.set_live(live_tasks, live, f"sfarm {command} --live")
    for spec, outcome in zip(controller.nodes, outcomes, strict=True):
        if not outcome.ok:
            err.print(f"[red]error:[/] {outcome.node}: could not {'arm' if live else 'disarm'} "
                      f"its live tasks: {escape(outcome.error or '')}")
        elif not live and command not in ("stop", "down"):
            for name in live_tasks(spec):
                err.print(f"[yellow]note:[/] live task {name} on {outcome.node} places no "
                          f"order: {live_guard.HINT}")
    if live and not any(outcome.steps for outcome in outcomes):
        err.print("[yellow]note:[/] --live: none of the tasks started is a live trade task")


def up(inventory: InventoryOption = None, network: NetworkOption = None,
       node: NodeOption = None, json: JsonOption = False,
       wait: Annotated[float, typer.Option(
           help="Seconds to wait until every task runs and has produced data (0: don't).")]
       = 0.0, live: LiveOption = False) -> None:
    """Bring the farm up: deploy, then start every worker.

    Example: [bold]sfarm up -i inventory/local.toml --wait 120[/]
    """
    controller = _controller(inventory, network, node)
    outcomes = controller.deploy()
    if all(outcome.ok for outcome in outcomes):
        _arm_live(controller, None, live, "up")
        started = {o.node: o for o in controller.control("start")}
        outcomes = [NodeOutcome(o.node, o.steps + started[o.node].steps, started[o.node].error)
                    for o in outcomes]
    _report("up", outcomes, json)
    if wait > 0:
        with err.status("waiting for every task to run and produce data"):
            status = controller.wait_until(running_with_data, wait)
        if not running_with_data(status):
            out.print(render_status(status))
            raise RunError(f"not every task was running with data after {wait:.0f} s",
                           hint="see `sfarm status` and `sfarm logs NODE TASK`")


def _control(action: Action, inventory: Path | None, network: str | None, node: str | None,
             task: str | None, json: bool, live: bool = False) -> None:
    controller = _controller(inventory, network, node)
    controller.check_task(task)
    _arm_live(controller, task, live, action)
    _report(action, controller.control(action, task), json)


def start(inventory: InventoryOption = None, network: NetworkOption = None,
          node: NodeOption = None, task: TaskOption = None, json: JsonOption = False,
          live: LiveOption = False) -> None:
    """Start supervised workers: the whole network's, one node's, or one task's. Live trade
    tasks place orders only when started with --live.

    Example: [bold]sfarm start -i inventory/local.toml --task mine[/]
    """
    _control("start", inventory, network, node, task, json, live)


def stop(inventory: InventoryOption = None, network: NetworkOption = None,
         node: NodeOption = None, task: TaskOption = None, json: JsonOption = False) -> None:
    """Stop supervised workers for good (until `start`); a stopped worker is not restarted.

    Example: [bold]sfarm stop -i inventory/local.toml --task rsi-paper[/]
    """
    _control("stop", inventory, network, node, task, json)


def restart(inventory: InventoryOption = None, network: NetworkOption = None,
            node: NodeOption = None, task: TaskOption = None, json: JsonOption = False,
            live: LiveOption = False) -> None:
    """Restart supervised workers (SIGTERM: each finishes its current step first). Live trade
    tasks place orders only when restarted with --live.

    Example: [bold]sfarm restart -i inventory/local.toml --node lab[/]
    """
    _control("restart", inventory, network, node, task, json, live)


def down(inventory: InventoryOption = None, network: NetworkOption = None,
         node: NodeOption = None, json: JsonOption = False) -> None:
    """Stop every worker of the network and each node's supervisord: no process is left.

    Example: [bold]sfarm down -i inventory/local.toml[/]
    """
    controller = _controller(inventory, network, node)
    _arm_live(controller, None, False, "down")
    _report("down", controller.down(), json)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def behind_live_edge_s(dataset: DatasetProgress, now_ms: float) -> float | None:
    """How far a dataset is behind the last closed candle of its timeframe (0: up to date)."""
    if dataset.last_ts is None:
        return None
    try:
        timeframe = parse_dataset_id(dataset.id).timeframe
    except BadDatasetId:
        return None
    if timeframe is None:
        return None
    last_closed = candle_open(int(now_ms), timeframe) - timeframe_ms(timeframe)
    return max(0.0, (last_closed - dataset.last_ts) / 1000)


def render_status(status: NetworkStatus) -> Group:
    now_ms = time.time() * 1000
    tables = []
    for node in status.nodes:
        title = f"[bold]{node.name}[/] [dim]{node.host}[/]"
        if not node.reachable:
            tables.append(Table(title=f"{title} [red]unreachable: {escape(node.error or '')}[/]",
                                title_justify="left"))
            continue
        table = Table(title=title, title_justify="left", expand=False)
        for column in ("task", "kind", "state", "heartbeat", "last candle", "lag", "rows",
                       "last error"):
            table.add_column(column, justify="right" if column in ("rows", "lag") else "left")
        for task in node.tasks:
            stamps = [d.last_ts for d in task.datasets if d.last_ts is not None]
            newest = max(stamps) if stamps else None
            lags = [lag for d in task.datasets if (lag := behind_live_edge_s(d, now_ms))
                    is not None]
            rows = sum(d.rows for d in task.datasets)
            note = task.last_error or (f"waiting for {task.waiting_for}"
                                       if task.waiting_for else "")
            colour = STATE_COLOURS.get(task.state, "white")
            table.add_row(task.name, task.kind, f"[{colour}]{task.state}[/]",
                          _age(task.heartbeat_age_s), format_ts(newest),
                          _age(max(lags) if lags else None),
                          f"{rows:,}" if task.datasets else "-", escape(note[:60]))
        tables.append(table)
    return Group(*tables)


def status(inventory: InventoryOption = None, network: NetworkOption = None,
           node: NodeOption = None, json: JsonOption = False,
           watch: Annotated[bool, typer.Option("--watch", "-w",
                                               help="Refresh in place until Ctrl-C.")] = False,
           interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
           ) -> None:
    """Every node's tasks: state, heartbeat age, last candle and lag, rows, last error.
    Exit 1 when a node is unreachable or a task is not running.

    Example: [bold]sfarm status -i inventory/local.toml --watch[/]
    """
    if watch:
        # One connection per node for the whole watch, not one per refresh.
        controller = _controller(inventory, network, node, keep_connections=True)
        try:
            with Live(render_status(controller.status()), console=out,
                      auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render_status(controller.status()), refresh=True)
        except KeyboardInterrupt:
            return
        finally:
            controller.close()
    controller = _controller(inventory, network, node)
    result = controller.status()
    if json:
        print_json(result.to_json())
    else:
        out.print(render_status(result))
    if not result.healthy:
        raise typer.Exit(1)


def logs(
    node: Annotated[str, typer.Argument(help="Node name.")],
    task: Annotated[Optional[str], typer.Argument(help="Task (default: every task).")] = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
    = False,
    lines: Annotated[int, typer.Option("--lines", "-l", help="Lines to show first.")] = 40,
) -> None:
    """A worker's log (all of a node's workers without TASK).

    Example: [bold]sfarm logs -i inventory/local.toml lab mine -f[/]
    """
    controller = _controller(inventory, network, node)
    spec = controller.nodes[0]
    controller.check_task(task)
    names = [task] if task else list(spec.tasks)
    prefix = len(names) > 1

    def emit(name: str, lines: list[str]) -> None:
        for line in lines:
            out.print(f"[cyan]{name}[/] {escape(line)}" if prefix else escape(line))

    agent = controller.agent(spec)
    try:
        offsets = {}
        for name in names:
            chunk = agent.read_log(name, None, lines)
            emit(name, chunk.lines)
            offsets[name] = chunk.offset
        while follow:
            time.sleep(0.5 if spec.is_local else 1.0)
            for name in names:
                chunk = agent.read_log(name, offsets[name], lines)
                emit(name, chunk.lines)
                offsets[name] = chunk.offset
    finally:
        agent.close()


def register(app: typer.Typer) -> None:
    app.command()(deploy)
    app.command()(up)
    app.command()(start)
    app.command()(stop)
    app.command()(restart)
    app.command()(down)
    app.command()(status)
    app.command()(logs)
