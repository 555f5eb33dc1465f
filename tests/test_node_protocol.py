"""The node protocol end to end: the node's handler answers every failure with an error reply
and never raises; the agent reads a node's replies, and one that is malformed, refused, hung or
failing becomes that node's result while the other nodes' results stay intact, with no
traceback. Over SSH with real sshd servers, where a node's `python` is a script that answers
wrongly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sfarm import __version__, data
from sfarm.inventory import NodeSpec, load_inventory
from sfarm.remote.agent import InProcessTransport, NodeAgent
from sfarm.remote.connection import Connection, LocalConnection
from sfarm.remote.controller import FarmController
from sfarm.runtime.envelope import PROTOCOL_VERSION, NodeError, ProtocolError, encode_request
from sfarm.runtime.handler import handle
from sfarm.runtime.protocol import ApplyRequest, Deployment, Program, StatusRequest, StepResult
from tests.fixtures.cli import run
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.sshd import SSHServer

CANDLES = "candles/sim/BTC-USDT/1m"


def _reply(raw: bytes) -> dict[str, object]:
    document: dict[str, object] = json.loads(raw)
    return document


def _spec(name: str = "lab") -> NodeSpec:
    return NodeSpec(network="test", name=name, host="local", tasks=("mine",), user=None,
                    port=22, base_dir="/unused", python="python3", transport="rsync",
                    identity_file=None, proxy_jump=None)


# --- the node's side: handle() never raises ---------------------------------------------------


def test_a_failing_operation_becomes_an_error_reply(tmp_path: Path) -> None:
    """supervisord's config holds one line per command: the node refuses a command with a line
    break, and says so in its reply."""
    deployment = Deployment("test", "lab", (), (Program("mine", ("echo", "two\nlines")),))
    reply = _reply(handle(tmp_path, encode_request(ApplyRequest(deployment=deployment))))
    assert reply["ok"] is False and reply["protocol"] == PROTOCOL_VERSION
    error = reply["error"]
    assert isinstance(error, dict)
    assert "ValueError" in error["message"] and "one line" in error["message"]


def test_an_unexpected_exception_on_the_node_is_an_error_reply(tmp_path: Path) -> None:
    # Nothing reads a supervisord config that is a directory: an unexpected error, answered.
    (tmp_path / "supervisor" / "supervisord.conf").mkdir(parents=True)
    reply = _reply(handle(tmp_path, encode_request(StatusRequest(tasks={"mine": "mine"}))))
    assert reply["ok"] is False
    assert "unexpected IsADirectoryError on the node" in str(reply["error"])


@pytest.mark.parametrize("raw", [b"", b"\x00\xff", b"[]", b'{"protocol": 1}',
                                 b'{"protocol": 1, "sfarm": "0.1.0", "request": {"op": "x"}}'])
def test_garbage_in_is_an_error_reply_out(tmp_path: Path, raw: bytes) -> None:
    reply = _reply(handle(tmp_path, raw))
    assert reply["ok"] is False and reply["sfarm"] == __version__


def test_sfarm_node_call_writes_one_reply_and_exits_0(tmp_path: Path) -> None:
    def call(stdin: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "sfarm", "node", "call", "--root",
                               str(tmp_path)], input=stdin, capture_output=True, timeout=60,
                              check=False)

    facts = call(json.dumps({"protocol": PROTOCOL_VERSION, "sfarm": __version__,
                             "request": {"op": "facts"}}).encode())
    assert facts.returncode == 0 and b"Traceback" not in facts.stderr
    reply = _reply(facts.stdout)
    assert reply["ok"] is True and reply["reply"] == {
        "sfarm": __version__, "protocol": PROTOCOL_VERSION, "python": sys.executable,
        "python_version": ".".join(map(str, sys.version_info[:3])), "root": str(tmp_path),
        "user": reply["reply"]["user"],  # type: ignore[index]
        "farm_key": None, "sshfs_key": None,  # the root holds no key of the network
        "sftp_server": reply["reply"]["sftp_server"]}  # type: ignore[index]
    refused = call(json.dumps({"protocol": PROTOCOL_VERSION, "sfarm": "0.0.1",
                               "request": {"op": "facts"}}).encode())
    assert refused.returncode == 0
    assert "the controller runs sfarm 0.0.1" in str(_reply(refused.stdout)["error"])


# --- the controller's side: the agent over the in-process transport ---------------------------


def test_a_local_agent_speaks_the_protocol(tmp_path: Path) -> None:
    data.append(tmp_path, CANDLES, make_candles(T0, 90))
    producer = tmp_path / "elsewhere"  # a mirror is a producer's dataset, copied
    data.append(producer, "candles/sim/ETH-USDT/1m", make_candles(T0, 30))
    shutil.copytree(data.dataset_dir(producer, "candles/sim/ETH-USDT/1m"),
                    data.dataset_dir(tmp_path, "candles/sim/ETH-USDT/1m", mirror_of="miner-2"))
    agent = NodeAgent(_spec(), InProcessTransport(_spec(), tmp_path))
    facts = agent.facts()
    assert (facts.sfarm, facts.protocol, facts.root) == (__version__, PROTOCOL_VERSION,
                                                          str(tmp_path))
    own = agent.datasets()
    assert [(d.id, d.node, d.rows) for d in own] == [(CANDLES, None, 90)]
    manifest = data.load_manifest(tmp_path, CANDLES)
    assert manifest is not None
    assert (own[0].first_ts, own[0].last_ts, own[0].generation) == (
        manifest.first_ts, manifest.last_ts, manifest.generation)
    every = agent.datasets(mirrors=True)
    assert [(d.id, d.node) for d in every] == [(CANDLES, None),
                                                ("candles/sim/ETH-USDT/1m", "miner-2")]
    assert agent.datasets(["candles/sim/ETH-USDT/1m"], mirrors=True)[0].rows == 30
    assert agent.datasets(["candles/sim/XRP-USDT/1m"]) == []
    assert agent.read_log("mine", None, 10).lines == []  # no log yet
    # Arming is a running worker's (live_guard): with no supervisord, the node says so.
    assert agent.set_live(["trader"], True, "sfarm start --live") == [StepResult(
        "arm trader", "failed",
        "its worker is not running: start it first (`sfarm start --task trader --live` does "
        "both)")]
    assert not (tmp_path / "run" / "trader.live").exists()


class FixedReply:
    """A transport whose node always answers `reply` (what a broken node might send)."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.where = "node odd (this machine)"
        self.root = "/nowhere"
        self.connection: Connection = LocalConnection()

    def install(self) -> tuple[list[StepResult], str | None]:
        return [], None

    def call(self, request: bytes) -> bytes:
        return self.reply

    def query(self, request: bytes) -> bytes:
        return self.reply

    def close(self) -> None:
        pass


