"""The relay the controller runs on a node over SSH for a read (a status, a log): it pipes its
stdin and stdout to the node's resident agent (sfarm.runtime.agent_server) on
`<root>/run/agent.sock`, so a request costs the interpreter's start without site (`-I -S`,
~15 ms of CPU) instead of sfarm's (~0.3 s).

When there is no agent to answer (no socket: supervisord is down, a node deployed by an older
sfarm; a socket no one listens on; a connection closed without the agent's greeting: it is
stopping or runs code no longer installed), the relay becomes `python -m sfarm.cli.node_stdio
ARGS` (exec: the same process, the same stdin), what the controller would have run without
an agent. Either way the controller sees what that command would print: with ARGS `call
--root R`, one request on stdin and its reply on stdout (the relay frames them for the agent:
sfarm.runtime.framing); with `serve --root R`, frames both ways.

Standard library only, and nothing of sfarm: the relay must start in milliseconds whatever the
node's Python holds. Its arguments: the node root (`~/` expanded here), then ARGS (`call` or
`serve`, then `--root R`). The reply of a `call` cut short (the agent killed while answering)
is not printed: an empty reply says to ask again.
"""

from __future__ import annotations

from sfarm.runtime.agent_server import GREETING, SOCKET_NAME

GREETING_TIMEOUT_S = 5.0  # an agent that accepts and never greets (stopped, stuck)

RELAY_SOURCE = f"""\
import os, socket, sys
root, args = os.path.expanduser(sys.argv[1]), sys.argv[2:]
agent = socket.socket(socket.AF_UNIX)
agent.settimeout({GREETING_TIMEOUT_S})  # an agent that hangs is passed over
try:
    here = os.open(".", os.O_RDONLY)
    try:
        os.chdir(os.path.join(root, "run"))  # a socket path is limited to ~100 bytes
        agent.connect({SOCKET_NAME!r})
    finally:
        os.fchdir(here)
        os.close(here)
    greeted = agent.recv(1) == {GREETING!r}
    agent.settimeout(None)
except OSError:
    greeted = False
if not greeted:
    agent.close()
    os.execv(sys.executable, [sys.executable, "-m", "sfarm.cli.node_stdio", *args])
def write(data):
    while data:
        data = data[os.write(1, data):]
if args[0] == "call":  # one request, all of stdin; its reply on stdout, as `node call`
    request = sys.stdin.buffer.read()
    agent.sendall(b"%d\\n" % len(request) + request)
    agent.shutdown(socket.SHUT_WR)
    parts = []
    while data := agent.recv(65536):
        parts.append(data)
    header, _, reply = b"".join(parts).partition(b"\\n")
    if header.isdigit() and len(reply) == int(header):  # else the agent went: say nothing
        write(reply + b"\\n")
    sys.exit(0)
import threading
def forward():
    while data := os.read(0, 65536):
        agent.sendall(data)
    agent.shutdown(socket.SHUT_WR)
threading.Thread(target=forward, daemon=True).start()
while data := agent.recv(65536):
    write(data)
"""
