"""`sfarm node call`: a node's side of every farm command, one request of the node protocol
(sfarm.runtime.protocol) read from stdin, its reply written to stdout.

The controller runs it on a node reached over SSH (a local node's side runs in-process, through
the same handler). By hand, it answers any request, for example a node's facts:
`echo '{"protocol": 1, "sfarm": "0.1.0", "request": {"op": "facts"}}' | sfarm node call --root R`.
"""

from __future__ import annotations

import os
import sys
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
    from sfarm.runtime.handler import handle

    request = sys.stdin.buffer.read()
    # stdout carries the reply alone: whatever else writes there meanwhile (a print, a child
    # process such as supervisord starting) is sent to stderr instead.
    reply_channel = os.dup(1)
    os.dup2(2, 1)
    try:
        reply = handle(root.expanduser().absolute(), request)
    finally:
        sys.stdout.flush()
        os.dup2(reply_channel, 1)
        os.close(reply_channel)
    sys.stdout.buffer.write(reply + b"\n")
    sys.stdout.buffer.flush()


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
