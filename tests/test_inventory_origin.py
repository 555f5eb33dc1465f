"""The node root a command runs in (sfarm.inventory.origin): found from the current directory
or the venv, its inventory used when no other is given, a local node's relative base_dir still
relative to where the operator's inventory was, and the nodes of the deploying machine refused
from a node elsewhere."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from sfarm.errors import UsageError
from sfarm.farm import Farm
from sfarm.inventory import load_inventory
from sfarm.inventory.origin import NODE_FILE, NodeOrigin, find_node_root, read_origin
from tests.fixtures.cli import sfarm_process
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.network import free_port

# Two networks of this machine, their nodes' base_dir relative to the inventory's folder.
INVENTORY = (head("origin", base_dir=False) + '\n[defaults]\nbase_dir = "nodes"\n'
             + SIM_EXCHANGE + mine_task() + """
[networks.test.nodes.lab]
host = "local"
tasks = ["mine"]

[networks.prod.nodes.desk]
host = "local"
tasks = ["mine"]
""")


def make_root(directory: Path, origin: NodeOrigin) -> Path:
    directory.mkdir(parents=True)
    (directory / NODE_FILE).write_bytes(origin.to_json())
    (directory / "inventory.toml").write_text("version = 1\n")
    return directory


ORIGIN = NodeOrigin(farm="f", network="test", node="lab", local=True, inventory_dir="/srv/f")


def test_the_node_root_is_found_from_the_directory_or_the_venv(tmp_path: Path) -> None:
    root = make_root(tmp_path / "nodes" / "test" / "lab", ORIGIN)
    (root / "data" / "candles").mkdir(parents=True)
    assert find_node_root(root, Path("/usr")) == root
    assert find_node_root(root / "data" / "candles", Path("/usr")) == root
    assert find_node_root(tmp_path, root / "venv") == root  # sfarm run from the root's venv
    assert find_node_root(tmp_path, tmp_path / "venv") is None
    assert read_origin(root) == ORIGIN and read_origin(tmp_path) is None


def test_a_damaged_node_file_names_itself(tmp_path: Path) -> None:
    root = make_root(tmp_path / "lab", ORIGIN)
    (root / NODE_FILE).write_text('{"farm": "f"')
    with pytest.raises(UsageError) as raised:
        read_origin(root)
    assert str(root / NODE_FILE) in raised.value.message and "sfarm deploy" in (
        raised.value.hint or "")


@pytest.fixture
def local_inventory() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="sfo-", dir="/tmp"))
    path = base / "sfarm.toml"
    path.write_text(INVENTORY.format(port=free_port()))
    try:
        yield path
    finally:
        for network in ("test", "prod"):
            sfarm_process("down", "-i", str(path), "-n", network, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_a_local_node_root_manages_its_network_with_the_inventory_deploy_placed_there(
        local_inventory: Path) -> None:
    deployed = sfarm_process("deploy", "-i", str(local_inventory), "-n", "test", "--json")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    root = local_inventory.parent / "nodes" / "test" / "lab"
    origin = read_origin(root)
    assert origin is not None and (origin.node, origin.local) == ("lab", True)
    assert origin.inventory_dir == str(local_inventory.parent.resolve())
    # No -i, no ./sfarm.toml: the root's inventory, the root's network (the inventory has two),
    # and the node's own root, although base_dir is relative to the operator's folder.
    status = sfarm_process("status", "--json", cwd=root / "data")
    document = json.loads(status.stdout)
    assert document["network"] == "test", status.stderr
    (node,) = document["nodes"]
    assert (node["name"], node["reachable"]) == ("lab", True), node
    assert [task["name"] for task in node["tasks"]] == ["mine"]
    assert not (root / "nodes").exists()  # no root made inside the root
    # Away from any root and without an inventory: the lookup's last step says so.
    lost = sfarm_process("status", cwd=local_inventory.parent / "nodes")
    assert lost.returncode == 2 and "run it in a deployed node's root" in lost.stderr


def test_the_machines_own_nodes_are_refused_from_a_node_elsewhere(
        local_inventory: Path) -> None:
    loaded = load_inventory(local_inventory)
    elsewhere = replace(loaded, origin=NodeOrigin(
        farm="origin", network="test", node="quant-1", local=False,
        inventory_dir=str(local_inventory.parent)))
    status = Farm(elsewhere, "test").status()
    (node,) = status.nodes
    assert node.reachable is False and node.error is not None
    assert 'node lab is host = "local"' in node.error
    assert "this command runs on node quant-1" in node.error
    assert not (local_inventory.parent / "nodes").exists()  # nothing was made for it
