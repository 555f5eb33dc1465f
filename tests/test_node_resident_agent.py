"""The node's resident agent (sfarm.runtime.agent_server) and the relay the controller runs to
reach it (sfarm.remote.relay).

In this process and with real processes on this machine first: the agent answers reads as the
node's handler does, several connections at once, refuses what is no read, and withholds its
greeting (so the relay runs the node's Python instead, transparently) when it stops or when the
code installed is no longer the code it runs. Then on SSH hosts (each a unix user with its own
sshd): deploy makes supervisord run the agent, the controller's reads go through it, the answers
are those of the node's Python, and without the agent everything works as before.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sfarm.inventory import NodeSpec
from sfarm.remote.deploy import AGENT_PROGRAM
from sfarm.remote.relay import RELAY_SOURCE
from sfarm.runtime.agent_server import (
    GREETING,
    MAX_CONNECTIONS,
    AgentServer,
    code_stamp,
    listen,
    remove_socket,
    socket_path,
)
from sfarm.runtime.envelope import encode_request
from sfarm.runtime.framing import encode_frame, read_frame
from sfarm.runtime.handler import handle
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import DownRequest, FactsRequest, LogRequest, StatusRequest
from sfarm.runtime.supervisor import Supervisor
from sfarm.status import NodeStatus
from tests.fixtures.processes import PROJECT
from tests.fixtures.scale_farm import ScaleFarm, scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

FACTS = encode_request(FactsRequest())
STATUS = encode_request(StatusRequest(tasks={"mine-1": "mine"}))
LOG = encode_request(LogRequest(task=None, offset=None, lines=5))
DOWN = encode_request(DownRequest())


@contextmanager
def running_agent(root: Path, stamp: Callable[[], Hashable] = lambda: 1
                  ) -> Iterator[AgentServer]:
    """An agent of `root` serving in a thread of this process (stopped at the end)."""
    here = os.getcwd()
    listener, inode = listen(NodeRoot(root))  # moves into run/, as the agent's process does
    os.chdir(here)
    server = AgentServer(root, listener, stamp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(10)
        os.chdir(root / "run")
        try:
            remove_socket(listener, inode)
        finally:
            os.chdir(here)


def connect(root: Path) -> socket.socket:
    peer = socket.socket(socket.AF_UNIX)
    peer.settimeout(10)
    peer.connect(str(socket_path(NodeRoot(root))))
    return peer


def ask(peer: socket.socket, *requests: bytes) -> list[bytes]:
    """The replies to `requests` on a greeted connection, in order."""
    peer.sendall(b"".join(encode_frame(request) for request in requests))
    replies = peer.makefile("rb")
    return [read_frame(replies) or b"" for _ in requests]


def reply_body(raw: bytes) -> dict[str, object]:
    document = json.loads(raw)
    assert isinstance(document, dict)
    return document


# --- the agent, in this process -----------------------------------------------------------------


def test_the_agent_answers_reads_as_the_handler_does(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "supervisord.log").write_text("one\ntwo\n")
    with running_agent(root):
        run = root / "run"
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        assert stat.S_IMODE(socket_path(NodeRoot(root)).stat().st_mode) == 0o600
        with connect(root) as peer:
            assert peer.recv(1) == GREETING
            replies = ask(peer, FACTS, STATUS, LOG)
        assert replies == [handle(root, FACTS), handle(root, STATUS), handle(root, LOG)]
        assert reply_body(replies[2])["reply"] == {"chunk": {"lines": ["one", "two"],
                                                             "offset": 8}}
    assert not socket_path(NodeRoot(root)).exists()  # removed by the agent that stops


def test_the_agent_refuses_what_changes_the_node(tmp_path: Path) -> None:
    """A deploy, a stop or `down` may stop supervisord's programs, the agent among them: the
    node's Python answers those, never the agent."""
    root = tmp_path / "node"
    with running_agent(root), connect(root) as peer:
        assert peer.recv(1) == GREETING
        down, facts = ask(peer, DOWN, FACTS)
    error = reply_body(down)
    assert error["ok"] is False
    assert "does not take a DownRequest" in str(error["error"])
    assert reply_body(facts)["ok"] is True  # and it serves on


def test_connections_are_served_at_once(tmp_path: Path) -> None:
    root = tmp_path / "node"
    answers: list[list[bytes]] = []

    def client() -> None:
        with connect(root) as peer:
            assert peer.recv(1) == GREETING
            answers.append(ask(peer, *[FACTS, STATUS] * 5))

    with running_agent(root):
        idle = connect(root)  # one connection open and silent holds no one up
        assert idle.recv(1) == GREETING
        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(30)
        idle.close()
    expected = [handle(root, FACTS), handle(root, STATUS)] * 5
    assert answers == [expected] * 8


