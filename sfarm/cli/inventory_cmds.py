"""Commands that read an inventory: validate, plan, init."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sfarm.cli.console import err, out, print_json
from sfarm.cli.failure import validation_document
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption
from sfarm.errors import RunError, SfarmError

if TYPE_CHECKING:
    from sfarm.plan import Plan


def validate(inventory: InventoryOption = None, json: JsonOption = False) -> None:
    """Check the inventory: syntax, keys, names, markets, timeframes, indicator specs,
    strategies, and the dataset graph of every network. Exit 0 when valid, 2 when not.

    Example: [bold]sfarm validate -i inventory/farm.toml[/]
    """
    from sfarm.inventory import load_inventory  # the models: when a command reads one
    from sfarm.plan import plan_network

    try:
        loaded = load_inventory(inventory)
        plans = [plan_network(loaded, network) for network in loaded.networks]
    except SfarmError as error:
        if json:  # the document SPEC gives validate in both cases; the message on stderr
            print_json(validation_document(error))
        raise
    warnings = [problem for plan in plans for problem in plan.problems]
    if json:
        print_json({"valid": True, "inventory": str(loaded.path),
                    "networks": loaded.networks,
                    "warnings": [problem.to_json() for problem in warnings]})
        return
    for problem in warnings:
        err.print(f"[yellow]warning:[/] {escape(problem.message)}")
    summary = ", ".join(f"{plan.network} ({_count(len(plan.nodes), 'node')}, "
                        f"{_count(len(plan.datasets), 'dataset')})" for plan in plans)
    out.print(f"[green]valid[/]: {loaded.path}: {summary}")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def plan(inventory: InventoryOption = None, network: NetworkOption = None,
         json: JsonOption = False) -> None:
    """Show where every task runs, every dataset with its producer and consumers, and the
    transfers between nodes: after `sfarm deploy`, each consumer's resolver performs them by
    itself (see docs/operations.md, "How data moves between nodes").

    Example: [bold]sfarm plan -i inventory/farm.toml -n prod --json[/]
    """
    from sfarm.inventory import load_inventory
    from sfarm.plan import plan_network

    loaded = load_inventory(inventory)
    result = plan_network(loaded, loaded.select_network(network))
    if json:
        print_json(result.to_json())
        return
    render_plan(result)


def _grouped(ids: list[str]) -> list[str]:
    """`a/b/{x, y}` for ids that differ only in their last part: long plans stay readable."""
    groups: dict[str, list[str]] = {}
    for dataset in ids:
        parent, _, leaf = dataset.rpartition("/")
        groups.setdefault(parent, []).append(leaf)
    return [f"{parent}/{leaves[0]}" if len(leaves) == 1 else f"{parent}/{{{', '.join(leaves)}}}"
            for parent, leaves in groups.items()]


def render_plan(result: Plan) -> None:
    from rich.tree import Tree

    from sfarm.plan import TaskRef

    tree = Tree(f"[bold]network {result.network}[/]")
    for node in result.nodes:
        branch = tree.add(f"[cyan]{node.name}[/] [dim]{node.host}[/]")
        for task in node.tasks:
            task_branch = branch.add(f"[bold]{task}[/]")
            reads: dict[str, list[str]] = {}
            for dataset in result.datasets:
                if any(c.node == node.name and c.task == task for c in dataset.consumers):
                    source = ("[red]no producer[/]" if dataset.producer is None else
                              "[dim]local[/]" if dataset.producer.node == node.name else
                              f"[magenta]from {dataset.producer.node}[/]")
                    reads.setdefault(source, []).append(dataset.id)
            for source, ids in reads.items():
                for line in _grouped(ids):
                    task_branch.add(f"[blue]reads[/] {line} {source}")
            produced = [d.id for d in result.datasets
                        if d.producer == TaskRef(node.name, task)]
            for line in _grouped(produced):
                task_branch.add(f"[green]produces[/] {line}")
    out.print(tree, crop=False)
    if result.transfers:
        table = Table(title="transfers (each consumer's resolver pulls these once deployed)",
                      title_justify="left")
        for column in ("dataset", "from", "to"):
            table.add_column(column)
        for transfer in result.transfers:
            table.add_row(transfer.dataset, transfer.source, transfer.target)
        out.print(table)
    else:
        out.print("[dim]no transfers: every task reads data produced on its own node[/]")
    for problem in result.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        out.print(f"[{colour}]{problem.severity}:[/] {escape(problem.message)}")


def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create (or fill).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a farm: sfarm.toml (an inventory), strategies/rsi_revert.toml and a
    .gitignore that keeps secrets.toml out of git.

    The farm is named after DIRECTORY; it runs on this machine against the offline exchange
    emulator (on a port no farm here uses), so [bold]sfarm up[/] works at once.

    Example: [bold]sfarm init myfarm && cd myfarm && sfarm validate && sfarm plan[/]
    """
    from sfarm.scaffold import scaffold_farm

    try:
        written = scaffold_farm(directory, force=force)
    except OSError as error:  # a file in the way, a directory it cannot write
        raise RunError(f"cannot write the farm into {directory}: "
                       f"{error.filename or directory}: {error.strerror}",
                       hint="choose a directory you can write to") from None
    for path in written:
        out.print(f"[green]created[/] {path}")
    where = escape(shlex.quote(str(directory)))
    out.print(f"next: [bold]cd {where} && sfarm validate && sfarm up --wait 180 && "
              "sfarm status[/]")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(plan)
    app.command()(init)
