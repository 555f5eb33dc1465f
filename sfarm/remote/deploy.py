"""What each node of a network needs: its files, its supervised programs, its secrets.

Built on the controller from the inventory, then applied on the node by
`sfarm.runtime.node.apply_deployment` (in-process for a local node, over SSH for a remote one).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import tomli_w

from sfarm.errors import UsageError
from sfarm.exchanges.credentials import load_credentials
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.inventory.load import SECRETS_FILE
from sfarm.runtime.protocol import Deployment, NodeFile, Program
from sfarm.tasks import TradeTask

SIM_PROGRAM_PREFIX = "sim-"


def local_root(inventory: LoadedInventory, node: NodeSpec) -> Path:
    """A local node's root: `~` expanded, relative base_dir taken from the inventory's folder."""
    base = Path(os.path.expanduser(node.base_dir))
    if not base.is_absolute():
        base = inventory.path.parent.resolve() / base
    return base / node.network / node.name


def node_exchanges(inventory: LoadedInventory, node: NodeSpec) -> list[str]:
    """Exchanges this node's tasks use, in first-use order."""
    names = [inventory.model.tasks[task].exchange for task in node.tasks]
    return list(dict.fromkeys(names))


def programs_for(inventory: LoadedInventory, node: NodeSpec, root: Path,
                 python: str) -> tuple[Program, ...]:
    """A worker per task, plus the exchange emulator where an exchange asks for it."""
    programs = []
    for name in node_exchanges(inventory, node):
        exchange = inventory.model.exchanges[name]
        if exchange.emulate and exchange.url:
            address = urlsplit(exchange.url)
            programs.append(Program(f"{SIM_PROGRAM_PREFIX}{name}", [
                python, "-m", "sfarm", "sim", "serve",
                "--host", address.hostname or "127.0.0.1", "--port", str(address.port or 80)]))
    programs += [Program(task, [python, "-m", "sfarm", "worker", "run", "--root", str(root),
                                "--task", task])
                 for task in node.tasks]
    return tuple(programs)


def _relative_inside(path: str) -> str:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise UsageError(f"strategy path {path!r} must stay inside the inventory's folder",
                         hint="nodes receive strategies at the same relative path")
    return str(relative)


def node_secrets(inventory: LoadedInventory, node: NodeSpec,
                 environ: Mapping[str, str] | None = None) -> bytes | None:
    """secrets.toml for this node: only the credentials its tasks' exchanges name."""
    secrets_file = inventory.path.parent / SECRETS_FILE
    tables: dict[str, dict[str, str]] = {}
    for name in node_exchanges(inventory, node):
        prefix = inventory.model.exchanges[name].credentials
        if prefix is None or prefix in tables:
            continue
        credentials = load_credentials(prefix, secrets_file if secrets_file.exists() else None,
                                       environ=environ)
        table = {"api_key": credentials.api_key, "secret": credentials.secret}
        if credentials.password:
            table["password"] = credentials.password
        tables[prefix] = table
    return tomli_w.dumps(tables).encode() if tables else None


def build_deployment(inventory: LoadedInventory, node: NodeSpec, root: Path,
                     python: str | None = None) -> Deployment:
    """Everything `node` needs, with the worker commands rooted at `root`."""
    # Every strategy the inventory names, not only this node's: any node can manage (and so
    # must be able to validate) the whole farm.
    files = [NodeFile("inventory.toml", inventory.path.read_bytes())]
    strategies = {task.strategy: task for task in inventory.model.tasks.values()
                  if isinstance(task, TradeTask)}
    files += [NodeFile(_relative_inside(path), inventory.strategy_path(task).read_bytes())
              for path, task in sorted(strategies.items())]
    secrets = node_secrets(inventory, node)
    if secrets is not None:
        files.append(NodeFile(f"secrets/{SECRETS_FILE}", secrets, mode=0o600))
    # A local node runs the sfarm that runs this command; a remote one its own venv.
    interpreter = python or (sys.executable if node.is_local else str(root / "venv/bin/python"))
    return Deployment(
        network=node.network, node=node.name, files=tuple(files),
        programs=programs_for(inventory, node, root, interpreter),
        tasks={task: inventory.model.tasks[task].kind for task in node.tasks},
    )
