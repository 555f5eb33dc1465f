"""Reading a peer through a mount (`transport = "sshfs"`): the peer's `data/` mounted read-only
at `mirror/<peer>/`, kept mounted and watched.

There is no copy: tasks read the producer's files through the mount, and a commit there is
visible at once. What the keeper does is keep the mount alive and tell the board the truth: it
reads each followed dataset's manifest through the mount every CHECK_INTERVAL_S, with a time
limit (a hung producer blocks a read for as long as ssh's keepalive allows); a mount that does
not answer makes every input from that peer stale, and is replaced with a new one (with a
capped backoff). The mount is unmounted when the resolver stops.
"""

from __future__ import annotations

import getpass
import logging
import threading
import time
from pathlib import Path

from sfarm.backoff import Backoff
from sfarm.data.reader import load_manifest
from sfarm.errors import RunError
from sfarm.resolver.routes import KNOWN_HOSTS_FILE, Peer, key_file
from sfarm.resolver.sshfs import SSHFSTarget, mirror_mountpoint, mount, unmount
from sfarm.resolver.state import Board

log = logging.getLogger("sfarm.resolver")

CHECK_INTERVAL_S = 1.0
CHECK_TIMEOUT_S = 5.0
RECONNECT = Backoff(base_s=0.5, cap_s=10.0)  # a peer that fails is tried again after this


class MountLost(RunError):
    """The mount does not answer (the producer down or hung)."""


class MountKeeper(threading.Thread):
    def __init__(self, root: Path, peer: Peer, board: Board, stop: threading.Event) -> None:
        super().__init__(name=f"mount-{peer.node}", daemon=True)
        self.root = root
        self.peer = peer
        self.board = board
        self.stop = stop
        self.mountpoint = mirror_mountpoint(root, peer.node)
        self.target = SSHFSTarget(host=peer.host, user=peer.user or getpass.getuser(),
                                  node_root=peer.root,
                                  identity_file=str(root / key_file("sshfs")),
                                  known_hosts=str(root / KNOWN_HOSTS_FILE), port=peer.port,
                                  proxy_jump=",".join(hop.destination for hop in peer.jumps)
                                  or None)
        self.last_good: float | None = None

    def run(self) -> None:
        failures = 0
        try:
            while not self.stop.is_set():
                try:
                    self.mountpoint.mkdir(parents=True, exist_ok=True)
                    if mount(self.target, self.mountpoint):
                        log.info("mounted %s:%s/data at %s", self.peer.node, self.peer.root,
                                 self.mountpoint)
                    self._check()
                    failures = 0
                    self.stop.wait(CHECK_INTERVAL_S)
                except (RunError, OSError) as error:
                    message = error.message if isinstance(error, RunError) else str(error)
                    self.board.stale(self.peer.node, self.last_good or time.time(), message)
                    _unmount_quietly(self.mountpoint)
                    failures += 1
                    delay = RECONNECT.delay(failures)
                    log.warning("%s; mounting again in %.1f s", message, delay)
                    self.stop.wait(delay)
        finally:
            _unmount_quietly(self.mountpoint)

    def _check(self) -> None:
        """Read every followed manifest through the mount within CHECK_TIMEOUT_S."""
        results: dict[str, object] = {}

        def read_all() -> None:
            try:
                for dataset_id in self.peer.datasets:
                    results[dataset_id] = load_manifest(self.root, dataset_id,
                                                        mirror_of=self.peer.node,
                                                        with_partitions=False)
            except (OSError, RunError) as error:
                results["error"] = error

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        reader.join(CHECK_TIMEOUT_S)
        if reader.is_alive():
            raise MountLost(f"the mount of node {self.peer.node} did not answer within "
                            f"{CHECK_TIMEOUT_S:g} s")
        if "error" in results:
            raise MountLost(f"the mount of node {self.peer.node} failed: {results['error']}")
        self.last_good = time.time()
        for dataset_id in self.peer.datasets:
            manifest = results.get(dataset_id)
            last_ts = getattr(manifest, "last_ts", None)
            rows = getattr(manifest, "rows", 0)
            self.board.update(self.peer.node, dataset_id, last_ts=last_ts, rows=rows,
                              stale_since=None, error=None)


def _unmount_quietly(mountpoint: Path) -> None:
    try:
        unmount(mountpoint)
    except (RunError, OSError) as error:
        log.warning("cannot unmount %s: %s", mountpoint, error)