def test_a_bad_reply_raises_one_error_naming_the_node() -> None:
    for raw, error in [(b"Last login: yesterday\n", ProtocolError),
                       (b'{"protocol": 1, "sfarm": "0.1.0", "ok": true, "reply": {"x": 1}}',
                        ProtocolError),
                       ((b'{"protocol": 1, "sfarm": "0.1.0", "ok": false, '
                        b'"error": {"message": "disk full"}}'), NodeError)]:
        agent = NodeAgent(_spec("odd"), FixedReply(raw))
        with pytest.raises(error) as failed:
            agent.status({"mine": "mine"})
        if error is ProtocolError:
            assert failed.value.message.startswith("node odd (this machine): ")
        else:
            assert failed.value.message == "disk full"


def _two_local_nodes(tmp_path: Path, broken_base: str) -> Path:
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(f"""
version = 1
[farm]
name = "pair"
[exchanges.sim]
ccxt = "binance"
[tasks.mine-a]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
since = "1h"
[tasks.mine-b]
kind = "mine"
exchange = "sim"
markets = ["ETH/USDT"]
timeframes = ["1m"]
since = "1h"
[networks.pair.nodes.good]
host = "local"
base_dir = "{tmp_path / 'nodes'}"
tasks = ["mine-a"]
[networks.pair.nodes.bad]
host = "local"
base_dir = "{broken_base}"
tasks = ["mine-b"]
""")
    (tmp_path / "nodes" / "pair" / "good").mkdir(parents=True)  # deployed: a root to report on
    return inventory


