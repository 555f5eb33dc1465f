"""The node agent that stays up for the life of a connection (`sfarm node serve`,
sfarm.remote.node_session): framed requests and replies on one SSH channel.

Frames and the serving loop are checked in this process first; then on user hosts (each a unix
user with its own sshd): kept connections to several nodes keep one agent each, refreshes reuse
it, and no agent is left on a node once the connection closes, whether the controller closes it
or dies; a malformed frame or request gets an error reply and the agent serves on.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sfarm import __version__
from sfarm.runtime.envelope import encode_request
from sfarm.runtime.framing import (
    MAX_PAYLOAD,
    BrokenStream,
    FrameError,
    encode_frame,
    read_frame,
)
from sfarm.runtime.handler import serve
from sfarm.runtime.protocol import FactsRequest
from tests.fixtures.processes import start_python
from tests.fixtures.scale_farm import scale_farm
from tests.fixtures.sshd import SSHServer
from tests.fixtures.waiting import wait_for

FACTS = encode_request(FactsRequest())


# --- frames, in this process ------------------------------------------------------------------


def test_frames_round_trip_and_a_bad_header_is_skipped() -> None:
    stream = io.BytesIO(encode_frame(b"one") + b"hello there\n" + encode_frame(b"")
                        + encode_frame(b"two\nlines"))
    assert read_frame(stream) == b"one"
    with pytest.raises(FrameError, match="hello there"):
        read_frame(stream)
    assert read_frame(stream) == b""
    assert read_frame(stream) == b"two\nlines"
    assert read_frame(stream) is None  # the end, between frames


@pytest.mark.parametrize("raw", [b"12\nshort", b"12", b"%d\n" % (MAX_PAYLOAD + 1)])
def test_a_stream_that_breaks_inside_a_frame_is_broken(raw: bytes) -> None:
    with pytest.raises(BrokenStream):
        read_frame(io.BytesIO(raw))


def _replies(raw: bytes) -> list[dict[str, object]]:
    out = io.BytesIO()
    serve(Path("/nonexistent/root"), io.BytesIO(raw), out)
    out.seek(0)
    replies = []
    while (frame := read_frame(out)) is not None:
        replies.append(json.loads(frame))
    return replies


def test_serve_answers_each_frame_and_survives_malformed_ones() -> None:
    newer = json.dumps({"protocol": 99, "sfarm": "9.0.0", "request": {"op": "facts"}}).encode()
    replies = _replies(b"not a length\n" + encode_frame(b"{not json") + encode_frame(newer)
                       + encode_frame(FACTS) + b"40\ncut")
    assert [reply["ok"] for reply in replies] == [False, False, False, True, False]
    messages = [str(reply.get("error", {})) for reply in replies]
    assert "malformed frame" in messages[0] and "not a length" in messages[0]
    assert "not JSON" in messages[1]
    assert "sfarm 9.0.0 (node protocol 99)" in messages[2] and __version__ in messages[2]
    assert replies[3]["reply"]["sfarm"] == __version__  # type: ignore[index]
    assert "malformed frame" in messages[4]  # the stream broke: an error, then the end


# --- on user hosts ----------------------------------------------------------------------------


def agents(server: SSHServer) -> list[int]:
    """Pids of the node agents (`sfarm node serve`, or the relay to the resident agent that
    stands for it on a kept connection) that `server`'s user runs: pythons, not the shells
    that started them (the relay's command line is long: ps's -ww shows all of it)."""
    listing = subprocess.run(["ps", "-ww", "-u", server.user, "-o", "pid=,comm=,args="],
                             capture_output=True, text=True, check=False).stdout
    rows = [line.split(None, 2) for line in listing.splitlines()]
    return [int(row[0]) for row in rows
            if len(row) == 3 and row[1].startswith("python") and " serve --root " in row[2]]


def node_processes(server: SSHServer) -> list[str]:
    """Every process of `server`'s user but its sshd sessions."""
    listing = subprocess.run(["ps", "-u", server.user, "-o", "args="], capture_output=True,
                             text=True, check=False).stdout
    return [line for line in listing.splitlines() if line and not line.startswith("sshd")]


