"""The farm key on a real sshd, authorized with its forced-command line (`authorized_line`):
it pulls a producer's dataset with sfarm's own rsync options and follows its change stream,
and it can do nothing else: no shell, no other command, no write, no read outside `data/`, no
port forwarding. A stalled pull never holds the producer's lock."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm import data
from sfarm.data.fsio import WriterLock
from sfarm.data.layout import MANIFEST_NAME
from sfarm.data.mirror import install_staged, pull_lock, staging_dir
from sfarm.resolver.gate import SNAPSHOTS_DIR
from sfarm.resolver.link import PeerLink
from sfarm.resolver.link import pull as resolver_pull
from sfarm.rsync import parse_itemized
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.farm_key import (
    FarmKey,
    Lines,
    authorize_farm_key,
    farm_pull_options,
    farm_rsync,
    farm_ssh,
    farm_ssh_command,
    make_farm_key,
)
from tests.fixtures.network import free_port
from tests.fixtures.sshd import SSHServer

CANDLES = "candles/sim/BTC-USDT/1m"
MINUTE = 60_000
SECRET = "api-secret-7f3a9c"
PRODUCER = "producer-1"


@dataclass(frozen=True)
class Producer:
    server: SSHServer
    key: FarmKey
    root: Path  # authorized for the farm key
    other_root: Path  # a node root of the same user the key is not authorized for
    consumer: Path  # the consumer's node root (local)

    def ssh(self, *remote: str, options: tuple[str, ...] = (),
            stdin: bytes = b"", timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(farm_ssh_command(self.server, self.key, *remote, options=options),
                              input=stdin, capture_output=True, timeout=timeout, check=False)

    def rsync(self, source: str, destination: str, options: list[str],
              timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(farm_rsync(self.server, self.key, source, destination, options),
                              capture_output=True, timeout=timeout, check=False)

    def snapshots(self) -> list[str]:
        directory = self.root / SNAPSHOTS_DIR
        return os.listdir(directory) if directory.exists() else []


@pytest.fixture
def producer(sshd_factory: Callable[[int], list[SSHServer]], tmp_path: Path) -> Producer:
    (server,) = sshd_factory(1)
    root, other = server.node_root / "node-a", server.node_root / "node-b"
    data.append(root, CANDLES, make_candles(T0, 2 * 1440))
    data.append(other, CANDLES, make_candles(T0, 100))
    (root / "secrets").mkdir()
    (root / "secrets" / "api.key").write_text(SECRET)
    key = make_farm_key(tmp_path / "farm-key")
    authorize_farm_key(server, key, [str(root)])
    return Producer(server, key, root, other, tmp_path / "consumer")


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `root` (links not followed) with its inode, size and mtime."""
    found = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            found[os.path.relpath(path, root)] = (status.st_ino, status.st_size,
                                                  status.st_mtime_ns)
    return found


def refused(result: subprocess.CompletedProcess[bytes]) -> None:
    """The gate refused: a failure, nothing on stdout, its one line on stderr, no secret."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert result.stdout == b"", output
    assert b"sfarm farm key:" in result.stderr, output
    assert SECRET.encode() not in output and b"uid=" not in output


def pull_into_mirror(producer: Producer, options: list[str] | None = None) -> data.InstallResult:
    """A consumer's pull through the gate, staged and installed as sfarm.remote.pull does."""
    mirror = data.dataset_dir(producer.consumer, CANDLES, mirror_of=PRODUCER)
    with pull_lock(producer.consumer, CANDLES, mirror_of=PRODUCER):
        staging = staging_dir(producer.consumer, CANDLES, mirror_of=PRODUCER)
        result = producer.rsync(f":{producer.root}/data/{CANDLES}/", f"{staging}/",
                                options or farm_pull_options(mirror))
        assert result.returncode == 0, result.stderr
        transferred = parse_itemized(result.stdout.decode()).paths("transfer")
        return install_staged(producer.consumer, CANDLES, mirror_of=PRODUCER,
                              transferred=transferred)


# -- what the key can do ----------------------------------------------------------------------

