"""The resolver process of a node: one follower per peer, the board on disk, until stopped.

supervisord runs it (`sfarm worker resolver --root ROOT`) on every node whose routes name a
peer; it reads `routes.json` once (a deploy that changes the routes restarts it).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from sfarm.data.layout import MANIFEST_NAME, MIRROR_DIR, dataset_dir
from sfarm.data.reader import load_manifest
from sfarm.resolver.follow import Follower
from sfarm.resolver.link import peer_link, stop_pulls
from sfarm.resolver.mounted import MountKeeper
from sfarm.resolver.routes import Routes
from sfarm.resolver.state import WRITE_INTERVAL_S, Board, InputState

log = logging.getLogger("sfarm.resolver")


def _unmount_left_over(root: Path, node: str) -> None:
    from sfarm.resolver.sshfs import is_mounted, mirror_mountpoint, unmount

    mountpoint = mirror_mountpoint(root, node)
    if is_mounted(mountpoint):
        unmount(mountpoint)


def initial_inputs(root: Path, routes: Routes) -> list[InputState]:
    """Each followed dataset as its mirror holds it now (before any pull)."""
    states = []
    for peer in routes.peers:
        for dataset_id in peer.datasets:
            # A mount is not read here: it may hang until its keeper finds it dead.
            manifest = None if peer.transport == "sshfs" else load_manifest(
                root, dataset_id, mirror_of=peer.node, with_partitions=False)
            states.append(InputState(id=dataset_id, source_node=peer.node,
                                     last_ts=manifest.last_ts if manifest else None,
                                     rows=manifest.rows if manifest else 0))
    return states


def drop_superseded_mirrors(root: Path, routes: Routes) -> list[str]:
    """Remove the mirrors of datasets that another node now produces (a producer task moved):
    two mirrors of one dataset would leave its readers guessing which is current. Mirrors of
    datasets this node does not follow (a manual `data pull`) are left alone, and so are
    mounts (transport = "sshfs": the producer's own files)."""
    source = {dataset_id: peer.node for peer in routes.peers for dataset_id in peer.datasets}
    mirror = root / MIRROR_DIR
    nodes = sorted(entry.name for entry in mirror.iterdir()) if mirror.is_dir() else []
    dropped = []
    for node in nodes:
        if os.path.ismount(mirror / node):
            continue
        for dataset_id, producer in sorted(source.items()):
            directory = dataset_dir(root, dataset_id, mirror_of=node)
            if producer != node and (directory / MANIFEST_NAME).exists():
                shutil.rmtree(directory)
                log.info("removed mirror/%s/%s: node %s produces it now", node, dataset_id,
                         producer)
                dropped.append(f"{node}/{dataset_id}")
    return dropped


def run_resolver(root: Path, routes: Routes, stop: threading.Event) -> None:
    """Follow every peer of `routes` (rsync pulls, or an sshfs mount) until `stop` is set."""
    drop_superseded_mirrors(root, routes)
    board = Board(root, initial_inputs(root, routes))
    followers: list[threading.Thread] = []
    for peer in routes.peers:
        if peer.transport == "sshfs":
            followers.append(MountKeeper(root, peer, board, stop))
        else:
            _unmount_left_over(root, peer.node)  # the node read it with sshfs before
            followers.append(Follower(root, peer_link(root, peer), peer.datasets, board, stop))
    for follower in followers:
        follower.start()
    log.info("following %s", ", ".join(f"{peer.node} ({len(peer.datasets)} datasets)"
                                        for peer in routes.peers) or "no peer")
    while not stop.wait(WRITE_INTERVAL_S):
        board.write()  # a fresh file says the resolver runs
    stop_pulls()  # in their own process groups: nobody else would end them
    for follower in followers:
        follower.join(timeout=5)
    board.write()