def test_one_node_failing_leaves_the_others_results_intact(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the node's base_dir should be")
    inventory = _two_local_nodes(tmp_path, str(blocker))
    code, out, err = run(capsys, "status", "--json", "-i", str(inventory))
    assert code == 1 and "Traceback" not in err
    good, bad = json.loads(out)["nodes"]
    assert good["reachable"] and good["tasks"][0]["name"] == "mine-a"
    assert [task["state"] for task in bad["tasks"]] == ["not deployed"]
    assert f"no node root at {blocker}/pair/bad" in bad["tasks"][0]["last_error"]

    # Whatever a node's work raises, on the controller's side too, is that node's result.
    controller = FarmController(load_inventory(inventory), "pair")

    def work(spec: NodeSpec, agent: NodeAgent) -> str:
        if spec.name == "bad":
            raise KeyError("surprise")
        return agent.facts().root

    results = controller.each(work, lambda spec, error: f"{spec.name} failed: {error}")
    assert results == [str(tmp_path / "nodes" / "pair" / "good"),
                       "bad failed: unexpected KeyError: 'surprise'"]


# --- over SSH: a node whose python answers wrongly --------------------------------------------

SCRIPTS = {
    "garbage": ("cat >/dev/null; echo 'Welcome to the node!'", "its reply is not JSON"),
    "newer": (("cat >/dev/null; echo '{\"protocol\": 99, \"sfarm\": \"9.0.0\", \"ok\": true, "
              "\"reply\": {\"tasks\": []}}'"), "the node runs sfarm 9.0.0 (node protocol 99)"),
    "older": ("cat >/dev/null; echo \"Error: No such command 'call'.\" >&2; exit 2",
              "runs an older sfarm, one without `sfarm node call`"),
    "crash": ("cat >/dev/null; echo 'Segmentation fault' >&2; exit 139",
              "sfarm node call failed: Segmentation fault"),
    "hang": ("sleep 30", "timed out after 2 s"),
}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_a_bad_ssh_node_is_its_own_error(kind: str, sshd: SSHServer, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    script, words = SCRIPTS[kind]
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\n{script}\n")
    python.chmod(0o755)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr("sfarm.remote.ssh_transport.COMMAND_TIMEOUT_S", 2.0)
    inventory = _two_local_nodes(tmp_path, str(tmp_path / "nodes"))
    inventory.write_text(inventory.read_text().replace(
        'host = "local"\nbase_dir = "' + str(tmp_path / "nodes") + '"\ntasks = ["mine-b"]',
        f'host = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
        f'identity_file = "{sshd.client_key.private}"\nbase_dir = "{tmp_path / "far"}"\n'
        f'python = "{python}"\ntasks = ["mine-b"]'))
    code, out, err = run(capsys, "status", "--json", "-i", str(inventory))
    assert code == 1 and "Traceback" not in err
    good, bad = json.loads(out)["nodes"]
    assert good["reachable"] and good["error"] is None and good["tasks"][0]["name"] == "mine-a"
    assert not bad["reachable"]
    assert bad["error"].startswith(f"node bad ({sshd.user}@127.0.0.1:{sshd.port})")
    assert words in bad["error"], bad["error"]
    if kind in ("newer", "older"):
        assert "hint: run `sfarm deploy`" in bad["error"]

    code, out, err = run(capsys, "stop", "--json", "-i", str(inventory))
    assert code == 1 and "Traceback" not in err
    document = json.loads(out)
    assert document["ok"] is False
    good, bad = document["nodes"]
    assert good["ok"] and good["steps"] == [
        {"step": "stop mine-a", "status": "ok", "detail": "not running"}]
    assert not bad["ok"] and bad["steps"] == [] and words in bad["error"]
