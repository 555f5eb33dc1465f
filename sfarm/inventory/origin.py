"""The node root a command runs in: what lets any node of a deployed network manage it.

Deploy writes `node.json` into every node root, beside the farm's `inventory.toml`: the farm,
network and node the root belongs to, whether that node is on the machine that deployed it
(`host = "local"`), and the folder of the inventory it was deployed from (a local node's
relative `base_dir` is relative to that folder, not to the node root). A command given no
inventory (no -i, no $SFARM_INVENTORY, no ./sfarm.toml) uses the node root it runs in: the
current directory or one of its parents, else the root whose venv runs this sfarm.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from sfarm.errors import UsageError
from sfarm.inventory.locate import INVENTORY_FILE, NODE_FILE, find_node_root, is_node_root

__all__ = ["INVENTORY_FILE", "NODE_FILE", "NodeOrigin", "find_node_root", "is_node_root",
           "read_origin"]


class NodeOrigin(BaseModel):
    """Which node a node root is, as deploy wrote it (`node.json`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    farm: str
    network: str
    node: str
    local: bool  # host = "local": the node lives on the machine that deployed it
    inventory_dir: str  # where the inventory was deployed from (on that machine)

    def to_json(self) -> bytes:
        return (self.model_dump_json(indent=1) + "\n").encode()


def read_origin(root: Path) -> NodeOrigin | None:
    """The node `root` is (None when it holds no node.json: no node root)."""
    path = root / NODE_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        return NodeOrigin.model_validate_json(text)
    except ValidationError:
        raise UsageError(f"{path} is damaged: it does not say which node this root is",
                         hint="run `sfarm deploy` from a machine that holds the inventory "
                              "to write it again") from None
