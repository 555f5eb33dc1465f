"""SSHConnection against real sshd servers on 127.0.0.1: strict host keys, one message per
failure cause (through paramiko and through the ssh that rsync runs), jump hosts, ~/.ssh/config;
and the pure mapping of SSH failures, on constructed exceptions and recorded OpenSSH output."""

from __future__ import annotations

import base64
import errno
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paramiko
import pytest
from paramiko.ssh_exception import (
    AuthenticationException,
    BadHostKeyException,
    NoValidConnectionsError,
    SSHException,
)

from sfarm.errors import UsageError
from sfarm.remote.connection import Failure, TransportError
from sfarm.remote.ssh import SSHConnection
from sfarm.remote.ssh_errors import SSHTarget, UnknownHostKey, from_exception, from_ssh_stderr
from tests.fixtures.network import free_port
from tests.fixtures.sshd import SSHDPool, SSHServer, generate_key

TARGET = SSHTarget(label="node lab", host="10.0.0.5", port=2222, user="sfarm",
                   identity_file="/keys/farm", known_hosts=None, connect_timeout=3)

# --- the mapping, without a server -----------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[paramiko.PKey, paramiko.PKey]:
    """Two different ed25519 keys, as a server might offer and a known_hosts might expect."""
    directory = tmp_path_factory.mktemp("keys")
    for name in ("a", "b"):
        generate_key(directory / name, "mapping-test")
    return (paramiko.Ed25519Key.from_private_key_file(str(directory / "a")),
            paramiko.Ed25519Key.from_private_key_file(str(directory / "b")))


def test_target_names_known_hosts_entries_as_openssh_does() -> None:
    assert TARGET.key_name == "[10.0.0.5]:2222"
    assert TARGET.keyscan == "ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts"
    default_port = SSHTarget("node a", "h", 22, None, None, "/kh", 10)
    assert default_port.key_name == "h"
    assert default_port.keyscan == "ssh-keyscan h >> /kh"
    assert default_port.where == "node a (h:22)"


@pytest.mark.parametrize(("raised", "cause", "words"), [
    (socket.gaierror(-2, "Name or service not known"), Failure.UNRESOLVED, "'10.0.0.5'"),
    (TimeoutError("timed out"), Failure.TIMEOUT, "after 3 s"),
    (NoValidConnectionsError({("10.0.0.5", 2222): OSError(errno.ECONNREFUSED, "refused")}),
     Failure.REFUSED, "connection refused"),
    (NoValidConnectionsError({("10.0.0.5", 2222): OSError(errno.EHOSTUNREACH, "no route")}),
     Failure.TIMEOUT, "unreachable"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), Failure.REFUSED,
     "port 2222"),
    (SSHException("Error reading SSH protocol banner"), Failure.TIMEOUT, "no SSH greeting"),
    (SSHException("No existing session"), Failure.TIMEOUT, "handshake did not finish"),
    (AuthenticationException("Authentication failed."), Failure.AUTH, "user 'sfarm'"),
    (SSHException("No authentication methods available"), Failure.AUTH, "no key"),
    (SSHException("Incompatible ssh peer"), Failure.SSH, "Incompatible ssh peer"),
    (EOFError(), Failure.SSH, "closed the connection"),
])
def test_exceptions_map_to_one_message_per_cause(raised: BaseException, cause: Failure,
                                                 words: str) -> None:
    error = from_exception(TARGET, raised, tried="key /keys/farm")
    assert error.cause is cause
    assert words in error.message + (error.hint or "")
    assert error.message.startswith("node lab (sfarm@10.0.0.5:2222): ")


def test_host_key_exceptions_carry_fingerprints_and_the_fix(
        keys: tuple[paramiko.PKey, paramiko.PKey]) -> None:
    key, other = keys
    unknown = from_exception(TARGET, UnknownHostKey("[10.0.0.5]:2222", key))
    assert unknown.cause is Failure.HOST_KEY_UNKNOWN
    assert key.fingerprint in unknown.message and "ED25519" in unknown.message
    assert "ssh-keyscan -p 2222 10.0.0.5 >> ~/.ssh/known_hosts" in (unknown.hint or "")

    changed = from_exception(TARGET, BadHostKeyException("10.0.0.5", key, other))
    assert changed.cause is Failure.HOST_KEY_CHANGED
    assert "man-in-the-middle" in changed.message
    assert f"it offered ED25519 key {key.fingerprint}, known_hosts has {other.fingerprint}" \
        in changed.message
    assert "ssh-keygen -R '[10.0.0.5]:2222'" in (changed.hint or "")


