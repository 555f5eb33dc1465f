"""`sfarm node call` and `sfarm node serve`: a node's side of every farm command. `call`
answers one request of the node protocol (sfarm.runtime.protocol) read from stdin, its reply
written to stdout; `serve` answers framed requests (sfarm.runtime.framing) until stdin ends.

The controller runs `serve` on a node reached over SSH, for the life of its connection (a local
node's side runs in-process, through the same handler). By hand, `call` answers any request,
for example a node's facts:
`echo '{"protocol": 1, "sfarm": "0.1.0", "request": {"op": "facts"}}' | sfarm node call --root R`.

`python -m sfarm.cli.node` runs these commands without loading the rest of the command line:
what the controller starts on a node, so that a node answers sooner.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

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
    with _reply_channel() as replies:
        reply = handle(root.expanduser().absolute(), request)
        replies.write(reply + b"\n")


@node_app.command("serve")
def serve(root: Annotated[Path, typer.Option(help="The node root.")]) -> None:
    """Answer requests of the node protocol until stdin ends: each request a frame on stdin
    (its length in decimal digits, a newline, its JSON envelope), each reply a frame on stdout,
    in order. A frame that cannot be read gets an error reply. What sfarm runs on a node for
    the life of its SSH connection; it ends when the connection does.

    Example: [bold]printf '37\\n{"protocol": 1, "sfarm": "0.1.0", ...' |
    sfarm node serve --root ~/sfarm/prod/miner-1[/]
    """
    from sfarm.runtime.handler import serve as serve_frames

    # Requests are this process's alone: what it starts (supervisord) gets /dev/null as stdin.
    requests = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    with _reply_channel() as replies, contextlib.suppress(BrokenPipeError):
        serve_frames(root.expanduser().absolute(), requests, replies)


@contextlib.contextmanager
def _reply_channel() -> Iterator[BinaryIO]:
    """The process's stdout, for replies alone: meanwhile whatever else writes to file
    descriptor 1 (a print, a child process such as supervisord starting) goes to stderr."""
    replies = os.fdopen(os.dup(1), "wb")  # not inherited by children (os.dup's default)
    os.dup2(2, 1)
    try:
        yield replies
    finally:
        sys.stdout.flush()
        with contextlib.suppress(BrokenPipeError):
            replies.close()


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")


if __name__ == "__main__":  # python -m sfarm.cli.node: the node's commands alone
    node_app(prog_name="sfarm node")