@pytest.mark.slow
def test_kept_connections_keep_one_agent_per_node(
        user_hosts: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    from sfarm.inventory import load_inventory
    from sfarm.remote.controller import FarmController

    servers = user_hosts(3)
    with scale_farm(servers) as farm:
        farm.sfarm("up")
        wait_for(farm.running_with_rows, what="every node mining")
        assert not any(agents(server) for server in servers)  # one-shot commands leave none

        monkeypatch.setenv("HOME", str(farm.home))
        controller = FarmController(load_inventory(farm.inventory), "scale",
                                    keep_connections=True)
        try:
            first = controller.status()
            assert first.healthy, first
            started = [agents(server) for server in servers]
            assert all(len(pids) == 1 for pids in started), started
            for _ in range(3):
                status = controller.status()
                assert [node.name for node in status.nodes] == farm.nodes
                assert all(node.reachable and node.tasks[0].state == "running"
                           for node in status.nodes), status
            assert [agents(server) for server in servers] == started  # the same agents
        finally:
            controller.close()
        wait_for(lambda: not any(agents(server) for server in servers),
                 what="every agent ended with its connection")

        # A log tail asks again and again: one agent for its life, gone with it.
        from sfarm.farm import Farm

        with Farm.open(farm.inventory, None).logs("node-2") as tail:
            assert any("mining" in line for chunk in tail.read() for line in chunk.lines)
            started = [agents(servers[1])]
            tail.read()
            assert [agents(servers[1])] == started and len(started[0]) == 1
        wait_for(lambda: not agents(servers[1]), what="the tail's agent ended")


@pytest.mark.slow
def test_an_agent_ends_when_its_controller_dies(
        user_hosts: Callable[[int], list[SSHServer]], monkeypatch: pytest.MonkeyPatch) -> None:
    server, = user_hosts(1)
    with scale_farm([server]) as farm:
        script = ("import os, sys, time\n"
                  "from pathlib import Path\n"
                  "from sfarm.inventory import load_inventory\n"
                  "from sfarm.remote.controller import FarmController\n"
                  "c = FarmController(load_inventory(Path(sys.argv[1])), 'scale', "
                  "keep_connections=True)\n"
                  "c.status()\n"
                  "print('ready', flush=True)\n"
                  "time.sleep(600)\n")
        monkeypatch.setenv("HOME", str(farm.home))  # the controller's known_hosts
        controller = start_python(script, str(farm.inventory))
        try:
            wait_for(lambda: len(agents(server)) == 1, what="the agent on the node")
            controller.send_signal(signal.SIGKILL)  # no close, no goodbye: the TCP link drops
            controller.wait(30)
            wait_for(lambda: not agents(server), what="the agent gone with its connection")
            wait_for(lambda: not node_processes(server), what="no process of the node's user")
        finally:
            if controller.poll() is None:
                controller.kill()


@pytest.mark.slow
def test_a_malformed_request_gets_an_error_reply_and_the_agent_serves_on(
        user_hosts: Callable[[int], list[SSHServer]]) -> None:
    from sfarm.remote.ssh import SSHConnection
    from sfarm.remote.ssh_transport import SSHTransport

    server, = user_hosts(1)
    spec = server.node("agent-1", base_dir=str(server.node_root))
    with SSHConnection(spec, known_hosts=server.known_hosts) as connection:
        transport = SSHTransport(spec, connection, serve=True)
        channel = connection.spawn(transport._node_command("serve"))
        replies = channel.makefile("rb")
        older = json.dumps({"protocol": 1, "sfarm": "0.0.1", "request": {"op": "facts"}})
        channel.sendall(b"GET / HTTP/1.1\n" + encode_frame(b"[1, 2") + encode_frame(b"{}")
                        + encode_frame(older.encode()) + encode_frame(FACTS))
        answers = [json.loads(read_frame(replies) or b"null") for _ in range(5)]
        assert [answer["ok"] for answer in answers] == [False, False, False, False, True]
        errors = [answer.get("error", {}).get("message", "") for answer in answers]
        assert "malformed frame" in errors[0] and "GET / HTTP/1.1" in errors[0]
        assert "not JSON" in errors[1]
        assert "not a node protocol envelope" in errors[2]
        assert "sfarm 0.0.1" in errors[3] and "hint" in answers[3]["error"]
        assert answers[4]["reply"]["user"] == server.user  # the same agent, still serving
        assert len(agents(server)) == 1
        channel.shutdown_write()  # the end of its stdin: the agent exits, and cleanly
        assert channel.recv_exit_status() == 0
        channel.close()
    wait_for(lambda: not agents(server), what="the agent gone")


# --- a node whose agent misbehaves (a stand-in python on the session's sshd) ------------------

AGENTS = {
    "garbage": ("echo 'Welcome to the node!'; exec sleep 41", "its reply is not a frame"),
    "crash": ("echo 'Segmentation fault' >&2; exit 139",
              "sfarm node serve failed: Segmentation fault"),
    "hang": ("exec sleep 41", "gave no reply within 2 s and was terminated"),
}


@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_a_misbehaving_agent_is_an_error_and_leaves_nothing(
        kind: str, sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sfarm.errors import SfarmError
    from sfarm.remote.agent import NodeAgent
    from sfarm.remote.ssh import SSHConnection
    from sfarm.remote.ssh_transport import SSHTransport

    script, words = AGENTS[kind]
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    monkeypatch.setattr("sfarm.remote.ssh_transport.COMMAND_TIMEOUT_S", 2.0)
    spec = sshd.node("odd-1", base_dir=str(tmp_path / "nodes"), python=str(python))
    with SSHConnection(spec, known_hosts=sshd.known_hosts) as connection:
        agent = NodeAgent(spec, SSHTransport(spec, connection, serve=True))
        with pytest.raises(SfarmError) as raised:
            agent.facts()
        assert raised.value.message.startswith(f"node odd-1 ({sshd.user}@127.0.0.1")
        assert words in raised.value.message, raised.value.message
        with pytest.raises(SfarmError):  # asked again: a new agent, the same error
            agent.facts()
    wait_for(lambda: "sleep 41" not in _commands(), what="no stand-in agent left")


def _commands() -> str:
    return subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True,
                          check=False).stdout


@pytest.mark.slow
@pytest.mark.parametrize("serve", [False, True])
def test_a_root_under_home_is_resolved_by_the_node(
        serve: bool, user_hosts: Callable[[int], list[SSHServer]]) -> None:
    """The default base_dir is ~/sfarm: the node's process expands `~` (a request costs no
    round trip to learn the home first) to the root the controller computes."""
    from sfarm.remote.agent import NodeAgent
    from sfarm.remote.ssh import SSHConnection
    from sfarm.remote.ssh_transport import SSHTransport

    server, = user_hosts(1)
    spec = server.node("home-1", base_dir="~/nodes/far")
    with SSHConnection(spec, known_hosts=server.known_hosts) as connection:
        agent = NodeAgent(spec, SSHTransport(spec, connection, serve=serve))
        facts = agent.facts()
        assert connection._home is None  # nobody asked for it
        assert facts.root == str(server.home / "nodes" / "far" / "test" / "home-1")
        assert agent.transport.root == facts.root  # and the controller agrees
