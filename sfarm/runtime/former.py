"""The nodes of the network as the last deploy declared them, and the former ones: nodes an
earlier deploy declared that a later inventory no longer lists. Their workers may still run
(nothing stopped them), so every node of the network remembers how to reach them, in
`network.json` of its root (0600, connection fields only: sfarm.runtime.protocol.NodeAddress),
until `sfarm down --node NAME` stopped them and made the nodes forget them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

from sfarm.data.fsio import write_atomic
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import NodeAddress, StepResult

NETWORK_FILE = "network.json"
FORMER_STEP = "former node"  # the step apply gives each former node: "former node NAME"


class NetworkRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeAddress] = []
    former: list[NodeAddress] = []


def read_record(root: NodeRoot) -> NetworkRecord:
    """The node's record; an empty one before the first deploy, or when it cannot be read (it
    is only a memory of what was: losing it costs the notes about former nodes)."""
    try:
        return NetworkRecord.model_validate_json((root.path / NETWORK_FILE).read_bytes())
    except (OSError, ValidationError):
        return NetworkRecord()


def _write(root: NodeRoot, record: NetworkRecord) -> None:
    write_atomic(root.path, NETWORK_FILE, record.model_dump_json(indent=1).encode())


def declared(old: NetworkRecord, nodes: tuple[NodeAddress, ...]) -> NetworkRecord:
    """The record after a deploy that declares `nodes` (pure): the nodes known before and not
    declared now become former nodes (as last declared), a node declared again is no longer
    one."""
    names = {node.name for node in nodes}
    former = {node.name: node for node in old.former if node.name not in names}
    former |= {node.name: node for node in old.nodes if node.name not in names}
    return NetworkRecord(nodes=list(nodes), former=sorted(former.values(),
                                                          key=lambda node: node.name))


def record_network(root: NodeRoot, nodes: tuple[NodeAddress, ...],
                   dry_run: bool) -> list[StepResult]:
    """Remember the network's `nodes` (apply_deployment's step), and one step per former node
    (status "ok": nothing here changes about it) that `sfarm up` turns into a note."""
    old = read_record(root)
    new = declared(old, nodes)
    changed = new != old
    if changed and not dry_run:
        _write(root, new)
    step = StepResult(f"file {NETWORK_FILE}", "changed" if changed else "ok",
                      "would write" if changed and dry_run else "")
    return [step] + [StepResult(f"{FORMER_STEP} {node.name}", "ok",
                                f"host {node.host}: declared by an earlier deploy, no longer "
                                "in the inventory") for node in new.former]


def forget_former(root: NodeRoot, names: list[str]) -> list[NodeAddress]:
    """Forget the former nodes `names` (stopped: nothing of theirs runs); the ones left."""
    old = read_record(root)
    kept = [node for node in old.former if node.name not in names]
    if len(kept) != len(old.former):
        _write(root, NetworkRecord(nodes=old.nodes, former=kept))
    return kept
