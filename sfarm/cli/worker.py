"""`sfarm worker run`: the process supervisord runs for one task of one node."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sfarm.errors import UsageError

worker_app = typer.Typer(help="The headless worker processes (run by supervisord).",
                         no_args_is_help=True)


@worker_app.command("run")
def run(
    root: Annotated[Path, typer.Option(help="The node root (holds inventory.toml and data/).")],
    task: Annotated[str, typer.Option(help="The task to run.")],
) -> None:
    """Run one task until SIGTERM: heartbeats in run/TASK.json, logs on stderr.

    Example: [bold]sfarm worker run --root ~/sfarm/prod/miner-1 --task mine-binance[/]
    """
    # The inventory and the worker (pydantic models, the engines) load to run a task, not at
    # every CLI start.
    from sfarm.inventory import load_inventory
    from sfarm.inventory.problems import did_you_mean
    from sfarm.runtime.engines import engine_for
    from sfarm.runtime.layout import NodeRoot
    from sfarm.runtime.parent import die_with_parent  # ctypes: a worker's only
    from sfarm.runtime.worker import configure_logging, run_worker, task_context

    node_root = NodeRoot(root.expanduser().resolve())
    inventory = load_inventory(node_root.inventory)
    if task not in inventory.model.tasks:
        raise UsageError(f"no task {task!r} in {node_root.inventory}",
                         hint=did_you_mean(task, inventory.model.tasks))
    configure_logging()
    die_with_parent()  # never run on unsupervised: a live session above all
    context = task_context(node_root, task, inventory.model.tasks[task])
    sys.exit(run_worker(context, engine_for(inventory, task)))


@worker_app.command("resolver")
def resolver(
    root: Annotated[Path, typer.Option(help="The node root (holds routes.json and mirror/).")],
) -> None:
    """Follow the node's peers and pull their datasets into mirror/ until SIGTERM.

    Example: [bold]sfarm worker resolver --root ~/sfarm/prod/quant-1[/]
    """
    import signal
    import threading

    from sfarm.resolver.routes import load_routes
    from sfarm.resolver.service import run_resolver
    from sfarm.runtime.layout import NodeRoot
    from sfarm.runtime.parent import die_with_parent
    from sfarm.runtime.worker import configure_logging

    node_root = NodeRoot(root.expanduser().resolve())
    routes = load_routes(node_root.path)
    if routes is None:
        raise UsageError(f"no routes in {node_root.path}", hint="`sfarm deploy` writes them")
    configure_logging()
    die_with_parent()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run_resolver(node_root.path, routes, stop)


def register(app: typer.Typer) -> None:
    app.add_typer(worker_app, name="worker")
