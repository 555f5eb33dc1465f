"""Shell completion of the names commands take: nodes and tasks from the inventory, datasets
from a node root. typer calls these while it completes a word (`sfarm --install-completion`).

They answer from the files alone, fast: the inventory is found as every command finds it
(-i, $SFARM_INVENTORY, ./sfarm.toml, the node root; sfarm.inventory.locate) and read with
tomllib, not validated (no models, no strategy files, no plan); datasets are the directories
of the root that hold a manifest, as `sfarm data ls` lists them. A completer never fails: an
inventory it cannot find or read completes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from sfarm.errors import SfarmError
from sfarm.inventory.locate import find_inventory


class CompletionContext(Protocol):
    """What a completer reads of its context: typer's, or sfarm.cli.quick_complete's (which
    answers without importing typer, so this module imports nothing heavy)."""

    @property
    def params(self) -> dict[str, Any]: ...

    @property
    def parent(self) -> CompletionContext | None: ...


def _given(ctx: CompletionContext, name: str) -> Any:
    """The value of parameter `name` given so far, on this command or a group above it."""
    context: CompletionContext | None = ctx
    while context is not None:
        value = context.params.get(name)
        if value is not None:
            return value
        context = context.parent
    return None


def _inventory(ctx: CompletionContext) -> dict[str, Any]:
    import tomllib  # when completing: the commands that register completers need not load it

    try:
        path = find_inventory(_given(ctx, "inventory"))
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, SfarmError, tomllib.TOMLDecodeError, RecursionError):
        return {}


def _table(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _matching(names: Iterable[str], incomplete: str) -> list[str]:
    return sorted({name for name in names if name.startswith(incomplete)})


def _node_tables(document: dict[str, Any], network: str | None) -> list[dict[str, Any]]:
    """The `nodes` table of `network` (of every network when None) in an inventory's TOML."""
    networks = _table(document, "networks")
    chosen = [networks.get(network)] if network is not None else list(networks.values())
    return [_table(table, "nodes") for table in chosen if isinstance(table, dict)]


def node_names(document: dict[str, Any], network: str | None) -> list[str]:
    """The nodes of `network` (of every network when None) in an inventory's TOML."""
    return [name for nodes in _node_tables(document, network) for name in nodes]


def complete_nodes(ctx: CompletionContext, incomplete: str) -> list[str]:
    return _matching(node_names(_inventory(ctx), _given(ctx, "network")), incomplete)


def node_tasks(document: dict[str, Any], node: str, network: str | None) -> list[str] | None:
    """The tasks `node` runs in an inventory's TOML (in `network`, or in any); None when no
    network declares it."""
    tables = [_table(nodes, node) for nodes in _node_tables(document, network) if node in nodes]
    if not tables:
        return None
    return [task for table in tables if isinstance(table.get("tasks"), list)
            for task in table["tasks"] if isinstance(task, str)]


def _tasks_here(ctx: CompletionContext, document: dict[str, Any]) -> list[str]:
    """The tasks of the node given so far (NODE, --node), else every task of the inventory."""
    node = _given(ctx, "node")
    tasks = node_tasks(document, node, _given(ctx, "network")) if node is not None else None
    return list(_table(document, "tasks")) if tasks is None else tasks


def complete_tasks(ctx: CompletionContext, incomplete: str) -> list[str]:
    return _matching(_tasks_here(ctx, _inventory(ctx)), incomplete)


def complete_log_names(ctx: CompletionContext, incomplete: str) -> list[str]:
    """What `sfarm logs NODE` reads: the node's tasks and the emulators it serves (one for each
    exchange with `emulate = true` that its tasks use)."""
    # here, not at the top: sfarm.status.services loads the status models' package
    from sfarm.status.services import SIM_SERVICE_PREFIX

    document = _inventory(ctx)
    tasks = _tasks_here(ctx, document)
    exchanges = _table(document, "exchanges")
    served = {_table(_table(document, "tasks"), task).get("exchange") for task in tasks}
    emulators = [f"{SIM_SERVICE_PREFIX}{name}" for name in served
                 if isinstance(name, str) and _table(exchanges, name).get("emulate") is True]
    return _matching([*tasks, *emulators], incomplete)


def dataset_ids(root: Path) -> Iterator[str]:
    """The ids of the datasets under `root`: its own (data/) and its mirrors' (mirror/NODE/)."""
    # here, not at the top: the layout's imports (dataclasses) would slow every completion
    from sfarm.data.layout import DATA_DIR, MANIFEST_NAME, MIRROR_DIR

    bases = [root / DATA_DIR]
    mirror = root / MIRROR_DIR
    if mirror.is_dir():
        bases += sorted(entry for entry in mirror.iterdir() if entry.is_dir())
    for base in bases:
        for directory, subdirs, files in os.walk(base):
            if MANIFEST_NAME in files:
                subdirs.clear()  # a dataset's directory holds partitions, not datasets
                yield Path(directory).relative_to(base).as_posix()


def complete_datasets(ctx: CompletionContext, incomplete: str) -> list[str]:
    root = _given(ctx, "root")
    node = _given(ctx, "node")
    if root is None and node is not None:
        # --node names a root through the whole inventory (its base_dir and defaults): the
        # one slow completion, and still the same root the command will read.
        from sfarm.cli.node_root import node_root

        try:
            root = node_root(None, node, _given(ctx, "inventory"), _given(ctx, "network"))
        except SfarmError:
            return []
    return _matching(dataset_ids(Path(root or ".")), incomplete)
