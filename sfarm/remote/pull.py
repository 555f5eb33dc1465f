"""`sfarm data pull`: a node's datasets into `mirror/<node>/<id>/` here, with the operator's own
connection (this machine, or SSH), the way the node's resolvers pull them.

The pull goes through the producer's gate (sfarm.resolver.gate) as the resolver's do, only
started by the operator's login instead of the farm key's forced command: the gate takes a
hard-link snapshot of one committed version under the dataset's lock and serves it with
`rrsync -ro`, so the producer's writer waits for the snapshot (a millisecond), never for the
transfer; sfarm.resolver.link.pull then checks and commits the copy (sfarm.data.install_staged),
moving only new files.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import MANIFEST_NAME, DatasetNotFound, check_dataset_id
from sfarm.remote.connection import Connection, LocalConnection
from sfarm.remote.openssh import rsync_shell
from sfarm.resolver.link import PeerLink, peer_link
from sfarm.resolver.link import pull as pull_through_gate
from sfarm.resolver.routes import Peer

# On the node: its venv's python when it has one, else its `python`, runs the gate for the
# words rsync appends (`--server --sender ... . ROOT/data/ID/`).
GATE_LAUNCHER = ('py="$1"; shift; [ -x "$py" ] || py="$1"; shift; root="$1"; shift; '
                 'exec "$py" -I -m sfarm.resolver.local_rsh --root "$root" local rsync "$@"')


@dataclass(frozen=True)
class PullResult:
    dataset_id: str
    node: str
    rows: int
    last_ts: int | None
    files_transferred: int
    bytes_transferred: int
    changed: bool  # False when the mirror already held this manifest

    def to_json(self) -> dict[str, object]:
        return {"id": self.dataset_id, "node": self.node, "rows": self.rows,
                "last_ts": self.last_ts, "files_transferred": self.files_transferred,
                "bytes_transferred": self.bytes_transferred, "changed": self.changed}


def pull(connection: Connection, node_root: str, node: str, dataset_id: str,
         local_root: Path, python: str = "python3") -> PullResult:
    """Bring `dataset_id` of the node root `node_root` (on `connection`'s machine) into
    `local_root/mirror/<node>/<id>`. `python` is the node's interpreter when its root has no
    venv (deploy makes one)."""
    dataset_id = check_dataset_id(dataset_id)
    if connection.get(posixpath.join(node_root, "data", dataset_id, MANIFEST_NAME)) is None:
        raise DatasetNotFound(f"no dataset {dataset_id} on node {node}",
                              hint=f"`sfarm data pull {node}` without ids lists what it has")
    with _gate_link(connection, node_root, node, dataset_id, python) as link:
        installed = pull_through_gate(link, dataset_id, local_root)
    return PullResult(dataset_id, node, installed.manifest.rows, installed.manifest.last_ts,
                      installed.files, installed.bytes, installed.changed)


@contextlib.contextmanager
def _gate_link(connection: Connection, node_root: str, node: str, dataset_id: str,
               python: str) -> Iterator[PeerLink]:
    if isinstance(connection, LocalConnection):
        yield peer_link(Path(node_root), Peer(node=node, host="local", root=node_root,
                                              datasets=(dataset_id,)))
        return
    from sfarm.remote.ssh import SSHConnection  # paramiko loads only for an SSH node

    if not isinstance(connection, SSHConnection):
        raise TypeError(f"cannot pull over {type(connection).__name__}")
    launcher = shlex.join(["sh", "-c", GATE_LAUNCHER, "sfarm-pull",
                           posixpath.join(node_root, "venv/bin/python"), python, node_root])
    with rsync_shell(connection.openssh_settings(), bool(connection.proxy_jump)) as rsh:
        yield PeerLink(node, node_root, tuple(shlex.split(rsh)), connection.remote_host,
                       rsync_path=launcher)
