"""SSHFS transport (sfarm.resolver.sshfs): the producer's authorized line, the sshfs command, and
real read-only mounts of a producer's data over a real sshd with real sshfs.

The mount tests are the only SSH tests that may skip, and only with fuse_problem()'s reason.
"""

from __future__ import annotations

import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfarm import data
from sfarm.errors import RunError, UsageError
from sfarm.resolver.sshfs import (
    SFTP_SERVER_CANDIDATES,
    SSHFSTarget,
    describe_sshfs_failure,
    fuse_problem,
    is_mounted,
    mirror_mountpoint,
    mount,
    parse_mountinfo,
    sftp_authorized_line,
    sshfs_argv,
    unmount,
)
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.sshd import SSHD, SSHDPool, SSHServer, generate_key

CANDLES = "candles/sim/BTC-USDT/1m"
MARKER = "sfarm-sshfs-key:farm/test"
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx8pX0vQ9mKxB1Ha6Cq0Jy2fXpt8o4Vd3Ff0vP0cOeL x@y"


# ---- pure -------------------------------------------------------------------------------------

def test_sftp_authorized_line_forces_read_only_sftp() -> None:
    line = sftp_authorized_line(PUBLIC, "/usr/lib/openssh/sftp-server", MARKER)
    key_type, key = PUBLIC.split()[:2]
    assert line == (f'restrict,command="/usr/lib/openssh/sftp-server -R" {key_type} {key} '
                    f"{MARKER}")


@pytest.mark.parametrize(("public", "server", "marker"), [
    (PUBLIC, '/usr/lib/sftp"server', MARKER),  # a quote would end the command
    (PUBLIC, "/usr/lib/sftp-server -R,command=x", MARKER),
    (PUBLIC, "sftp-server", MARKER),  # relative: whatever PATH finds
    (PUBLIC, "/usr/lib/sftp\nserver", MARKER),
    ("not a key", "/usr/lib/openssh/sftp-server", MARKER),
    ('ssh-ed25519 AAAA"x', "/usr/lib/openssh/sftp-server", MARKER),
    (PUBLIC, "/usr/lib/openssh/sftp-server", "two words"),
    (PUBLIC, "/usr/lib/openssh/sftp-server", "x\nssh-ed25519 AAAA"),
    (PUBLIC, "/usr/lib/openssh/sftp-server", 'a"b'),
    (PUBLIC, "/usr/lib/openssh/sftp-server", ""),
])
def test_sftp_authorized_line_refuses_what_breaks_the_line(public: str, server: str,
                                                           marker: str) -> None:
    with pytest.raises(UsageError):
        sftp_authorized_line(public, server, marker)


def _target(**overrides: object) -> SSHFSTarget:
    values: dict[str, object] = {
        "host": "10.0.0.2", "user": "farm", "node_root": "/srv/sfarm/miner",
        "identity_file": "/home/farm/.sfarm/sshfs key",
        "known_hosts": "/home/farm/.sfarm/known_hosts", "port": 2222}
    values.update(overrides)
    return SSHFSTarget(**values)  # type: ignore[arg-type]


