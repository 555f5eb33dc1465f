"""Commands that run the farm: deploy, up, start, stop, restart, down, status, logs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sfarm.cli.completion import complete_log_names, complete_nodes, complete_tasks
from sfarm.cli.console import err, out, print_json
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption
from sfarm.data.layout import format_ts
from sfarm.errors import RunError, UsageError
from sfarm.farm.status import (
    STATE_COLOURS,
    format_age,
    newest_candle,
    service_note,
    services_that_cannot_start,
    short_ts,
    shows_live_values,
    task_note,
)
from sfarm.remote.defaults import CONNECT_TIMEOUT_S, DEFAULT_FORKS

if TYPE_CHECKING:
    from sfarm.farm import Farm, FarmReport, Note
    from sfarm.runtime.protocol import Action
    from sfarm.status import NetworkStatus

NodeOption = Annotated[str | None, typer.Option("--node", help="Only this node.",
                                                 autocompletion=complete_nodes)]
TaskOption = Annotated[str | None, typer.Option("--task", "-t", help="Only this task.",
                                                 autocompletion=complete_tasks)]
ForksOption = Annotated[int, typer.Option(
    "--forks", min=1, help="Nodes worked on at once; the others wait their turn.")]
OfflineOption = Annotated[bool, typer.Option(
    "--offline", help="Install sfarm on the nodes with no package index: this machine sends "
                      "every wheel they need (as for nodes with offline = true).")]
LiveOption = Annotated[bool, typer.Option(
    "--live", help="Let the live trade tasks it starts place real orders (each also needs "
                   "live = true); without it they run but place none.")]
DryRunOption = Annotated[bool, typer.Option(
    "--dry-run", help="Say what would change on each node and change nothing, there or here "
                      "(a new farm key is made in memory only, never sent); a \"changed\" step "
                      "would change.")]


def open_farm(inventory: Path | None, network: str | None, node: str | None = None,
              **options: Any) -> Farm:
    """The farm service (sfarm.farm.Farm.open), imported when a command runs: it loads the SSH
    libraries, which `sfarm --help` and every other command's start need not."""
    from sfarm.farm import Farm

    return Farm.open(inventory, network, node, **options)


def _print_notes(notes: list[Note]) -> None:
    for note in notes:
        if note.level == "error":
            err.print(f"[red]error:[/] {note.node}: {escape(note.message)}")
        else:
            err.print(f"[yellow]note:[/] {escape(note.message)}")