def test_auth_message_says_which_keys_and_user_were_tried() -> None:
    error = from_exception(TARGET, AuthenticationException("x"), tried="key /keys/farm")
    assert "tried key /keys/farm" in error.message and "'sfarm'" in error.message
    assert "ssh-copy-id -i /keys/farm.pub -p 2222 sfarm@10.0.0.5" in (error.hint or "")


# OpenSSH 9.2 client output, recorded against the test sshd (lines end in \r\n as ssh writes).
CHANGED_STDERR = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n"
    "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
    "The fingerprint for the ED25519 key sent by the remote host is\n"
    "SHA256:d/YQvzA9l5o2TsbLhsNmixvf/rUzkiHpprJkz4h2TwI.\r\n"
    "Offending ED25519 key in /tmp/wrong_kh:1\r\n"
    '  ssh-keygen -f "/tmp/wrong_kh" -R "[10.0.0.5]:2222"\r\n'
    "Host key for [10.0.0.5]:2222 has changed and you have requested strict checking.\r\n"
    "Host key verification failed.\r\n")


@pytest.mark.parametrize(("stderr", "cause", "words", "where"), [
    (CHANGED_STDERR, Failure.HOST_KEY_CHANGED,
     "ED25519 key SHA256:d/YQvzA9l5o2TsbLhsNmixvf/rUzkiHpprJkz4h2TwI", "10.0.0.5:2222"),
    (("No ED25519 host key is known for [10.0.0.9]:2200 and you have requested strict "
      "checking.\r\nHost key verification failed.\r\n"), Failure.HOST_KEY_UNKNOWN,
     "unknown host key for [10.0.0.9]:2200", "10.0.0.9:2200"),
    ("sfarm@10.0.0.5: Permission denied (publickey).\r\n", Failure.AUTH, "tried key",
     "10.0.0.5:2222"),
    ("ssh: connect to host 10.0.0.7 port 22: Connection refused\r\n", Failure.REFUSED,
     "connection refused", "10.0.0.7:22"),
    ("ssh: Could not resolve hostname nohost: Name or service not known\r\n",
     Failure.UNRESOLVED, "'nohost'", "nohost:2222"),
    ("Connection timed out during banner exchange\r\n", Failure.TIMEOUT, "after 3 s",
     "10.0.0.5:2222"),
])
def test_openssh_stderr_maps_to_the_same_messages(stderr: str, cause: Failure, words: str,
                                                  where: str) -> None:
    error = from_ssh_stderr(TARGET, stderr, tried="key /keys/farm")
    assert error is not None and error.cause is cause
    assert words in error.message
    assert f"@{where})" in error.message or f"({where})" in error.message


def test_openssh_stderr_of_other_failures_is_not_an_ssh_error() -> None:
    assert from_ssh_stderr(TARGET, "rsync: change_dir failed: No such file (2)\r\n") is None


def test_changed_key_hint_names_the_offending_file() -> None:
    error = from_ssh_stderr(TARGET, CHANGED_STDERR)
    assert error is not None
    assert "ssh-keygen -R '[10.0.0.5]:2222' -f /tmp/wrong_kh" in (error.hint or "")


# --- against real servers --------------------------------------------------------------------


def _connection(server: SSHServer, known_hosts: Path | None = None, **node: Any
                ) -> SSHConnection:
    return SSHConnection(server.node(**node), known_hosts=known_hosts or server.known_hosts,
                         connect_timeout=5)


def _both_paths(connection: SSHConnection, tmp_path: Path) -> list[TransportError]:
    """The failure seen by paramiko (run) and by the ssh client (rsync), in that order."""
    errors = []
    source = tmp_path / "payload"
    source.mkdir(exist_ok=True)
    for attempt in (lambda: connection.run(["true"]),
                    lambda: connection.rsync(f"{source}/", "/tmp/sfarm-never-written",
                                             pull=False)):
        with pytest.raises(TransportError) as failure:
            attempt()
        errors.append(failure.value)
    connection.close()
    return errors