def test_a_pull_with_sfarm_options_installs_and_leaves_no_snapshot(producer: Producer) -> None:
    dataset = data.dataset_dir(producer.root, CANDLES)
    # A link out of the dataset, planted among its partitions: never served.
    (dataset / "2030-01-01.g1.parquet").symlink_to(producer.root / "secrets" / "api.key")

    first = pull_into_mirror(producer)
    assert first.changed and first.manifest.rows == 2 * 1440
    mirrored = data.read(producer.consumer, CANDLES, mirror_of=PRODUCER)
    assert mirrored.equals(data.read(producer.root, CANDLES))
    assert data.verify(producer.consumer, CANDLES, mirror_of=PRODUCER).ok
    mirror = data.dataset_dir(producer.consumer, CANDLES, mirror_of=PRODUCER)
    assert not (mirror / "2030-01-01.g1.parquet").exists()
    assert producer.snapshots() == []

    data.append(producer.root, CANDLES, make_candles(T0 + 2 * 1440 * MINUTE, 60))
    second = pull_into_mirror(producer)
    assert second.changed and second.manifest.rows == 2 * 1440 + 60
    assert second.files <= 3  # the new day, the index, the manifest: not the history
    assert data.read(producer.consumer, CANDLES, mirror_of=PRODUCER).equals(
        data.read(producer.root, CANDLES))
    assert producer.snapshots() == []
    assert (producer.root / SNAPSHOTS_DIR).stat().st_mode & 0o777 == 0o700


def test_the_resolvers_own_pull_goes_through_the_gate(producer: Producer) -> None:
    """sfarm.resolver.link's rsync argv (its options, `--`, its remote spec) is what the gate
    serves; the peer's shell here is the farm key's plain ssh."""
    link = PeerLink(PRODUCER, str(producer.root), tuple(farm_ssh(producer.server, producer.key)),
                    f"{producer.server.user}@{producer.server.host}")
    installed = resolver_pull(link, CANDLES, producer.consumer)
    assert installed.changed and installed.manifest.rows == 2 * 1440
    assert data.read(producer.consumer, CANDLES, mirror_of=PRODUCER).equals(
        data.read(producer.root, CANDLES))
    assert producer.snapshots() == []
    data.append(producer.root, CANDLES, make_candles(T0 + 2 * 1440 * MINUTE, 60))
    again = resolver_pull(link, CANDLES, producer.consumer)
    assert again.manifest.rows == 2 * 1440 + 60 and again.files <= 3


