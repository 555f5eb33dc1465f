"""How a consumer reaches a peer: the commands (pure), and a pull of one dataset through them.

Every command reaches the peer's gate (sfarm.resolver.gate), the farm key's forced command: a
change stream (`sfarm-watch`) and rsync pulls of `ROOT/data/ID/`. Over SSH they share one
connection, held by a master ssh process the follower starts (no handshake per pull); a peer on
this machine (`host = "local"`) is reached through `local_rsh`, which runs the same gate without
SSH, so both take the same path through snapshot and rrsync.

The consumer's ssh trusts only what deploy shipped: the farm key (`secrets/farm_key`, no agent,
no other identity) and the peers' host keys (`known_hosts`, strictly); it reads no ssh_config.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import dataset_dir
from sfarm.data.mirror import InstallResult, install_staged, pull_lock, staging_dir
from sfarm.errors import RunError
from sfarm.resolver.routes import FARM_KEY_FILE, KNOWN_HOSTS_FILE, Hop, Peer
from sfarm.rsync import parse_itemized, rsync_options

CONNECT_TIMEOUT_S = 5
# ssh's keepalive: a peer that stops answering is noticed within interval x count seconds.
ALIVE_INTERVAL_S = 2
ALIVE_COUNT = 3
DISK_CHECK_S = 0.2  # how often a running pull looks at the disk's free space
# Mirrored files are this node's user's alone, whatever modes the producer gave them.
MIRROR_MODES = "--chmod=D0700,F0600"
SOCKET_PATH_MAX = 100  # a unix socket path is at most 107 bytes; ssh adds a suffix while binding


class LinkDown(RunError):
    """The peer cannot be reached (or stopped answering): every input from it is stale."""


class PullFailed(RunError):
    """One dataset could not be pulled; the others may be fine."""


@dataclass(frozen=True)
class PeerLink:
    """The remote shell of one peer: `rsh + [host, *words]` runs `words` at the peer's gate."""

    node: str
    root: str  # the peer's node root, on its machine
    rsh: tuple[str, ...]
    host: str
    master: tuple[str, ...] | None = None  # start first and keep: the shared SSH connection
    control_path: Path | None = None
    # What runs the gate on the peer when no forced command does (an operator's login):
    # rsync's --rsync-path, which the words of the pull follow.
    rsync_path: str | None = None

    def command(self, *words: str) -> list[str]:
        return [*self.rsh, self.host, *words]

    def watch_command(self, dataset_ids: tuple[str, ...]) -> list[str]:
        return self.command("sfarm-watch", self.root, *dataset_ids)

    def source(self, dataset_id: str) -> str:
        """rsync's remote source of a dataset (its trailing slash: the directory's content)."""
        return f"{self.host}:{self.root}/data/{dataset_id}/"


def peer_link(root: Path, peer: Peer) -> PeerLink:
    """The commands that reach `peer` from the node root `root`."""
    if peer.local:
        shim = (sys.executable, "-m", "sfarm.resolver.local_rsh", "--root", peer.root)
        return PeerLink(peer.node, peer.root, shim, "local")
    words = [*_strict_ssh(root)]
    if peer.jumps:
        words += ["-o", "ProxyCommand=" + proxy_command(root, peer.jumps)]
    words += ["-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}",
              "-o", f"ServerAliveCountMax={ALIVE_COUNT}", "-p", str(peer.port)]
    if peer.user:
        words += ["-l", peer.user]
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    control = root / "run" / f"ssh-{peer.node}.sock"
    if len(str(control)) > SOCKET_PATH_MAX:  # no multiplexing rather than no data
        return PeerLink(peer.node, peer.root, tuple(words), host)
    shared = [*words, "-o", f"ControlPath={control}"]
    return PeerLink(peer.node, peer.root, (*shared, "-o", "ControlMaster=no"), host,
                    master=(*shared, "-o", "ControlMaster=yes", "-N", host),
                    control_path=control)


def _strict_ssh(root: Path) -> list[str]:
    """ssh trusting only what deploy shipped into `root`: the farm key, the peers' host keys."""
    return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={root / KNOWN_HOSTS_FILE}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-i", str(root / FARM_KEY_FILE),
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]


def proxy_command(root: Path, jumps: tuple[Hop, ...]) -> str:
    """ssh's ProxyCommand reaching %h:%p through `jumps` (the last one nearest the peer), each
    with the same strict settings (-J would let each hop read ssh_config and other keys)."""
    *before, last = jumps
    words = _strict_ssh(root)
    if before:  # ssh expands %-tokens once per level: double them for the inner command
        words += ["-o", "ProxyCommand=" + proxy_command(root, tuple(before)).replace("%", "%%")]
    return shlex.join([*words, "-W", "[%h]:%p", last.destination])


