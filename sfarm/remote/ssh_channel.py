"""Commands on one SSH channel each, over a connected paramiko transport: run one to its end
(stdout and stderr kept as bytes, stdin fed, a timeout that ends the remote process), or start
one and hand its channel over (a node agent, sfarm.remote.node_session).

A command run with a timeout, and every started one, goes through a shell that first prints
its pid on stderr (`sfarm-pid:N`), so it can be signalled on the node: closing a channel does
not end what runs there. sfarm.remote.ssh.SSHConnection is the caller; failures are mapped as
it maps them (sfarm.remote.ssh_errors).
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Callable, Sequence
from typing import Any

from paramiko import Transport
from paramiko.channel import Channel
from paramiko.ssh_exception import SSHException

from sfarm.remote import ssh_errors
from sfarm.remote.connection import TERMINATE_GRACE, Failure, TransportError, describe_command
from sfarm.remote.ssh_errors import SSHTarget

DRAIN_AFTER_EXIT = 5.0  # seconds to wait for output after exit (a daemon may hold the pipes)
# Prints the shell's pid (which exec keeps for the command) so a timeout can signal it.
PID_WRAPPER = 'printf "sfarm-pid:%s\\n" "$$" >&2; exec "$@"'
PID_LINE = re.compile(rb"\Asfarm-pid:(\d+)\n")


def with_pid(words: Sequence[str]) -> list[str]:
    """`words` run through the shell that prints their pid first on stderr."""
    return ["sh", "-c", PID_WRAPPER, "sfarm-run", *words]


def execute(transport: Transport, target: SSHTarget, command: str, input: bytes | None,
            timeout: float | None, argv: Sequence[str], open_timeout: float
            ) -> tuple[int, bytes, bytes]:
    """Run the shell `command` to its end: exit code, stdout, stderr. After `timeout` seconds
    the command is signalled (when its pid is known) and TransportError(TIMEOUT) raised."""
    try:
        channel = transport.open_session(timeout=open_timeout)
    except (SSHException, OSError, EOFError) as exc:
        raise ssh_errors.protocol_error(target, f"could not open a channel: {exc}") from None
    stdout, stderr = bytearray(), bytearray()
    try:
        channel.exec_command(command)
        readers = [_thread(_drain, channel.recv, stdout),
                   _thread(_drain, channel.recv_stderr, stderr)]
        if input:
            _thread(_feed, channel, input)
        else:
            channel.shutdown_write()  # the command reads end-of-file at once
        if not channel.status_event.wait(timeout):
            _terminate(transport, target, channel, stderr, open_timeout)
            raise TransportError(
                Failure.TIMEOUT, f"{target.where}: `{describe_command(argv)}` timed out "
                                 f"after {timeout:g} s and was terminated")
        for reader in readers:
            reader.join(DRAIN_AFTER_EXIT)
        exit_code = channel.recv_exit_status()
    except (SSHException, OSError, EOFError) as exc:
        raise ssh_errors.protocol_error(target, f"could not run a command: {exc}") from None
    finally:
        channel.close()
    if exit_code == -1 and not transport.is_active():
        raise ssh_errors.protocol_error(
            target, f"the connection was lost while running `{describe_command(argv)}`")
    return exit_code, bytes(stdout), bytes(stderr)


def start(transport: Transport, target: SSHTarget, words: Sequence[str],
          open_timeout: float) -> Channel:
    """Start `words` on a channel of its own and return at once: the channel carries the
    command's stdin, stdout and stderr, stderr's first line being `sfarm-pid:N`. Closing the
    channel ends the command's stdin."""
    try:
        channel = transport.open_session(timeout=open_timeout)
        channel.exec_command(shlex.join(with_pid(words)))
    except (SSHException, OSError, EOFError) as exc:
        raise ssh_errors.protocol_error(
            target, f"could not start `{describe_command(words)}`: {exc}") from None
    return channel


def _terminate(transport: Transport, target: SSHTarget, channel: Channel, stderr: bytearray,
               open_timeout: float) -> None:
    """SIGTERM the timed-out command (SIGKILL if it lingers); without a pid, just hang up."""
    found = PID_LINE.match(bytes(stderr))
    if found is None:
        return
    for signal_name in ("TERM", "KILL"):
        try:
            execute(transport, target, shlex.join(["kill", f"-{signal_name}",
                                                   found.group(1).decode()]),
                    None, None, ["kill"], open_timeout)
        except TransportError:
            return  # the connection is gone, and sshd hangs up on the command
        if channel.status_event.wait(TERMINATE_GRACE):
            return


def _thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _drain(receive: Callable[[int], bytes], into: bytearray) -> None:
    try:
        while chunk := receive(65536):
            into.extend(chunk)
    except (OSError, EOFError, SSHException):
        pass  # the channel closed under us: what arrived is what we report


def _feed(channel: Channel, data: bytes) -> None:
    try:
        channel.sendall(data)
        channel.shutdown_write()
    except (OSError, EOFError, SSHException):
        pass  # the command exited without reading all of its input