def _report(report: FarmReport, json: bool) -> None:
    """Print the notes and each node's steps (or JSON); exit 1 when any node failed."""
    _print_notes(report.notes)
    if json:
        print_json(report.to_json())
    else:
        if report.dry_run:
            out.print("[bold]dry run: nothing was changed[/] (\"would change\": what "
                      f"`sfarm {report.command}` would do)")
        changes = "would change" if report.dry_run else "changed"
        for outcome in report.nodes:
            mark = "[green]ok[/]" if outcome.ok else "[red]failed[/]"
            changed = sum(step.status == "changed" for step in outcome.steps)
            out.print(f"{mark} {outcome.node}: {report.command}, {changed} {changes}, "
                      f"{len(outcome.steps) - changed} unchanged")
            for step in outcome.steps:
                if step.status != "ok":
                    status = changes if step.status == "changed" else step.status
                    out.print(f"   {status:{len(changes)}} {escape(step.step)} "
                              f"[dim]{escape(step.detail)}[/]")
            if outcome.error:
                err.print(f"[red]error:[/] {outcome.node}: {escape(outcome.error)}")
        _print_summary(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_summary(report: FarmReport) -> None:
    summary = report.summary
    if summary.nodes < 2 and not summary.failed:
        return  # one node's line says it all
    nodes = (f"[red]{len(summary.failed)} of {summary.nodes} nodes failed[/] "
             f"({escape(', '.join(summary.failed))})" if summary.failed
             else f"[green]{summary.nodes} nodes ok[/]")
    label = {"changed": "would change"} if report.dry_run else {}
    steps = ", ".join(f"{count} {label.get(status, status)}"
                      for status, count in summary.steps.items() if count)
    out.print(f"{report.command}{' (dry run)' if report.dry_run else ''}: {nodes}; "
              f"steps: {steps or 'none'}")


def deploy(inventory: InventoryOption = None, network: NetworkOption = None,
           node: NodeOption = None, json: JsonOption = False, forks: ForksOption = DEFAULT_FORKS,
           rotate_farm_key: Annotated[bool, typer.Option(
               "--rotate-farm-key", help="Make the network's farm key anew (the key nodes read "
                                         "each other's data with); needs every node.")] = False,
           dry_run: DryRunOption = False,
           boot: Annotated[bool, typer.Option(
               "--boot", help="Also make each node's supervisord start at boot: a systemd user "
                              "unit, enabled, with lingering; without systemd the step fails "
                              "and says what to put in the init system instead. Live trade "
                              "tasks start disarmed at boot. Without --boot an existing unit "
                              "is left as it is.")] = False,
           offline: OfflineOption = False) -> None:
    """Provision nodes: node root, inventory and strategies, secrets they need, supervisord
    and its config, and the wiring of data between nodes (where each input comes from, the
    farm key and its restricted line on producers). Idempotent: a second run reports every
    step unchanged.

    Example: [bold]sfarm deploy -i inventory/local.toml[/]
    """
    farm = open_farm(inventory, network, node, forks=forks)
    _report(farm.deploy(rotate_farm_key=rotate_farm_key, dry_run=dry_run, boot=boot,
                        offline=offline), json)


def up(inventory: InventoryOption = None, network: NetworkOption = None,
       node: NodeOption = None, json: JsonOption = False,
       wait: Annotated[float, typer.Option(
           help="Seconds to wait until every task runs and has produced data (0: don't).")]
       = 0.0, live: LiveOption = False, forks: ForksOption = DEFAULT_FORKS,
       dry_run: Annotated[bool, typer.Option(
           "--dry-run", help="Only deploy's dry run (as `deploy --dry-run`): what would change, "
                             "nothing changed, no worker started.")] = False,
       offline: OfflineOption = False) -> None:
    """Bring the farm up: deploy, then start every worker. After an inventory edit it
    converges, as `docker compose up`: it restarts exactly the workers whose task definition
    changed (its table, its exchange's, its strategy, where its inputs come from), stops and
    removes those of tasks no longer placed on their node, and names the nodes an earlier
    deploy knew that the inventory no longer lists (`sfarm down --node NAME` stops them). A
    live worker left running keeps its arming; a restarted one comes up disarmed unless --live.

    Example: [bold]sfarm up -i inventory/local.toml --wait 120[/]
    """
    farm = open_farm(inventory, network, node, forks=forks)
    _report(farm.up(live=live, dry_run=dry_run, offline=offline), json)
    if wait > 0 and not dry_run:
        with err.status("waiting for every task to run and produce data"):
            status, ready = farm.wait_until_running(wait)
        if not ready:
            out.print(render_status(status))
            raise _not_running_error(status, wait)


def _not_running_error(status: NetworkStatus, wait: float) -> RunError:
    """Why `up --wait` gave up: the services that cannot start, by name and reason, else the
    tasks that did not run with data in time."""
    stuck = services_that_cannot_start(status)
    if stuck:
        node, service = stuck[0]
        more = f" (and {len(stuck) - 1} more service(s): see `sfarm status`)" if stuck[1:] else ""
        return RunError(f"service {service.name} on node {node} cannot start: "
                        f"{service.last_error}{more}",
                        hint=f"`sfarm logs {node} {service.name}` shows its log; once the "
                             f"cause is gone, supervisord starts it on its next retry")
    return RunError(f"not every task was running with data after {wait:.0f} s",
                    hint="see `sfarm status` and `sfarm logs NODE TASK`")


def _control(action: Action, inventory: Path | None, network: str | None, node: str | None,
             task: str | None, json: bool, live: bool = False) -> None:
    _report(open_farm(inventory, network, node).control(action, task, live=live), json)


def start(inventory: InventoryOption = None, network: NetworkOption = None,
          node: NodeOption = None, task: TaskOption = None, json: JsonOption = False,
          live: LiveOption = False,
          resume: Annotated[bool, typer.Option(
              "--resume", help="With --task: let a trade session halted by its kill switch "
                               "trade again (asks first; the kill switch then measures from "
                               "the equity it halted at).")] = False,
          yes: Annotated[bool, typer.Option(
              "--yes", "-y", help="Do not ask before --resume (for scripts).")] = False,
          ) -> None:
    """Start supervised workers: the whole network's, one node's, or one task's. Live trade
    tasks place orders only when started with --live.

    Example: [bold]sfarm start -i inventory/local.toml --task mine[/]
    """
    if not resume:
        _control("start", inventory, network, node, task, json, live)
        return
    if task is None:
        raise UsageError("--resume resumes one trade task: give it with --task")
    farm = open_farm(inventory, network, node)
    farm.check_task(task)
    if not yes and not typer.confirm(f"Resume {task}: its session was halted by its kill "
                                     f"switch; it will trade again"
                                     + (" with real orders" if live else "") + ". Go on?",
                                     err=True):
        raise typer.Exit(1)
    _report(farm.resume(task, live=live), json)


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
    --node also takes a node an earlier deploy declared that the inventory no longer lists
    (`up` names them): it is stopped and then forgotten.

    Example: [bold]sfarm down -i inventory/local.toml[/]
    """
    _report(open_farm(inventory, network).down(node), json)


def render_status(status: NetworkStatus, now: float | None = None,
                  width: int | None = None) -> Group:
    """A table per node; `width` (the console's) drops the kind column below 100 columns and
    cuts long notes, so a row stays one line at 80."""
    now = time.time() if now is None else now
    narrow = (width or out.width) < 100
    tables: list[Table | Text] = []
    for node in status.nodes:
        title = f"[bold]{node.name}[/] [dim]{node.host}[/]"
        if node.failed_services:  # the reason is in the service's row
            failed = ", ".join(service.name for service in node.failed_services)
            title = f"[bold red]{node.name}[/] [dim]{node.host}[/] [red]failing: {failed}[/]"
        if not node.reachable:
            # A line, not a table: rich draws nothing at all of a table without columns.
            tables.append(Text.from_markup(f"{title} [red]unreachable:[/] "
                                           f"{escape(node.error or 'no reason given')}\n"))
            continue
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("task")
        if not narrow:
            table.add_column("kind", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("beat", no_wrap=True)
        table.add_column("last candle", no_wrap=True)
        table.add_column("lag", justify="right", no_wrap=True)
        table.add_column("rows", justify="right", no_wrap=True)
        # The columns rich may narrow (the others do not wrap); their text is cut, not
        # wrapped, so each task stays one line.
        table.add_column("note")
        for task in node.tasks:
            live = shows_live_values(task)
            rows = sum(d.rows for d in task.datasets)
            note = Text(task_note(task, now), style="red" if task.last_error else "",
                        no_wrap=True, overflow="ellipsis")
            colour = STATE_COLOURS.get(task.state, "white")
            table.add_row(Text(task.name, no_wrap=True, overflow="ellipsis"),
                          *([] if narrow else [task.kind]),
                          f"[{colour}]{task.state}[/]",
                          format_age(task.heartbeat_age_s if live else None),
                          short_ts(newest_candle(task)),
                          format_age(task.lag_s if live else None),
                          f"{rows:,}" if task.datasets else "-", note)
        if node.services:
            table.add_section()
        for service in node.services:
            colour = STATE_COLOURS.get(service.state, "white")
            table.add_row(Text(service.name, no_wrap=True, overflow="ellipsis"),
                          *([] if narrow else ["service"]),
                          f"[{colour}]{service.state}[/]", "-", "-", "-", "-",
                          Text(service_note(service), no_wrap=True, overflow="ellipsis",
                               style="red" if service.last_error else ""))
        tables.append(table)
    return Group(*tables)


def status(inventory: InventoryOption = None, network: NetworkOption = None,
           node: NodeOption = None, json: JsonOption = False,
           watch: Annotated[bool, typer.Option("--watch", "-w",
                                               help="Refresh in place until Ctrl-C.")] = False,
           interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
           timeout: Annotated[float, typer.Option(
               "--timeout", metavar="S", min=0.1,
               help="Seconds to wait for each SSH node to connect: one that has not by then "
                    "is reported unreachable (the others are not held up).")]
           = CONNECT_TIMEOUT_S,
           ) -> None:
    """Every node's tasks: state, heartbeat age, last candle and lag, rows, and a note (the last
    error, an input read from another node that is stale, a session's equity and PnL, what
    it waits for); then the services sfarm runs there (the exchange emulator, the resolver,
    the agent): state, restarts, why one fails. Exit 1 when a node is unreachable, a task or
    a service is not running or an input is stale.

    Example: [bold]sfarm status -i inventory/local.toml --watch[/]
    """
    if watch:
        _watch(open_farm(inventory, network, node, keep_connections=True,
                         connect_timeout=timeout, check_strategies=False), interval)
        return
    result = open_farm(inventory, network, node, connect_timeout=timeout,
                       check_strategies=False).status()
    if json:
        print_json(result.to_json())
    else:
        out.print(render_status(result))
    if not result.healthy:
        raise typer.Exit(1)


def _watch(farm: Farm, interval: float) -> None:
    """Refresh the status until Ctrl-C: in place on a terminal, else (a pipe, a log file) one
    table per refresh, each under the time it was taken. One connection per node throughout."""
    try:
        if out.is_terminal:
            from rich.live import Live

            with Live(render_status(farm.status()), console=out, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(render_status(farm.status()), refresh=True)
        while True:
            status = farm.status()
            out.print(f"[dim]{format_ts(int(time.time() * 1000))} UTC[/]")
            out.print(render_status(status))
            out.file.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return
    finally:
        farm.close()


def logs(
    node: Annotated[str, typer.Argument(help="Node name.", autocompletion=complete_nodes)],
    task: Annotated[str | None, typer.Argument(help="Task or service (default: every task).",
                                               autocompletion=complete_log_names)] = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")]
    = False,
    lines: Annotated[int, typer.Option("--lines", "-l", help="Lines to show first.")] = 40,
) -> None:
    """A worker's log (all of a node's workers without TASK), or a service's: TASK may name
    one that `sfarm status` lists under the node's tasks (e.g. its emulator, sim-EXCHANGE).

    Example: [bold]sfarm logs -i inventory/local.toml lab mine -f[/]
    """
    with open_farm(inventory, network, node).logs(node, task, lines) as tail:
        prefix = len(tail.tasks) > 1
        while True:
            for chunk in tail.read():
                for line in chunk.lines:
                    out.print(f"[cyan]{chunk.task}[/] {escape(line)}" if prefix
                              else escape(line))
            if not follow:
                return
            time.sleep(tail.poll_interval_s)


def register(app: typer.Typer) -> None:
    app.command()(deploy)
    app.command()(up)
    app.command()(start)
    app.command()(stop)
    app.command()(restart)
    app.command()(down)
    app.command()(status)
    app.command()(logs)