def pull_command(link: PeerLink, dataset_id: str, staging: Path, mirror: Path) -> list[str]:
    """The rsync of one dataset into `staging`, hard-linking what `mirror` already holds.

    Without `-s`: rrsync (the gate's guard) must see the paths on the command line."""
    rsync = shutil.which("rsync")
    if rsync is None:
        raise PullFailed("rsync is not installed on this node",
                         hint="install it (for example: apt-get install rsync)")
    remote = [f"--rsync-path={link.rsync_path}"] if link.rsync_path else []
    return [rsync, *rsync_options(pull=True, delete=True, excludes=(), link_dest=str(mirror),
                                  secluded=False), MIRROR_MODES, *remote,
            "-e", shlex.join(link.rsh), "--", link.source(dataset_id), f"{staging}/"]


def pull(link: PeerLink, dataset_id: str, root: Path, timeout_s: float = 600) -> InstallResult:
    """Bring the peer's current version of `dataset_id` into `root/mirror/<peer>/<id>`: only
    new files travel, the copy is checked and committed by the store (install_staged).
    LinkDown when the peer cannot be reached, PullFailed for anything else.

    The peer is not trusted with this node's disk: a transfer that would leave less than
    `free_reserve(...)` bytes free is stopped (the manifest is checked only once it arrives)."""
    mirror = dataset_dir(root, dataset_id, mirror_of=link.node)
    with pull_lock(root, dataset_id, mirror_of=link.node):
        staging = staging_dir(root, dataset_id, mirror_of=link.node)
        argv = pull_command(link, dataset_id, staging, mirror)
        try:
            stdout, stderr, code = _run_guarded(argv, staging, timeout_s, link.node, dataset_id)
        except PullFailed:
            shutil.rmtree(staging, ignore_errors=True)  # give the disk back at once
            raise
        if code != 0:
            shutil.rmtree(staging, ignore_errors=True)
            said = stderr.decode(errors="replace").strip().splitlines()[-3:]
            message = f"pull of {dataset_id} from {link.node} failed " \
                      f"(rsync exit {code}): {' / '.join(said)}"
            raise (LinkDown if code == 255 else PullFailed)(message)
        transferred = parse_itemized(stdout.decode(errors="replace")).paths("transfer")
        return install_staged(root, dataset_id, mirror_of=link.node, transferred=transferred)


# The process groups of the pulls running now: a resolver that stops ends them (they are not
# in its own group, so supervisord's stop would not reach them).
_running: set[int] = set()
_running_lock = threading.Lock()


def stop_pulls() -> None:
    """End every pull this process is running (they fail with PullFailed)."""
    with _running_lock:
        groups = list(_running)
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)


def _wait_for_group(group: int, timeout_s: float = 2.0) -> None:
    """Give rsync's other processes (its receiver, the remote shell) a moment to be gone: a
    killed receiver keeps the partial file's space until it has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def free_reserve(directory: Path) -> int:
    """Bytes a pull must leave free on the disk of `directory`: 5% of it, at least 256 MiB."""
    return max(256 << 20, shutil.disk_usage(directory).total // 20)


def _run_guarded(argv: list[str], staging: Path, timeout_s: float, node: str,
                 dataset_id: str) -> tuple[bytes, bytes, int]:
    """Run the rsync, stopping it when it outlives `timeout_s` or fills the disk."""
    reserve = free_reserve(staging)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # Its own process group: rsync forks its receiver, which must stop with it.
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                   process_group=0)
        with _running_lock:
            _running.add(process.pid)
        deadline = time.monotonic() + timeout_s
        try:
            while process.poll() is None:
                try:
                    process.wait(timeout=DISK_CHECK_S)
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise PullFailed(f"pulling {dataset_id} from {node} took over "
                                         f"{timeout_s:g} s") from None
                    if shutil.disk_usage(staging).free < reserve:
                        raise PullFailed(
                            f"pulling {dataset_id} from {node} was stopped: the disk of "
                            f"{staging} has less than {reserve >> 20} MiB left",
                            hint="free some space; the mirror is unchanged") from None
        finally:
            with _running_lock:
                _running.discard(process.pid)
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                _wait_for_group(process.pid)
        out.seek(0)
        err.seek(0)
        return out.read(), err.read(), process.returncode