def test_ssh_command_for_rsync_has_the_same_settings(sshd: SSHServer) -> None:
    connection = _connection(sshd, proxy_jump="root@127.0.0.1:2200")
    words = connection.ssh_words("/tmp/cfg")
    assert words[0] == "ssh"
    for option in ("BatchMode=yes", "StrictHostKeyChecking=yes",
                   f'UserKnownHostsFile="{sshd.known_hosts}"', "GlobalKnownHostsFile=/dev/null"):
        assert words[words.index(option) - 1] == "-o"
    assert words[words.index("-p") + 1] == str(sshd.port)
    assert words[words.index("-i") + 1] == str(sshd.client_key.private)
    assert words[words.index("-J") + 1] == "root@127.0.0.1:2200"
    assert words[words.index("-F") + 1] == "/tmp/cfg"
    plain = SSHConnection(sshd.node(port=22, identity_file=None, user=None)).ssh_words()
    assert "-p" not in plain and "-i" not in plain and "-J" not in plain
    # Without an explicit file, OpenSSH is told the files paramiko reads ($HOME's, not the
    # passwd entry's home that OpenSSH would use), so both transports trust the same keys.
    known = next(word for word in plain if word.startswith("UserKnownHostsFile="))
    assert f'"{os.path.expanduser("~/.ssh/known_hosts")}"' in known


def test_unknown_host_key_is_refused_and_never_recorded(sshd: SSHServer, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    fingerprint = paramiko.PKey.from_type_string(
        "ssh-ed25519", _b64(sshd.host_public_key)).fingerprint
    by_paramiko, by_ssh = _both_paths(_connection(sshd, known_hosts), tmp_path)
    keyscan = f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known_hosts}"
    for error in (by_paramiko, by_ssh):
        assert error.cause is Failure.HOST_KEY_UNKNOWN
        assert f"unknown host key for [127.0.0.1]:{sshd.port}" in error.message
        assert keyscan in (error.hint or "")
    assert fingerprint in by_paramiko.message
    assert known_hosts.read_text() == ""


def _b64(public_line: str) -> bytes:
    return base64.b64decode(public_line.split()[1])


def test_changed_host_key_is_refused_as_possible_attack(sshd: SSHServer,
                                                        sshd_pool: SSHDPool,
                                                        tmp_path: Path) -> None:
    impostor = generate_key(tmp_path / "impostor", "")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(impostor.split()[:2])}\n")
    for error in _both_paths(_connection(sshd, known_hosts), tmp_path):
        assert error.cause is Failure.HOST_KEY_CHANGED
        assert "HOST KEY CHANGED" in error.message and "man-in-the-middle" in error.message
        assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}' -f {known_hosts}" in (error.hint or "")


def test_wrong_identity_is_an_authentication_error(sshd: SSHServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    generate_key(stranger, "not authorized")
    for error in _both_paths(_connection(sshd, identity_file=str(stranger)), tmp_path):
        assert error.cause is Failure.AUTH
        assert f"authentication failed for user '{sshd.user}'" in error.message
        assert f"tried key {stranger}" in error.message
        assert f"ssh-copy-id -i {stranger}.pub" in (error.hint or "")


def test_missing_identity_file_is_bad_input(sshd: SSHServer, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"identity_file .* does not exist"):
        _connection(sshd, identity_file=str(tmp_path / "nope"))


def test_closed_port_is_connection_refused(sshd: SSHServer, tmp_path: Path) -> None:
    port = free_port()
    for error in _both_paths(_connection(sshd, port=port), tmp_path):
        assert error.cause is Failure.REFUSED
        assert f"127.0.0.1:{port}): connection refused" in error.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no SSH banner)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_silent_server_is_a_timeout(sshd: SSHServer, silent_port: int, tmp_path: Path) -> None:
    connection = SSHConnection(sshd.node(port=silent_port), known_hosts=sshd.known_hosts,
                               connect_timeout=1)
    for error in _both_paths(connection, tmp_path):
        assert error.cause is Failure.TIMEOUT
        assert "timed out after 1 s" in error.message


