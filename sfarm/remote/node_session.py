"""A node agent that stays up: one `sfarm node serve` on a node, on one SSH channel, answering
request frames with reply frames (sfarm.runtime.framing) for as long as the channel is open.

A kept connection (status --watch, the dashboard, deploy's phases) thus pays for the node's
Python start once, not once a request. Closing the channel ends the agent: it reads the end of
its stdin and exits, so nothing is left running on the node. The agent's stderr is drained all
along (a full SSH window would stall it) and its tail kept for the message when it dies.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable

from paramiko.channel import Channel
from paramiko.ssh_exception import SSHException

from sfarm.remote.ssh_channel import PID_LINE
from sfarm.runtime.envelope import ProtocolError
from sfarm.runtime.framing import BrokenStream, FrameError, encode_frame, read_frame

STDERR_KEPT = 64 * 1024  # bytes of the agent's stderr kept for an error message
EXIT_WAIT_S = 5.0  # how long a dead agent's exit status and last stderr are waited for


class SessionEnded(Exception):
    """The agent ended (or its channel did) without a reply: how, for the caller to explain."""

    def __init__(self, exit_code: int | None, stderr: str) -> None:
        super().__init__(f"the node agent ended (exit code {exit_code})")
        self.exit_code = exit_code
        self.stderr = stderr


class SessionTimeout(Exception):
    """No reply came within the time given: the agent was ended."""


class NodeSession:
    """The agent on `channel`, a command already started there whose stderr begins with
    `sfarm-pid:N` (sfarm.remote.ssh.SSHConnection.spawn). `kill(pid, "TERM")` signals it."""

    def __init__(self, channel: Channel, where: str, kill: Callable[[int, str], None]) -> None:
        self.where = where
        self._channel = channel
        self._replies = channel.makefile("rb")
        self._kill = kill
        self._lock = threading.Lock()  # one request at a time on a channel
        self._stderr: deque[bytes] = deque()
        self._stderr_size = 0
        self._head: bytes | None = b""  # stderr until its first line, the pid's, is complete
        self._pid: int | None = None
        self._drained = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drained.start()

    @property
    def alive(self) -> bool:
        return not self._channel.closed and not self._channel.exit_status_ready()

    def call(self, request: bytes, timeout: float) -> bytes:
        """The reply to `request`. Raises SessionEnded when the agent is gone, SessionTimeout
        after `timeout` seconds without a byte of reply, and ProtocolError for a reply that
        is no frame (either way the agent is then ended)."""
        with self._lock:
            self._channel.settimeout(timeout)
            try:
                self._channel.sendall(encode_frame(request))
                reply = read_frame(self._replies)
            except TimeoutError:  # socket.timeout: paramiko's recv with a timeout set
                self._kill_agent()
                raise SessionTimeout(f"no reply within {timeout:g} s") from None
            except FrameError as error:
                self._kill_agent()  # what it says is unknown: it is not asked again
                raise ProtocolError(f"{self.where}: its reply is not a frame ({error})",
                                    hint="is something on the node printing to stdout?") \
                    from None
            except (BrokenStream, OSError, EOFError, SSHException):
                reply = None
            if reply is None:
                raise self._ended()
            return reply

    def _ended(self) -> SessionEnded:
        self._channel.status_event.wait(EXIT_WAIT_S)
        self._drained.join(EXIT_WAIT_S)
        exit_code = self._channel.exit_status if self._channel.exit_status_ready() else None
        self.close()
        return SessionEnded(exit_code, self._stderr_text())

    def _kill_agent(self) -> None:
        """SIGTERM the agent, then SIGKILL (it may be stuck where TERM is not heard), and close:
        an agent that does not answer may not read its stdin's end either."""
        if self._pid is not None:
            for signal_name in ("TERM", "KILL"):
                try:
                    self._kill(self._pid, signal_name)
                except Exception:  # the connection is gone: sshd hangs up on the agent itself
                    break
                if self._channel.status_event.wait(2.0):
                    break
        self.close()

    def _drain_stderr(self) -> None:
        try:
            while chunk := self._channel.recv_stderr(65536):
                self._keep(chunk)
        except (OSError, EOFError, SSHException):
            pass  # the channel closed: what arrived is what is kept

    def _keep(self, chunk: bytes) -> None:
        if self._head is not None:
            self._head += chunk
            if b"\n" not in self._head and len(self._head) < 64:
                return
            chunk, self._head = self._head, None
            found = PID_LINE.match(chunk)
            if found is not None:
                self._pid = int(found.group(1))
                chunk = chunk[found.end():]
        self._stderr.append(chunk)
        self._stderr_size += len(chunk)
        while self._stderr_size > STDERR_KEPT and len(self._stderr) > 1:
            self._stderr_size -= len(self._stderr.popleft())

    def _stderr_text(self) -> str:
        return (b"".join(self._stderr) + (self._head or b"")).decode("utf-8", errors="replace")

    def close(self) -> None:
        """End the agent: its stdin ends, so it exits; the channel is closed."""
        with contextlib.suppress(OSError, EOFError, SSHException):
            self._channel.shutdown_write()
        self._channel.close()