def test_the_watch_streams_changes_over_ssh(producer: Producer) -> None:
    watch = subprocess.Popen(
        farm_ssh_command(producer.server, producer.key, "sfarm-watch", str(producer.root),
                         CANDLES, "sessions/paper/equity"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert watch.stdout is not None
    lines = Lines(watch.stdout)
    try:
        assert lines.next(15)[1] == f"changed {CANDLES}"
        for start in (2 * 1440, 2 * 1440 + 5):
            data.append(producer.root, CANDLES, make_candles(T0 + start * MINUTE, 5))
            committed = time.monotonic()
            arrived, line = lines.next_except_alive(5)
            assert line == f"changed {CANDLES}" and arrived - committed < 0.5
        assert lines.next(3)[1] == "alive"
        assert lines.next(3)[1] == "alive"
    finally:
        watch.kill()
        watch.wait()
    # The consumer gone, the gate finds no reader at its next line and ends.
    deadline = time.monotonic() + 10
    while gate_processes(producer.root) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gate_processes(producer.root) == []


def gate_processes(root: Path) -> list[int]:
    """Pids of the gates serving `root` (their command line names it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sfarm.resolver.gate" in words and str(root).encode() in words:
            found.append(int(pid))
    return found


# -- what it cannot do ------------------------------------------------------------------------

def test_no_shell(producer: Producer) -> None:
    refused(producer.ssh(stdin=b"id\necho SHELL-RAN\n"))
    forced_tty = producer.ssh(options=("-tt",), stdin=b"id\necho SHELL-RAN\nexit\n")
    output = forced_tty.stdout + forced_tty.stderr
    # `restrict` refuses the terminal; ssh -tt gives up (or the gate refuses the login).
    assert forced_tty.returncode != 0 and b"SHELL-RAN" not in output and b"uid=" not in output
    assert b"PTY allocation request failed" in output or b"sfarm farm key:" in output


@pytest.mark.parametrize("command", [
    ["id"], ["cat", "{root}/secrets/api.key"], ["sh", "-c", "'cat {root}/secrets/api.key'"],
    ["sfarm-watch", "{root}", CANDLES + ";", "cat", "{root}/secrets/api.key"],
    ["sfarm-watch", "$(cat {root}/secrets/api.key)", CANDLES],
    ["rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "{root}/data/" + CANDLES + "/"],
    ["scp", "-f", "{root}/secrets/api.key"], ["/usr/lib/openssh/sftp-server"],
])
def test_no_other_command(producer: Producer, command: list[str]) -> None:
    refused(producer.ssh(*(word.format(root=producer.root) for word in command)))


@pytest.mark.parametrize(("option", "refusal"), [
    ("--remove-source-files", b"--remove-source-files has been disabled"),
    ("--files-from=/etc/passwd", b"post-realpath open failed"),
    ("-L", b"-L has been disabled"),
    ("--log-file=/tmp/farm-key-log", b"--log-file has been disabled"),
    ("--no-munge-links", b"--no-munge-links has been disabled"),
])
def test_rrsync_refuses_what_the_gate_passes_on(producer: Producer, option: str,
                                                refusal: bytes) -> None:
    result = producer.ssh(f"rsync --server --sender -e.Ls {option} . "
                          f"{producer.root}/data/{CANDLES}/")
    assert result.returncode != 0 and result.stdout == b""
    assert refusal in result.stderr and b"root:x:0" not in result.stderr
    assert producer.snapshots() == [] and not Path("/tmp/farm-key-log").exists()


def test_a_missing_dataset_is_one_line(producer: Producer) -> None:
    result = producer.ssh(f"rsync --server --sender -e.Ls . {producer.root}/data/{CANDLES[:-2]}5m/")
    assert result.returncode != 0 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        f"sfarm farm key: no dataset {CANDLES[:-2]}5m in {producer.root}/data"]


def test_no_sftp_or_scp(producer: Producer, tmp_path: Path) -> None:
    sftp = subprocess.run(
        ["sftp", "-b", "-", "-F", "/dev/null", "-i", str(producer.key.private),
         "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={producer.server.known_hosts}",
         "-P", str(producer.server.port), f"{producer.server.user}@{producer.server.host}"],
        input=f"get {producer.root}/secrets/api.key {tmp_path}/got\n".encode(),
        capture_output=True, timeout=30, check=False)
    assert sftp.returncode != 0 and not (tmp_path / "got").exists()


def test_no_write(producer: Producer, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / MANIFEST_NAME).write_text("{}")
    (hostile / "2024-01-01.g9.parquet").write_bytes(b"not parquet")
    before = tree(producer.root)
    for target in (f"{producer.root}/data/{CANDLES}/", f"{producer.root}/data/candles/x/Y-Z/1m/",
                   f"{producer.root}/", f"{producer.root}/secrets/"):
        for options in (["--archive"], farm_pull_options()):
            refused(producer.rsync(f"{hostile}/", f":{target}", options))
    assert tree(producer.root) == before  # not a byte, not a directory, not a snapshot

    # --remove-source-files on a pull: rrsync -ro refuses it (and the source is a snapshot).
    result = producer.rsync(f":{producer.root}/data/{CANDLES}/", f"{tmp_path / 'copy'}/",
                            ["--archive", "--remove-source-files"])
    assert result.returncode != 0 and b"--remove-source-files" in result.stderr
    after = {path: entry for path, entry in tree(producer.root).items()
             if not path.startswith(SNAPSHOTS_DIR)}
    assert after == before and producer.snapshots() == []
    assert data.verify(producer.root, CANDLES).ok


def test_no_read_outside_data(producer: Producer, tmp_path: Path) -> None:
    root = producer.root
    # A dataset-shaped directory under data/ that leads to secrets/ through a symlink.
    (root / "secrets" / "x").mkdir()
    (root / "secrets" / "x" / MANIFEST_NAME).write_text("{}")
    (root / "secrets" / "x" / "api.key").write_text(SECRET)
    (root / "data" / "sessions").mkdir()
    (root / "data" / "sessions" / "leak").symlink_to(root / "secrets")
    sources = [[f"{root}/secrets/"], [f"{root}/data/../secrets/"], ["/etc/"], [f"{root}/"],
               [f"{root}/data/"], [f"{producer.other_root}/data/{CANDLES}/"],
               [f"{root}/data/sessions/leak/x/"], [f"{root}/data/{CANDLES}"],
               [f"{root}/data/{CANDLES}/../../../../../secrets/"],
               [f"{root}/data/{CANDLES}/", f"{root}/secrets/"],
               [f"{root}/data/{CANDLES}/{MANIFEST_NAME}"]]
    remote = f"{producer.server.user}@{producer.server.host}:"
    for index, source in enumerate(sources):
        destination = tmp_path / f"got-{index}"
        destination.mkdir()
        command = ["rsync", "--archive", "-e", shlex.join(farm_ssh(producer.server, producer.key)),
                   *(remote + path for path in source), f"{destination}/"]
        refused(subprocess.run(command, capture_output=True, timeout=60, check=False))
        assert os.listdir(destination) == [], source
    assert producer.snapshots() == []


def echo_server() -> tuple[int, list[socket.socket], threading.Event]:
    """A listener on a free loopback port that greets whoever connects and hangs up; the
    connections it accepted, and an event to stop it."""
    listener = socket.create_server(("127.0.0.1", free_port()))
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(connection)
            with connection:
                connection.sendall(b"hello from the inside\n")
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], accepted, stop


def test_no_port_forwarding(producer: Producer) -> None:
    port, accepted, stop = echo_server()
    try:
        # The control: the server forwards for an unrestricted key (AllowTcpForwarding yes).
        control = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(producer.server.client_key.private),
             "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={producer.server.known_hosts}",
             "-p", str(producer.server.port), "-W", f"127.0.0.1:{port}",
             f"{producer.server.user}@{producer.server.host}"],
            input=b"", capture_output=True, timeout=30, check=False)
        assert b"hello from the inside" in control.stdout
        accepted.clear()

        stdio = producer.ssh(options=("-W", f"127.0.0.1:{port}"))
        assert stdio.returncode != 0 and b"hello" not in stdio.stdout

        remote_port = free_port()
        remote = producer.ssh(options=("-N", "-o", "ExitOnForwardFailure=yes",
                                       "-R", f"127.0.0.1:{remote_port}:127.0.0.1:{port}"))
        assert remote.returncode != 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", remote_port), timeout=2).close()

        local_port = free_port()
        tunnel = subprocess.Popen(
            farm_ssh_command(producer.server, producer.key,
                             options=("-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{port}")),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            received = b""
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until ssh listens and the channel is refused
                try:
                    with socket.create_connection(("127.0.0.1", local_port), timeout=2) as probe:
                        probe.settimeout(3)
                        received = probe.recv(100)
                    break
                except ConnectionRefusedError:
                    time.sleep(0.1)
            else:
                pytest.fail("ssh -L never listened")
            assert received == b""
        finally:
            tunnel.kill()
            tunnel.wait()
        time.sleep(0.2)
        assert accepted == []  # nothing ever reached the inside through the farm key
    finally:
        stop.set()


# -- the producer's lock during a transfer ----------------------------------------------------

def random_minutes(start: int, count: int) -> pl.DataFrame:
    """Candles that do not compress: a big enough dataset for a slow transfer."""
    rng = np.random.default_rng(start)
    close = 100 + rng.random(count)
    return pl.DataFrame({"ts": T0 + (start + np.arange(count, dtype=np.int64)) * MINUTE,
                         "open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": rng.random(count)})


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.005)


def test_a_stalled_consumer_never_blocks_the_producer(producer: Producer) -> None:
    data.append(producer.root, CANDLES, random_minutes(2 * 1440, 20 * 1440))  # about 1.5 MB
    at_snapshot = data.read(producer.root, CANDLES)
    dataset = data.dataset_dir(producer.root, CANDLES)
    mirror = data.dataset_dir(producer.consumer, CANDLES, mirror_of=PRODUCER)
    with pull_lock(producer.consumer, CANDLES, mirror_of=PRODUCER):
        staging = staging_dir(producer.consumer, CANDLES, mirror_of=PRODUCER)
        pulling = subprocess.Popen(
            farm_rsync(producer.server, producer.key, f":{dataset}/", f"{staging}/",
                       [*farm_pull_options(mirror), "--bwlimit=400"]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_until(lambda: producer.snapshots() != [], 30, "the gate's snapshot")
            wait_until(lambda: any(staging.iterdir()), 30, "the first bytes")
            os.kill(pulling.pid, signal.SIGSTOP)  # the consumer stalls mid-transfer
            assert pulling.poll() is None and not (staging / MANIFEST_NAME).exists()

            # The producer's writers go on: the lock is free, an append commits and retires
            # the files the snapshot still links.
            def lock_and_release() -> None:
                with WriterLock(dataset):
                    pass

            assert run_within(lock_and_release, 5), "the writer lock is held by the pull"
            assert run_within(lambda: data.append(
                producer.root, CANDLES, random_minutes(22 * 1440, 60)), 60)
            assert data.read(producer.root, CANDLES).height == at_snapshot.height + 60
        finally:
            os.kill(pulling.pid, signal.SIGCONT)
        stdout, stderr = pulling.communicate(timeout=120)
        assert pulling.returncode == 0, stderr
        installed = install_staged(producer.consumer, CANDLES, mirror_of=PRODUCER,
                                   transferred=parse_itemized(stdout.decode()).paths("transfer"))
    assert installed.manifest.rows == at_snapshot.height  # the snapshot's version, whole
    assert data.read(producer.consumer, CANDLES, mirror_of=PRODUCER).equals(at_snapshot)
    assert data.verify(producer.consumer, CANDLES, mirror_of=PRODUCER).ok
    wait_until(lambda: producer.snapshots() == [], 10, "the snapshot's removal")


def run_within(target: Callable[[], object], timeout: float) -> bool:
    """Run `target()` in a thread; True when it returned within `timeout` seconds."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive()