def test_no_greeting_when_the_installed_code_changed_and_the_agent_exits(
        tmp_path: Path) -> None:
    root = tmp_path / "node"
    stamps = iter([1, 1, 2])  # at start, at the first connection, at the second
    with running_agent(root, lambda: next(stamps)) as server:
        with connect(root) as peer:
            assert peer.recv(1) == GREETING
            assert ask(peer, FACTS) == [handle(root, FACTS)]
        with connect(root) as peer:
            assert peer.recv(1) == b""  # closed, no greeting: ask the node's Python
        wait_for(lambda: server._stopping.is_set(), what="the agent stopping")


def test_a_stopping_agent_finishes_what_it_answers_and_greets_no_one(tmp_path: Path) -> None:
    root = tmp_path / "node"
    with running_agent(root) as server, connect(root) as peer:
        assert peer.recv(1) == GREETING
        server.stop()
        assert peer.recv(1) == b""  # idle: hung up on at once
    with pytest.raises(OSError):
        connect(root)  # the socket is gone with the agent


def test_the_code_stamp_sees_an_edit_and_a_reinstall(tmp_path: Path) -> None:
    package = tmp_path / "sfarm"
    (package / "runtime").mkdir(parents=True)
    module = package / "runtime" / "node.py"
    module.write_text("A = 1\n")
    (package / "__init__.py").write_text("")
    before = code_stamp(package)
    assert code_stamp(package) == before
    (package / "runtime" / "__pycache__").mkdir()
    (package / "runtime" / "__pycache__" / "node.cpython-311.pyc").write_bytes(b"x")
    assert code_stamp(package) == before  # caches are no code
    module.write_text("A = 2\n")
    assert code_stamp(package) != before
    after_edit = code_stamp(package)
    replacement = package / "runtime" / ".node.py.new"
    replacement.write_text("A = 2\n")
    os.replace(replacement, module)  # pip's way: a new file in its place
    assert code_stamp(package) != after_edit


def test_a_full_agent_greets_no_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sfarm.runtime.agent_server.MAX_CONNECTIONS", 1)
    root = tmp_path / "node"
    with running_agent(root), connect(root) as first:
        assert first.recv(1) == GREETING
        with connect(root) as second:
            assert second.recv(1) == b""
    assert MAX_CONNECTIONS > 1


# --- the relay, as a process on this machine ----------------------------------------------------


def relay(root: Path, stdin: bytes, command: str = "serve") -> subprocess.CompletedProcess[bytes]:
    """The relay as the controller runs it on a node: `serve`, frames in and out (a kept
    connection); `call`, one request in and its reply out (a one-shot command)."""
    return subprocess.run([sys.executable, "-I", "-S", "-c", RELAY_SOURCE, str(root),
                           command, "--root", str(root)], input=stdin, capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(PROJECT)},
                          check=False)


def frames(raw: bytes) -> list[bytes]:
    stream, found = io.BytesIO(raw), []
    while (frame := read_frame(stream)) is not None:
        found.append(frame)
    return found


def test_the_relay_reaches_the_agent_and_falls_back_when_there_is_none(tmp_path: Path) -> None:
    """The same replies whether the agent or the node's Python answers: no agent, a socket
    with no one behind it (an agent killed outright), the agent; `down` through the relay is
    the node's Python's (the controller never sends it there: sfarm.remote.agent)."""
    root = tmp_path / "node"
    root.mkdir()  # a deployed node's root (a missing one's status says so instead)
    requests = encode_frame(FACTS) + encode_frame(STATUS)
    expected = [handle(root, FACTS), handle(root, STATUS)]

    alone = relay(root, requests)
    assert alone.returncode == 0, alone.stderr
    assert frames(alone.stdout) == expected
    one = relay(root, FACTS, "call")
    assert (one.returncode, one.stdout) == (0, expected[0] + b"\n"), one.stderr

    (root / "run").mkdir(mode=0o700, parents=True)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(socket_path(NodeRoot(root))))  # bound, never listening: refused
    dead.close()
    refused = relay(root, requests)
    assert refused.returncode == 0, refused.stderr
    assert frames(refused.stdout) == expected
    socket_path(NodeRoot(root)).unlink()

    with running_agent(root):
        through = relay(root, requests + encode_frame(DOWN))
        one = relay(root, STATUS, "call")
    assert (one.returncode, one.stdout) == (0, expected[1] + b"\n"), one.stderr
    assert through.returncode == 0, through.stderr
    replies = frames(through.stdout)
    assert replies[:2] == expected
    assert "does not take a DownRequest" in replies[2].decode()


def test_the_relay_passes_long_roots(tmp_path: Path) -> None:
    """A unix socket's path is limited to ~100 bytes; a node root's is not."""
    root = tmp_path / ("a-long-directory-name-" * 6) / "node"
    assert len(str(socket_path(NodeRoot(root)))) > 108
    with running_agent(root):
        result = relay(root, encode_frame(FACTS))
    assert frames(result.stdout) == [handle(root, FACTS)], result.stderr


# --- on SSH hosts -------------------------------------------------------------------------------


