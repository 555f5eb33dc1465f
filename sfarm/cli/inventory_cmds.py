"""Commands that read an inventory: validate, plan, init."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from sfarm.cli.console import err, out, print_json
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption
from sfarm.inventory import load_inventory
from sfarm.plan import Plan, plan_network
from sfarm.scaffold import scaffold_farm


def validate(inventory: InventoryOption = None, json: JsonOption = False) -> None:
    """Check the inventory: syntax, keys, names, markets, timeframes, indicator specs,
    strategies, and the dataset graph of every network. Exit 0 when valid, 2 when not.

    Example: [bold]sfarm validate -i inventory/farm.toml[/]
    """
    loaded = load_inventory(inventory)
    plans = [plan_network(loaded, network) for network in loaded.networks]
    warnings = [problem for plan in plans for problem in plan.problems]
    if json:
        print_json({"valid": True, "inventory": str(loaded.path),
                    "networks": loaded.networks,
                    "warnings": [problem.to_json() for problem in warnings]})
        return
    for problem in warnings:
        err.print(f"[yellow]warning:[/] {problem.message}")
    summary = ", ".join(f"{plan.network} ({len(plan.nodes)} nodes, {len(plan.datasets)} "
                        f"datasets)" for plan in plans)
    out.print(f"[green]valid[/]: {loaded.path}: {summary}")


def plan(inventory: InventoryOption = None, network: NetworkOption = None,
         json: JsonOption = False) -> None:
    """Show where every task runs, every dataset with its producer and consumers, and the
    transfers between nodes that the data resolver will perform.

    Example: [bold]sfarm plan -i inventory/farm.toml -n prod --json[/]
    """
    loaded = load_inventory(inventory)
    result = plan_network(loaded, loaded.select_network(network))
    if json:
        print_json(result.to_json())
        return
    render_plan(result)


def render_plan(result: Plan) -> None:
    tree = Tree(f"[bold]network {result.network}[/]")
    for node in result.nodes:
        branch = tree.add(f"[cyan]{node.name}[/] [dim]{node.host}[/]")
        produced = {d.id for d in result.datasets if d.producer and d.producer.node == node.name}
        for task in node.tasks:
            task_branch = branch.add(f"[bold]{task}[/]")
            for dataset in result.datasets:
                if dataset.producer and dataset.producer.node == node.name \
                        and dataset.producer.task == task:
                    task_branch.add(f"[green]produces[/] {dataset.id}")
                if any(c.node == node.name and c.task == task for c in dataset.consumers):
                    source = (f"[dim]local[/]" if dataset.id in produced else
                              f"[magenta]from {dataset.producer.node}[/]" if dataset.producer
                              else "[red]no producer[/]")
                    task_branch.add(f"[blue]reads[/] {dataset.id} {source}")
    out.print(tree)
    if result.transfers:
        table = Table(title="transfers", title_justify="left")
        for column in ("dataset", "from", "to"):
            table.add_column(column)
        for transfer in result.transfers:
            table.add_row(transfer.dataset, transfer.source, transfer.target)
        out.print(table)
    else:
        out.print("[dim]no transfers: every task reads data produced on its own node[/]")
    for problem in result.problems:
        colour = "red" if problem.severity == "error" else "yellow"
        out.print(f"[{colour}]{problem.severity}:[/] {problem.message}")


def init(
    directory: Annotated[Path, typer.Argument(help="Directory to create (or fill).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a farm: sfarm.toml (an inventory), strategies/rsi_revert.toml and a
    .gitignore that keeps secrets.toml out of git.

    Example: [bold]sfarm init myfarm && cd myfarm && sfarm validate && sfarm plan[/]
    """
    written = scaffold_farm(directory, force=force)
    for path in written:
        out.print(f"[green]created[/] {path}")
    out.print(f"next: [bold]cd {directory} && sfarm validate && sfarm plan[/]")


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(plan)
    app.command()(init)