def test_rsync_missing_on_the_node(sshd: SSHServer, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with (SSHConnection(sshd.node(), known_hosts=sshd.known_hosts,
                        remote_rsync="sfarm-no-such-rsync") as connection,
          pytest.raises(TransportError) as failure):
        connection.rsync(f"{tmp_path / 'src'}/", str(tmp_path / "dst"), pull=False)
    assert failure.value.cause is Failure.RSYNC_MISSING
    assert "rsync is not installed" in failure.value.message
    assert "apt-get install rsync" in (failure.value.hint or "")


def test_commands_run_in_parallel_on_one_connection(sshd: SSHServer) -> None:
    with _connection(sshd) as connection:
        with ThreadPoolExecutor(8) as pool:
            outputs = list(pool.map(lambda n: connection.run(["sh", "-c", f"sleep 0.3; echo {n}"])
                                    .stdout_text, range(8)))
        connection.close()
        assert connection.run(["echo", "again"]).stdout == b"again\n"  # reconnects
    assert outputs == [f"{n}\n" for n in range(8)]


def test_through_a_jump_host(sshd_factory: Callable[[int], list[SSHServer]],
                             sshd_pool: SSHDPool, tmp_path: Path) -> None:
    node_server, jump = sshd_factory(2)
    both = sshd_pool.known_hosts_for([node_server, jump])
    hop = f"{jump.user}@127.0.0.1:{jump.port}"
    with _connection(node_server, both, proxy_jump=hop) as connection:
        assert connection.run(["sh", "-c", "echo $SSH_CONNECTION"]).stdout_text.split()[-1] \
            == str(node_server.port)
        connection.put(b"via jump", str(tmp_path / "f"), mode=0o600)
        assert connection.get(str(tmp_path / "f")) == b"via jump"
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "x").write_text("x")
        pushed = connection.rsync(f"{tmp_path / 'src'}/", str(tmp_path / "dst"), pull=False)
        assert pushed.paths("transfer") == ["x"]
    # The jump host is checked as strictly as the node, and named when it fails.
    errors = _both_paths(_connection(node_server, node_server.known_hosts, proxy_jump=hop),
                         tmp_path)
    for error in errors:
        assert error.cause is Failure.HOST_KEY_UNKNOWN
        assert f"[127.0.0.1]:{jump.port}" in error.message
    assert errors[0].message.startswith("jump host 127.0.0.1 of node node-1")


def test_ssh_config_and_user_known_hosts_are_honoured(
        sshd_factory: Callable[[int], list[SSHServer]], sshd_pool: SSHDPool,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node_server, jump = sshd_factory(2)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host farm-node\n  HostName 127.0.0.1\n  Port {node_server.port}\n"
        f"  User {node_server.user}\n  IdentityFile {node_server.client_key.private}\n"
        f"Host farm-behind\n  HostName 127.0.0.1\n  Port {node_server.port}\n"
        f"  ProxyJump {jump.user}@127.0.0.1:{jump.port}\n"
        f"  IdentityFile {node_server.client_key.private}\n"
        f"Host 127.0.0.1\n  IdentityFile {jump.client_key.private}\n")  # the jump host's key
    monkeypatch.setenv("HOME", str(home))
    bare: dict[str, Any] = {"port": 22, "user": None, "identity_file": None}

    # No known_hosts given: ~/.ssh/known_hosts is read, and it does not know the server yet.
    error = _both_paths(SSHConnection(node_server.node(host="farm-node", **bare)), tmp_path)[0]
    assert error.cause is Failure.HOST_KEY_UNKNOWN
    assert "~/.ssh/known_hosts" in (error.hint or "")

    (home / ".ssh" / "known_hosts").write_text(
        sshd_pool.known_hosts_for([node_server, jump]).read_text())
    for alias in ("farm-node", "farm-behind"):
        with SSHConnection(node_server.node(host=alias, **bare)) as connection:
            assert connection.run(["echo", alias]).stdout_text == f"{alias}\n"
            assert connection.target.port == node_server.port


def test_output_held_open_after_exit_does_not_block(sshd: SSHServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that leaves a background child holding stdout still returns."""
    monkeypatch.setattr("sfarm.remote.ssh_channel.DRAIN_AFTER_EXIT", 0.5)
    with _connection(sshd) as connection:
        result = connection.run(["sh", "-c", "sleep 5 & echo started"], timeout=20)
    assert result.stdout_text.startswith("started")


def test_sshd_fixture_cleans_up(sshd_pool: SSHDPool,
                                sshd_factory: Callable[[int], list[SSHServer]]) -> None:
    (server,) = sshd_factory(1)
    process = sshd_pool.processes[-1]
    assert process.poll() is None
    SSHDPool._stop(process)
    assert process.poll() is not None
    assert subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{server.port}", "-f",
                           str(server.known_hosts)],
                          capture_output=True, check=False).returncode == 0


def test_failures_print_nothing_but_the_message(silent_port: int, tmp_path: Path) -> None:
    """paramiko's thread logs a traceback; without logging set up it must not reach stderr."""
    script = f"""
from sfarm.inventory import NodeSpec
from sfarm.remote.connection import TransportError
from sfarm.remote.ssh import SSHConnection
node = NodeSpec(network="n", name="quiet", host="127.0.0.1", tasks=(), user="u",
                port={silent_port}, base_dir="/tmp", python="python3", transport="rsync",
                identity_file=None, proxy_jump=None)
try:
    SSHConnection(node, known_hosts={str(tmp_path / "kh")!r}, connect_timeout=1).open()
except TransportError as error:
    print(error.cause)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "timeout"
    assert done.stderr == ""
