"""`sfarm node call` and `sfarm node serve`: a node's side of every farm command. `call`
answers one request of the node protocol (sfarm.runtime.protocol) read from stdin, its reply
written to stdout; `serve` answers framed requests (sfarm.runtime.framing) until stdin ends.

The controller runs `serve` on a node reached over SSH, for the life of its connection (a local
node's side runs in-process, through the same handler). By hand, `call` answers any request,
for example a node's facts:
`echo '{"protocol": 1, "sfarm": "0.1.0", "request": {"op": "facts"}}' | sfarm node call --root R`.

The controller starts the same functions as `python -m sfarm.cli.node_stdio call|serve --root R`
(sfarm.cli.node_stdio), without typer and the rest of the command line: a node answers sooner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

node_app = typer.Typer(help="A node's side of farm commands (run by sfarm over SSH).",
                       no_args_is_help=True)


@node_app.command("call")
def call(root: Annotated[Path, typer.Option(help="The node root.")]) -> None:
    """Answer one request of the node protocol: its JSON envelope on stdin, the reply's on
    stdout (an error reply when anything fails: the exit status is 0 once a reply is out).

    Example: [bold]echo '{"protocol": 1, "sfarm": "0.1.0", "request": {"op": "facts"}}' |
    sfarm node call --root ~/sfarm/prod/miner-1[/]
    """
    from sfarm.cli.node_stdio import answer_one  # argparse and the rest: a node's only

    answer_one(root)


@node_app.command("serve")
def serve(root: Annotated[Path, typer.Option(help="The node root.")]) -> None:
    """Answer requests of the node protocol until stdin ends: each request a frame on stdin
    (its length in decimal digits, a newline, its JSON envelope), each reply a frame on stdout,
    in order. A frame that cannot be read gets an error reply. What sfarm runs on a node for
    the life of its SSH connection; it ends when the connection does.

    Example: [bold]printf '37\\n{"protocol": 1, "sfarm": "0.1.0", ...' |
    sfarm node serve --root ~/sfarm/prod/miner-1[/]
    """
    from sfarm.cli.node_stdio import serve_frames

    serve_frames(root)


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")