def node_commands(server: SSHServer) -> list[str]:
    listing = subprocess.run(["ps", "-u", server.user, "-o", "args="], capture_output=True,
                             text=True, check=False).stdout
    return [line for line in listing.splitlines() if line]


def resident(server: SSHServer) -> list[str]:
    return [line for line in node_commands(server) if "node_stdio agent --root" in line]


@contextmanager
def checkout_python(shared: str) -> Iterator[Path]:
    """The user hosts' shared python with this checkout first on its path: the nodes run the
    controller's very sfarm (its python "already has it": no venv to build), a worktree's
    as well as the main checkout's."""
    directory = Path(tempfile.mkdtemp(prefix="sfra-", dir="/tmp"))
    try:
        directory.chmod(0o755)
        python = directory / "python"
        python.write_text(f'#!/bin/sh\nPYTHONPATH={PROJECT}; export PYTHONPATH\n'
                          f'exec {shared} "$@"\n')
        python.chmod(0o755)
        yield python
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def agent_pid(root: Path) -> int | None:
    """The pid of the node's resident agent, as its supervisord says (None: not running)."""
    info = Supervisor(NodeRoot(root)).processes().get(AGENT_PROGRAM, {})
    return int(info["pid"]) if info.get("statename") == "RUNNING" else None


def task_rows(status: NodeStatus) -> list[tuple[object, ...]]:
    """What a status says of each task, but its ages (which move between two requests)."""
    return [(task.name, task.kind, task.state, task.pid, task.last_error, task.waiting_for,
             [dataset.id for dataset in task.datasets]) for task in status.tasks]


@pytest.mark.slow
def test_ssh_nodes_answer_reads_through_their_resident_agent(
        user_hosts: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    from sfarm.inventory import load_inventory
    from sfarm.remote.controller import FarmController

    servers = user_hosts(2)
    assert servers[0].python is not None
    with checkout_python(servers[0].python) as python, \
            scale_farm(servers, python=str(python)) as farm:
        before = farm.status()  # nothing deployed: the node's Python answers, as always
        assert [node["reachable"] for node in before["nodes"]] == [True, True], before
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="every node mining")
        roots = [farm.root(name) for name in farm.nodes]
        for server, root in zip(servers, roots, strict=True):
            assert len(resident(server)) == 1, node_commands(server)
            sock = socket_path(NodeRoot(root))
            assert stat.S_ISSOCK(sock.stat().st_mode)
            assert stat.S_IMODE(sock.stat().st_mode) == 0o600
            assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700

        # Kept connections: the relay stays on its channel and the agent answers: no node
        # Python runs for a read.
        monkeypatch.setenv("HOME", str(farm.home))
        controller = FarmController(load_inventory(farm.inventory), "scale",
                                    keep_connections=True)
        try:
            for _ in range(3):
                status = controller.status()
                assert all(node.reachable and node.tasks[0].state == "running"
                           for node in status.nodes), status
            for server in servers:
                commands = node_commands(server)
                assert any(" -I -S -c " in line for line in commands), commands
                assert not any("node_stdio serve" in line for line in commands), commands
        finally:
            controller.close()

        # One-shot reads: the same answers from the agent as from the node's Python (the
        # agent stopped: the relay runs it), field for field.
        spec = farm_spec(farm, "node-1")
        one_shot = FarmController(load_inventory(farm.inventory), "scale")
        tasks = {"mine-1": "mine"}

        def read() -> tuple[object, ...]:
            agent = one_shot.agent(spec)
            try:
                return agent.facts(), task_rows(agent.status(tasks))
            finally:
                agent.close()

        through_agent = read()
        Supervisor(NodeRoot(roots[0])).stop(AGENT_PROGRAM)
        assert not socket_path(NodeRoot(roots[0])).exists()  # the agent took it away
        assert read() == through_agent
        Supervisor(NodeRoot(roots[0])).start(AGENT_PROGRAM)
        wait_for(lambda: socket_path(NodeRoot(roots[0])).exists(), what="the agent back")
        assert read() == through_agent

        # Killed outright, supervisord starts it again; meanwhile reads are answered anyway.
        killed = agent_pid(roots[0])
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        assert read() == through_agent
        wait_for(lambda: agent_pid(roots[0]) not in (None, killed), what="a new agent")
        assert read() == through_agent

        # It dies with its supervisord (killed outright too): nothing is left running.
        supervisord = int((roots[1] / "supervisor" / "supervisord.pid").read_text())
        os.kill(supervisord, signal.SIGKILL)
        wait_for(lambda: not resident(servers[1]), what="the agent gone with supervisord")
        rows = {node["name"]: node for node in farm.status()["nodes"]}
        assert rows["node-2"]["reachable"] and rows["node-2"]["tasks"], rows


def farm_spec(farm: ScaleFarm, name: str) -> NodeSpec:
    from sfarm.inventory import load_inventory

    return next(spec for spec in load_inventory(farm.inventory).nodes("scale")
                if spec.name == name)
