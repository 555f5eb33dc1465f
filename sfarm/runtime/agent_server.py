"""The resident node agent: one process per node root, supervised by the node's supervisord
(program `sfarm-agent`, sfarm.remote.deploy), answering the node protocol's reads on a unix
socket, `<root>/run/agent.sock` (run/ is 0700, the socket 0600: the node's user alone).

A request over SSH otherwise starts Python on the node (`python -m sfarm.cli.node_stdio`, ~0.3 s
of CPU); with the agent up, the controller runs a relay instead (sfarm.remote.relay: the
interpreter without site, ~15 ms) that pipes its stdin and stdout to this socket.

On the socket: the agent first sends GREETING, then answers request frames with reply frames
(sfarm.runtime.framing), as `sfarm node serve` does on its stdio, until the peer ends its side.
No greeting (the connection closed at once) says "ask someone else": the relay then runs the
node's Python as it would without an agent. The agent withholds it when

* the code it runs is no longer the code installed (a deploy installed another sfarm and
  supervisord has not restarted the agent yet): it then exits, and supervisord starts it on the
  installed code;
* it is stopping (SIGTERM: supervisord's stop, or the parent-death signal), or serves
  MAX_CONNECTIONS already.

It answers reads only (`READS`): a request that changes the node (a deploy, a stop, `down`) may
restart supervisord's programs, this agent among them, and is answered by the node's Python,
never here. Each connection has a thread; the handler keeps no state between requests (every
request reads the node root afresh), so connections never share anything but the root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

import sfarm
from sfarm.data.fsio import make_private_dirs
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import (
    DatasetsRequest,
    FactsRequest,
    LogRequest,
    SessionRequest,
    StatusRequest,
    TailRequest,
)

log = logging.getLogger(__name__)

SOCKET_NAME = "agent.sock"  # in the node root's run/
GREETING = b"+"  # the first byte on a connection the agent serves
MAX_CONNECTIONS = 64  # beyond: no greeting, the relay falls back to the node's Python
STOP_GRACE_S = 5.0  # how long a stopping agent waits for the requests under way
# The requests the agent answers: those that only read the node root.
READS = (StatusRequest, LogRequest, DatasetsRequest, FactsRequest, TailRequest, SessionRequest)


def socket_path(root: NodeRoot) -> Path:
    return root.run / SOCKET_NAME


def code_stamp(package: Path | None = None) -> Hashable:
    """What the installed code of sfarm looks like on disk, cheaply (a stat of each module,
    ~2 ms): a reinstall or an edit changes it. `package`: sfarm's directory by default."""
    top = Path(sfarm.__file__).parent if package is None else package
    seen: list[tuple[str, str, tuple[int, int, int] | None]] = []
    for directory, subdirectories, files in os.walk(top):
        subdirectories[:] = sorted(name for name in subdirectories if name != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    info = os.stat(os.path.join(directory, name))
                except FileNotFoundError:  # removed while walking: a reinstall under way
                    seen.append((directory, name, None))
                    continue
                seen.append((directory, name,
                             (info.st_ino, info.st_size, info.st_mtime_ns)))
    return tuple(seen)


class _Connection:
    """One peer: its socket, and a lock held while one of its requests is being answered."""

    def __init__(self, peer: socket.socket) -> None:
        self.peer = peer
        self.answering = threading.Lock()


class AgentServer:
    """The agent of node root `root` on the listening unix socket `listener`; `stamp()` is
    the installed code's stamp (code_stamp), compared with the one at start at every new
    connection."""

    def __init__(self, root: Path, listener: socket.socket,
                 stamp: Callable[[], Hashable] = code_stamp) -> None:
        # Not at import: the controller imports this module for GREETING and READS alone.
        from sfarm.runtime.handler import answer_next

        self._answer_next = answer_next
        self.root = root
        self._listener = listener
        self._stamp = stamp
        self._started_with = stamp()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._threads: set[threading.Thread] = set()

    def serve_forever(self) -> None:
        """Accept connections until `stop()`, then wait (up to STOP_GRACE_S) for the
        requests under way."""
        while not self._stopping.is_set():
            try:
                peer, _ = self._listener.accept()
            except OSError:
                break  # the listener was closed: stopping
            self._admit(peer)
        self._wait_for_requests()

    def _admit(self, peer: socket.socket) -> None:
        with self._lock:
            busy = len(self._connections) >= MAX_CONNECTIONS
        if busy or self._stopping.is_set():
            peer.close()  # no greeting: the relay asks the node's Python instead
            return
        if self._stamp() != self._started_with:
            log.info("the installed sfarm changed under the agent: exiting, for supervisord "
                     "to start the installed one")
            peer.close()
            self.stop()
            return
        connection = _Connection(peer)
        thread = threading.Thread(target=self._serve, args=(connection,), daemon=True,
                                  name="sfarm-agent-connection")
        with self._lock:
            self._connections.add(connection)
            self._threads.add(thread)
        thread.start()

    def _serve(self, connection: _Connection) -> None:
        peer = connection.peer
        try:
            with peer, peer.makefile("rb") as requests, peer.makefile("wb") as replies:
                peer.sendall(GREETING)
                while not self._stopping.is_set() and self._answer_next(
                        self.root, requests, replies, READS, connection.answering):
                    pass
        except OSError:
            pass  # the peer went away (or `stop` shut an idle connection down)
        finally:
            with self._lock:
                self._connections.discard(connection)
                self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        """Stop accepting; end the idle connections now, the others after their reply."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() up
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            if connection.answering.acquire(blocking=False):
                try:
                    connection.peer.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                finally:
                    connection.answering.release()

    def _wait_for_requests(self) -> None:
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(STOP_GRACE_S / max(1, len(threads)))


def listen(root: NodeRoot) -> tuple[socket.socket, int]:
    """A listening socket at run/agent.sock, 0600, put in place atomically (a connection
    never finds the path without a listener behind it, but for an agent that died outright),
    and the inode of that path. The process moves into run/: a socket's path is limited to
    ~100 bytes, a node root's path is not."""
    make_private_dirs(root.run)
    os.chdir(root.run)
    temporary = f".{SOCKET_NAME}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a dead agent's, of the same pid
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o077)
    try:
        listener.bind(temporary)
    finally:
        os.umask(old_mask)
    os.chmod(temporary, 0o600)
    listener.listen(MAX_CONNECTIONS)
    os.replace(temporary, SOCKET_NAME)
    return listener, os.stat(SOCKET_NAME).st_ino


def remove_socket(listener: socket.socket, inode: int) -> None:
    """Close the listener and remove run/agent.sock if it is still its own (`inode`): a new
    agent may have put its own there."""
    listener.close()
    with contextlib.suppress(FileNotFoundError):
        if os.stat(SOCKET_NAME).st_ino == inode:
            os.unlink(SOCKET_NAME)


def run_agent(root: Path) -> None:
    """Serve node root `root` until SIGTERM (supervisord's stop, or its death)."""
    from sfarm.runtime.parent import die_with_parent
    from sfarm.runtime.worker import configure_logging

    configure_logging()
    die_with_parent()  # never outlive supervisord: it is what restarts the agent
    node_root = NodeRoot(root.expanduser().absolute())
    listener, inode = listen(node_root)
    server = AgentServer(node_root.path, listener)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=server.stop).start())
    log.info("serving %s on %s", node_root.path, socket_path(node_root))
    try:
        server.serve_forever()
    finally:
        remove_socket(listener, inode)
    log.info("stopped")
