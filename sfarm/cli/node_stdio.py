"""The node's side of farm commands on its standard streams, with nothing of the command line
loaded: `python -m sfarm.cli.node_stdio call|serve --root R` is what the controller starts on a
node (sfarm.remote.ssh_transport), and `... agent --root R` the resident agent supervisord runs
there (sfarm.runtime.agent_server). `sfarm node call` and `sfarm node serve` (sfarm.cli.node) are
the same functions behind typer; this entry skips typer and the other commands, so a node
answers sooner (typer and click alone are ~0.07 s of CPU a start).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def answer_one(root: Path) -> None:
    """One request envelope from stdin, its reply (and a newline) on stdout."""
    from sfarm.runtime.handler import handle

    request = sys.stdin.buffer.read()
    with _reply_channel() as replies:
        replies.write(handle(root.expanduser().absolute(), request) + b"\n")


def serve_frames(root: Path) -> None:
    """Framed requests from stdin answered with framed replies on stdout, until stdin ends."""
    from sfarm.runtime.handler import serve

    # Requests are this process's alone: what it starts (supervisord) gets /dev/null as stdin.
    requests = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    with _reply_channel() as replies, contextlib.suppress(BrokenPipeError):
        serve(root.expanduser().absolute(), requests, replies)


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


def resident_agent(root: Path) -> None:
    """The node's resident agent on its unix socket, until SIGTERM (run by supervisord)."""
    from sfarm.runtime.agent_server import run_agent

    run_agent(root)


COMMANDS = {"call": answer_one, "serve": serve_frames, "agent": resident_agent}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sfarm.cli.node_stdio",
                                     description="A node's side of farm commands: see "
                                                 "`sfarm node --help`.")
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("--root", type=Path, required=True, help="The node root.")
    arguments = parser.parse_args(argv)
    COMMANDS[arguments.command](arguments.root)


if __name__ == "__main__":
    main()
    # The reply is out (and its stream closed): skip the interpreter's teardown, which frees
    # every module one by one (~25 ms of a node's ~0.3 s start, paid once per request).
    sys.stderr.flush()
    os._exit(0)