def _options(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_sshfs_argv_mounts_data_read_only_with_strict_ssh() -> None:
    argv = sshfs_argv(_target(), "/srv/sfarm/lab/mirror/miner")
    assert argv[:5] == ["sshfs", "farm@10.0.0.2:/srv/sfarm/miner/data",
                        "/srv/sfarm/lab/mirror/miner", "-p", "2222"]
    options = _options(argv)
    for expected in ["ro", "direct_io", "dir_cache=no", "reconnect", "ServerAliveInterval=5",
                     "ServerAliveCountMax=3", "BatchMode=yes", "IdentitiesOnly=yes",
                     "IdentityAgent=none", "PasswordAuthentication=no",
                     "StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null",
                     'IdentityFile="/home/farm/.sfarm/sshfs key"',
                     'UserKnownHostsFile="/home/farm/.sfarm/known_hosts"',
                     "ssh_command=ssh -F /dev/null"]:
        assert expected in options
    assert not any(option.startswith("ProxyCommand") for option in options)


def test_sshfs_argv_reaches_through_jump_hosts_with_the_same_strict_options() -> None:
    options = _options(sshfs_argv(_target(proxy_jump="ops@bastion:2200,gate"), "/m"))
    [proxy] = [o for o in options if o.startswith("ProxyCommand=")]
    outer = shlex.split(proxy.removeprefix("ProxyCommand="))
    assert outer[:3] == ["ssh", "-F", "/dev/null"] and outer[-3:] == ["-W", "[%h]:%p", "ssh://gate"]
    [inner] = [w.removeprefix("ProxyCommand=") for w in outer if w.startswith("ProxyCommand=")]
    # gate's ssh expands %-tokens once: the inner hop's are doubled so they reach its own ssh.
    assert shlex.split(inner)[-3:] == ["-W", "[%%h]:%%p", "ssh://ops@bastion:2200"]
    for words in (outer, shlex.split(inner)):
        assert "StrictHostKeyChecking=yes" in words and "IdentitiesOnly=yes" in words


@pytest.mark.parametrize("overrides", [
    {"host": "a b"}, {"user": ""}, {"proxy_jump": "jump %h"}, {"identity_file": 'k"ey'},
    {"known_hosts": "/x%d"}, {"node_root": "/srv/\nroot"},
])
def test_sshfs_argv_refuses_values_ssh_would_misread(overrides: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        sshfs_argv(_target(**overrides), "/m")


def test_failures_name_the_hop_that_failed() -> None:
    target = _target(proxy_jump="ops@bastion")
    jump_key = ("Host key for bastion has changed and you have requested strict checking.\n"
                "Host key verification failed.\nkex_exchange_identification: read: reset\n")
    assert "the host key of bastion is not the one in /home/farm/.sfarm/known_hosts" in \
        describe_sshfs_failure(jump_key, target)
    refused = "ops@bastion: Permission denied (publickey).\nConnection closed by UNKNOWN\n"
    assert "ops@bastion refused the key" in describe_sshfs_failure(refused, target)
    assert "farm@10.0.0.2 refused the key" in describe_sshfs_failure(
        "farm@10.0.0.2: Permission denied (publickey).", _target())


def test_parse_mountinfo_reads_escaped_mount_points() -> None:
    text = ("36 35 98:0 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
            "90 36 0:51 / /srv/node\\040a/mirror/miner ro,nosuid,nodev,relatime shared:7 - "
            "fuse.sshfs farm@10.0.0.2:/srv/data ro,user_id=0,group_id=0\n")
    entries = parse_mountinfo(text)
    assert entries[1].mount_point == "/srv/node a/mirror/miner"
    assert (entries[1].fs_type, entries[1].source) == ("fuse.sshfs", "farm@10.0.0.2:/srv/data")


# ---- real mounts over a real sshd --------------------------------------------------------------

@dataclass(frozen=True)
class Producer:
    """A producer node root on a real sshd, its SSHFS key authorized with sftp_authorized_line."""

    server: SSHServer
    listener: subprocess.Popen[bytes]  # its sshd, for the tests that stop it
    root: Path
    key: Path
    name: str = "miner"

    def target(self, **overrides: object) -> SSHFSTarget:
        values: dict[str, object] = {
            "host": self.server.host, "user": self.server.user, "node_root": str(self.root),
            "identity_file": str(self.key), "known_hosts": str(self.server.known_hosts),
            "port": self.server.port}
        values.update(overrides)
        return SSHFSTarget(**values)  # type: ignore[arg-type]


def sftp_server_path() -> str:
    return next(path for path in SFTP_SERVER_CANDIDATES if Path(path).exists())


def authorize_sshfs_key(server: SSHServer, directory: Path) -> Path:
    key = directory / "sshfs_ed25519"
    line = sftp_authorized_line(generate_key(key, "sfarm-sshfs"), sftp_server_path(), MARKER)
    with server.authorized_keys.open("a") as keys:
        keys.write(line + "\n")
    return key


@pytest.fixture
def producer(sshd_factory: Callable[[int], list[SSHServer]], sshd_pool: SSHDPool,
             tmp_path: Path) -> Producer:
    problem = fuse_problem()
    if problem is not None:
        pytest.skip(f"FUSE is not usable here: {problem}")
    [server] = sshd_factory(1)
    listener = sshd_pool.processes[-1]
    root = server.node_root / "miner"
    data.append(root, CANDLES, make_candles(T0, 3 * 1440))
    return Producer(server, listener, root, authorize_sshfs_key(server, tmp_path))


@pytest.fixture
def consumer(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "lab"
    yield root
    mirror = root / "mirror"
    for mountpoint in (mirror.iterdir() if mirror.is_dir() else []):
        unmount(mountpoint)  # a failed test leaves no mount behind


def sshfs_pids(mountpoint: Path) -> list[int]:
    """sshfs daemons serving `mountpoint` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and words[0].endswith(b"sshfs") and \
                str(mountpoint).encode() in words:
            pids.append(int(entry.name))
    return pids


def test_a_mounted_producer_reads_as_its_own_data(producer: Producer, consumer: Path) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    assert mount(producer.target(), mountpoint) is True
    assert is_mounted(mountpoint)
    [entry] = [e for e in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
               if e.mount_point == str(mountpoint)]
    assert entry.fs_type == "fuse.sshfs" and entry.source == producer.target().remote
    assert mount(producer.target(), mountpoint) is False  # idempotent: already there, alive

    mirrored = data.read(consumer, CANDLES, mirror_of=producer.name)
    assert mirrored.height == 3 * 1440 and mirrored.equals(data.read(producer.root, CANDLES))
    assert data.verify(consumer, CANDLES, mirror_of=producer.name).ok
    assert [info.id for info in data.list_datasets(consumer)] == [CANDLES]

    # Each commit of the producer shows through the mount at once (measured: 5 ms median).
    delays, rows = [], 3 * 1440
    for step in range(8):
        count = 1440 if step == 3 else 1  # one append starts a new day: a new partition file
        done = data.append(producer.root, CANDLES, make_candles(T0 + rows * 60_000, count))
        committed, rows = time.monotonic(), rows + count
        while _mirrored_last_ts(consumer, producer.name) != done.last_ts:
            assert time.monotonic() - committed < 1.0, "a commit took over 1 s to show"
            time.sleep(0.002)
        delays.append(time.monotonic() - committed)
        assert data.read_tail(consumer, CANDLES, 1, mirror_of=producer.name)["ts"][0] == \
            done.last_ts
    print(f"commit visible through sshfs after {statistics.median(delays) * 1000:.1f} ms "
          f"median, {max(delays) * 1000:.1f} ms max")
    assert statistics.median(delays) < 0.25
    assert data.read(consumer, CANDLES, mirror_of=producer.name).equals(
        data.read(producer.root, CANDLES))

    # A dataset the producer starts later is listed at once (sshfs's directory cache is off).
    data.append(producer.root, "candles/sim/ETH-USDT/1m", make_candles(T0, 10))
    assert {info.id for info in data.list_datasets(consumer)} == {
        CANDLES, "candles/sim/ETH-USDT/1m"}

    assert unmount(mountpoint) is True and not is_mounted(mountpoint)
    assert unmount(mountpoint) is False
    _wait_until(lambda: not sshfs_pids(mountpoint), "the sshfs daemon exits after the unmount")


def _mirrored_last_ts(consumer: Path, producer: str) -> int | None:
    manifest = data.load_manifest(consumer, CANDLES, mirror_of=producer, with_partitions=False)
    assert manifest is not None
    return manifest.last_ts


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def test_nothing_can_be_written_through_the_mount_or_the_key(producer: Producer,
                                                             consumer: Path,
                                                             tmp_path: Path) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    mount(producer.target(), mountpoint)
    dataset = mountpoint / CANDLES
    before = sorted(p.name for p in data.dataset_dir(producer.root, CANDLES).iterdir())
    attempts: list[Callable[[], object]] = [
        lambda: (dataset / "x.parquet").write_bytes(b"x"),
        lambda: (dataset / "_manifest.json").write_text("{}"),
        lambda: (dataset / "_manifest.json").unlink(),
        lambda: (dataset / "_manifest.json").rename(dataset / "moved.json"),
        lambda: (mountpoint / "new").mkdir(),
        lambda: os.chmod(dataset / "_manifest.json", 0o777),
    ]
    for attempt in attempts:
        with pytest.raises(OSError):
            attempt()
    # The local `ro` is the consumer's choice; the producer's `sftp-server -R` refuses writes
    # from a client that ignores it (sftp's own put, rm, mkdir, rename).
    payload = tmp_path / "payload"
    payload.write_bytes(b"evil")
    for command in (f"put {payload} {producer.root}/data/evil",
                    f"rm {dataset_files(producer)[0]}", f"mkdir {producer.root}/data/evil",
                    f"rename {dataset_files(producer)[0]} {producer.root}/data/moved"):
        batch = tmp_path / "batch"
        batch.write_text(command + "\n")
        done = subprocess.run([*_ssh_base(producer, "sftp"), "-b", str(batch), _at(producer)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0, f"sftp {command!r} succeeded: {done.stdout}"
        assert "denied" in done.stderr.lower() or "failure" in done.stderr.lower(), done.stderr
    assert sorted(p.name for p in data.dataset_dir(producer.root, CANDLES).iterdir()) == before
    assert not (producer.root / "data" / "evil").exists()


def dataset_files(producer: Producer) -> list[str]:
    return sorted(str(p) for p in data.dataset_dir(producer.root, CANDLES).glob("*.parquet"))


def _ssh_base(producer: Producer, program: str) -> list[str]:
    port = ["-P" if program == "sftp" else "-p", str(producer.server.port)]
    return [program, "-F", "/dev/null", *port, "-i", str(producer.key),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentityAgent=none",
            "-o", f"UserKnownHostsFile={producer.server.known_hosts}"]


def _at(producer: Producer) -> str:
    return f"{producer.server.user}@{producer.server.host}"


def test_the_sshfs_key_opens_no_shell_and_runs_no_command(producer: Producer,
                                                          tmp_path: Path) -> None:
    proof = tmp_path / "ran"
    for extra in ([], ["-tt"]):
        done = subprocess.run(_ssh_base(producer, "ssh") + extra + [
            _at(producer), f"touch {proof}; echo shell-ran-$((6*7))"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert "shell-ran-42" not in done.stdout and not proof.exists()
    # No forwarding either (`restrict`): a -W to the sshd itself is refused.
    forward = ["-W", f"127.0.0.1:{producer.server.port}", _at(producer)]
    forwarded = subprocess.run([*_ssh_base(producer, "ssh"), *forward],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert not forwarded.stdout.startswith(b"SSH-"), "the key opened a forwarding"
    assert b"prohibited" in forwarded.stderr, forwarded.stderr


def test_mount_failures_name_their_cause(producer: Producer, consumer: Path,
                                         tmp_path: Path) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    stranger = tmp_path / "known_hosts_other"
    stranger.write_text(f"[{producer.server.host}]:{producer.server.port} "
                        f"{generate_key(tmp_path / 'other_host', '')}\n")
    with pytest.raises(RunError, match=r"host key of \[127.0.0.1\]:\d+ is not the one"):
        mount(producer.target(known_hosts=str(stranger)), mountpoint)
    unknown_key = tmp_path / "unknown_ed25519"
    generate_key(unknown_key, "not-authorized")
    with pytest.raises(RunError, match="refused the key"):
        mount(producer.target(identity_file=str(unknown_key)), mountpoint)
    with pytest.raises(RunError, match="does not exist"):
        mount(producer.target(node_root=str(tmp_path / "nowhere")), mountpoint)
    SSHDPool._stop(producer.listener)
    with pytest.raises(RunError, match="nothing listens"):
        mount(producer.target(), mountpoint)
    assert not is_mounted(mountpoint)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _kill_producer(listener: subprocess.Popen[bytes]) -> None:
    """Stop an sshd and its open connections (they run in sessions of their own)."""
    sessions = _children(listener.pid)
    SSHDPool._stop(listener)
    for pid in sessions:
        os.kill(pid, signal.SIGKILL)


def test_a_producer_that_dies_and_returns(producer: Producer, consumer: Path,
                                          sshd_pool: SSHDPool) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    mount(producer.target(), mountpoint)
    assert data.read(consumer, CANDLES, mirror_of=producer.name).height == 3 * 1440
    _kill_producer(producer.listener)
    started = time.monotonic()
    with pytest.raises(OSError):  # not a hang: the connection is gone and nothing answers
        data.read(consumer, CANDLES, mirror_of=producer.name)
    print(f"a read failed {time.monotonic() - started:.2f} s after the producer died")
    assert is_mounted(mountpoint)
    assert mount(producer.target(), mountpoint) is False  # alive mount, producer away: kept

    # The producer comes back (same host key, same port): the same mount reads again.
    config = producer.server.known_hosts.parent / "sshd_config"
    returned = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    sshd_pool.processes.append(returned)  # stopped with the pool, whatever happens here
    data.append(producer.root, CANDLES, make_candles(T0 + 3 * 1440 * 60_000, 60))
    started = time.monotonic()
    while True:
        try:
            rows = data.read(consumer, CANDLES, mirror_of=producer.name).height
            break
        except OSError:
            assert time.monotonic() - started < 15, "the mount did not reconnect"
            time.sleep(0.1)
    print(f"the mount read again {time.monotonic() - started:.2f} s after the producer returned")
    assert rows == 3 * 1440 + 60

    # And dies for good: the dead mount still unmounts, and nothing is left.
    _kill_producer(returned)
    with pytest.raises(OSError):
        data.read(consumer, CANDLES, mirror_of=producer.name)
    assert unmount(mountpoint) is True
    assert not is_mounted(mountpoint)
    assert str(mountpoint) not in Path("/proc/self/mountinfo").read_text()
    _wait_until(lambda: not sshfs_pids(mountpoint), "the sshfs daemon exits")


def test_a_killed_sshfs_is_a_dead_mount_that_mount_replaces(producer: Producer,
                                                             consumer: Path) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    mount(producer.target(), mountpoint)
    for pid in sshfs_pids(mountpoint):
        os.kill(pid, signal.SIGKILL)
    _wait_until(lambda: not sshfs_pids(mountpoint), "sshfs is gone")
    with pytest.raises(OSError):  # ENOTCONN: Transport endpoint is not connected
        os.listdir(mountpoint)
    assert is_mounted(mountpoint)
    assert mount(producer.target(), mountpoint) is True  # unmounts the dead one, mounts anew
    assert data.read(consumer, CANDLES, mirror_of=producer.name).height == 3 * 1440
    assert len([e for e in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
                if e.mount_point == str(mountpoint)]) == 1


def test_a_producers_symlink_never_leads_out_of_the_mount(producer: Producer, consumer: Path,
                                                          tmp_path: Path) -> None:
    secret = tmp_path / "consumer-secret"
    secret.write_text("SECRET")
    directory = data.dataset_dir(producer.root, CANDLES)
    (directory / "absolute.parquet").symlink_to(secret)
    (directory / "relative.parquet").symlink_to(os.path.relpath(secret, directory))
    (directory / "inside.json").symlink_to("_manifest.json")
    mountpoint = mirror_mountpoint(consumer, producer.name)
    mount(producer.target(), mountpoint)
    for name in ("absolute.parquet", "relative.parquet"):
        with pytest.raises(OSError):
            (mountpoint / CANDLES / name).read_text()
    assert (mountpoint / CANDLES / "inside.json").read_bytes() == \
        (directory / "_manifest.json").read_bytes()


def test_a_busy_mount_is_detached_lazily(producer: Producer, consumer: Path) -> None:
    mountpoint = mirror_mountpoint(consumer, producer.name)
    mount(producer.target(), mountpoint)
    with open(mountpoint / CANDLES / "_manifest.json", "rb") as held:
        assert unmount(mountpoint) is True
        assert not is_mounted(mountpoint)
        assert held.read(1) == b"{"  # the open file still reads until it is closed
    _wait_until(lambda: not sshfs_pids(mountpoint), "the sshfs daemon exits")


def test_mount_through_two_jump_hosts_with_forward_only_keys(
        sshd_factory: Callable[[int], list[SSHServer]], sshd_pool: SSHDPool, tmp_path: Path,
        consumer: Path) -> None:
    problem = fuse_problem()
    if problem is not None:
        pytest.skip(f"FUSE is not usable here: {problem}")
    outer_jump, jump, server = sshd_factory(3)
    root = server.node_root / "miner"
    data.append(root, CANDLES, make_candles(T0, 1440))
    key = authorize_sshfs_key(server, tmp_path)
    # Each jump host lets the key forward to the next hop only, and do nothing else.
    key_type, key_body = key.with_suffix(".pub").read_text().split()[:2]
    for hop, next_hop in ((outer_jump, jump), (jump, server)):
        with hop.authorized_keys.open("a") as keys:
            keys.write(f'restrict,port-forwarding,permitopen="{next_hop.host}:{next_hop.port}",'
                       f'command="/bin/false" {key_type} {key_body} {MARKER}\n')
    known_hosts = sshd_pool.known_hosts_for([outer_jump, jump, server])
    target = SSHFSTarget(host=server.host, user=server.user, node_root=str(root),
                         identity_file=str(key), known_hosts=str(known_hosts), port=server.port,
                         proxy_jump=f"{outer_jump.user}@{outer_jump.host}:{outer_jump.port},"
                                    f"{jump.user}@{jump.host}:{jump.port}")
    mountpoint = mirror_mountpoint(consumer, "miner")
    assert mount(target, mountpoint) is True
    assert data.read(consumer, CANDLES, mirror_of="miner").equals(data.read(root, CANDLES))
    assert unmount(mountpoint)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as another user")
def test_fuse_problem_names_the_device_a_user_may_not_open() -> None:
    device = Path("/dev/fuse")
    if not device.exists() or device.stat().st_mode & 0o006 == 0o006:
        pytest.skip("/dev/fuse is open to every user here: nothing to refuse")
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from sfarm.resolver.sshfs import fuse_problem; print(fuse_problem())")
    done = subprocess.run(["runuser", "-u", "nobody", "--", python, "-c", code,
                           str(Path(__file__).resolve().parents[1])],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    assert "user nobody may not open /dev/fuse" in done.stdout, done.stdout
