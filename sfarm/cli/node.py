"""`sfarm node ...`: a node's side of deploy, status, start/stop/restart and down.

The controller runs these on a remote node over SSH (a local node's side runs in-process): input
as JSON on stdin, the result as JSON on stdout (sfarm.runtime.protocol). Operators rarely need
them; they are handy to debug a node by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.runtime import node as node_ops
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import deployment_from_json, steps_to_json

node_app = typer.Typer(help="A node's side of farm commands (run by sfarm over SSH).",
                       no_args_is_help=True)

RootOption = Annotated[Path, typer.Option(help="The node root.")]


@node_app.callback()
def _check_version(expect_version: Annotated[str | None, typer.Option(
        "--expect-version", help="Refuse to act unless this node runs this sfarm version.")]
        = None) -> None:
    # The controller and its nodes must run one version: a node root written by one version
    # and driven by another (status format, deployment, store layout) is not supported.
    if expect_version is not None and expect_version != __version__:
        raise RunError(f"this node runs sfarm {__version__}, the controller {expect_version}",
                       hint="run `sfarm deploy` from the controller")


def _root(root: Path) -> NodeRoot:
    return NodeRoot(root.expanduser().absolute())


def _reply(data: bytes) -> None:
    sys.stdout.buffer.write(data + b"\n")
    sys.stdout.buffer.flush()


@node_app.command("apply")
def apply(root: RootOption) -> None:
    """Make the node root match the deployment read from stdin (JSON); print the steps.

    Example: [bold]sfarm node apply --root ~/sfarm/prod/quant-1 < deployment.json[/]
    """
    _reply(steps_to_json(node_ops.apply_deployment(_root(root),
                                                   deployment_from_json(sys.stdin.buffer.read()))))


@node_app.command("status")
def status(root: RootOption) -> None:
    """Print the state of the tasks read from stdin (JSON: name -> kind).

    Example: [bold]echo '{"mine-majors": "mine"}' | sfarm node status --root ~/sfarm/prod/miner-1[/]
    """
    tasks = json.loads(sys.stdin.buffer.read() or b"{}")
    rows = node_ops.node_task_status(_root(root), tasks)
    _reply(json.dumps([row.model_dump(mode="json") for row in rows]).encode())


@node_app.command("control")
def control(
    action: Annotated[str, typer.Argument(help="start, stop or restart.")],
    root: RootOption,
    task: Annotated[list[str] | None, typer.Option("--task", help="A task (repeatable).")] = None,
) -> None:
    """Start, stop or restart supervised workers; print the steps.

    Example: [bold]sfarm node control restart --root ~/sfarm/prod/miner-1 --task mine-majors[/]
    """
    if action not in ("start", "stop", "restart"):
        raise typer.BadParameter(f"{action!r}: expected start, stop or restart")
    _reply(steps_to_json(node_ops.control(_root(root), action, task or [])))  # type: ignore[arg-type]


@node_app.command("live")
def live(
    root: RootOption,
    task: Annotated[list[str], typer.Option("--task", help="A live trade task (repeatable).")],
    arm: Annotated[bool, typer.Option("--arm/--disarm", help="Arm or disarm.")] = False,
    by: Annotated[str, typer.Option(help="The command that arms, for the record.")]
    = "sfarm start --live",
) -> None:
    """Arm or disarm live trade tasks (run/<task>.live); print the steps.

    Example: [bold]sfarm node live --root ~/sfarm/prod/trader-1 --task btc-live --arm[/]
    """
    _reply(steps_to_json(node_ops.set_live(_root(root), task, arm, by)))


@node_app.command("down")
def down(root: RootOption) -> None:
    """Stop every worker and the node's supervisord; print the step.

    Example: [bold]sfarm node down --root ~/sfarm/prod/miner-1[/]
    """
    _reply(steps_to_json([node_ops.shutdown(_root(root))]))


@node_app.command("log")
def log(
    root: RootOption,
    task: Annotated[str | None, typer.Option(help="The task (default: supervisord's log).")
                    ] = None,
    lines: Annotated[int, typer.Option(help="How many last lines.")] = 40,
    offset: Annotated[int | None, typer.Option(
        help="Print what was written after this byte offset instead.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Lines and the next offset as "
                                              "JSON.")] = False,
) -> None:
    """Print the last lines of a worker's log, or what it wrote after an offset.

    Example: [bold]sfarm node log --root ~/sfarm/prod/miner-1 --task mine-majors --lines 50[/]
    """
    chunk = node_ops.read_log(_root(root), task, offset=offset, lines=lines)
    if json_output:
        _reply(json.dumps({"lines": chunk.lines, "offset": chunk.offset}).encode())
        return
    for line in chunk.lines:
        print(line)


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
