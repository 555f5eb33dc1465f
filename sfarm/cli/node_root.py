"""Which node root a data command or a backtest works on: `--root DIR`, or `--node NAME` found
from the inventory (`-i`/`-n`, as every farm command), so nobody has to work out
`<base_dir>/<network>/<node>`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sfarm.cli.completion import complete_nodes
from sfarm.errors import UsageError

DataRootOption = Annotated[
    Path | None,
    typer.Option("--root", help="Data root: the directory that holds data/ (a node root). "
                                "Default: the current directory, unless --node says."),
]
NodeRootOption = Annotated[
    str | None,
    typer.Option("--node", help="Work on this node's root, found from the inventory (-i, -n) "
                                "as every farm command finds it; a node on this machine.",
                 autocompletion=complete_nodes),
]


def node_root(root: Path | None, node: str | None, inventory: Path | None,
              network: str | None) -> Path:
    """The root a command works on: `root`, or node `node`'s of the inventory's network (a
    node on this machine: an SSH node's datasets are read there, or pulled here first), or
    the current directory."""
    if node is None:
        return root if root is not None else Path(".")
    if root is not None:
        raise UsageError("--root and --node both name a root: give one of them")
    # The inventory loads only for --node (strategy files, planning): not for a plain --root.
    from sfarm.inventory import load_inventory
    from sfarm.inventory.problems import did_you_mean, known_names
    from sfarm.remote.deploy import local_root

    loaded = load_inventory(inventory)
    network = loaded.select_network(network)
    specs = {spec.name: spec for spec in loaded.nodes(network)}
    spec = specs.get(node)
    if spec is None:
        raise UsageError(f"no node {node!r} in network {network!r} of {loaded.path}",
                         hint=did_you_mean(node, specs) or known_names("nodes", specs))
    if not spec.is_local:
        raise UsageError(
            f"node {node!r} is reached over SSH ({spec.host}): this command reads a root on "
            "this machine",
            hint=f"pull its datasets here (sfarm data pull {node} --root DIR) and use --root "
                 f"DIR, or run the command on {spec.host}")
    return local_root(loaded, spec)
