"""Read an inventory file: find it, parse it, validate it, and resolve its nodes.

This is the I/O edge of the inventory package: it reads the TOML file, the strategy files that
trade tasks name (with `sfarm.trading.strategy`, so a strategy's errors are the inventory's),
checks `secrets.toml`'s mode and plans every network (`sfarm.plan`). Everything it finds wrong
is raised at once as an InventoryError (exit status 2) with file, line and key path.
"""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from sfarm.errors import UsageError
from sfarm.exchanges.ids import exchange_ids
from sfarm.inventory.checks import Declared, check_inventory
from sfarm.inventory.locate import INVENTORY_FILE, find_inventory
from sfarm.inventory.model import Inventory
from sfarm.inventory.origin import NodeOrigin, read_origin
from sfarm.inventory.partial import valid_part
from sfarm.inventory.problems import InventoryError, Problem, did_you_mean, known_names
from sfarm.inventory.source import SourceIndex
from sfarm.inventory.validation import problems_from_validation
from sfarm.plan import plan_network
from sfarm.tasks import TradeTask

SECRETS_FILE = "secrets.toml"


@dataclass(frozen=True)
class NodeSpec:
    """A node with the defaults applied: everything needed to reach it and lay out its root."""

    network: str
    name: str
    host: str
    tasks: tuple[str, ...]
    user: str | None
    port: int
    base_dir: str
    python: str
    transport: str
    identity_file: str | None
    proxy_jump: str | None
    offline: bool = False  # install sfarm with no package index on the node (a wheelhouse)

    @property
    def is_local(self) -> bool:
        return self.host == "local"

    @property
    def root(self) -> PurePosixPath:
        """`<base_dir>/<network>/<node>` as written (a leading ~ is expanded on the node)."""
        return PurePosixPath(self.base_dir) / self.network / self.name


@dataclass(frozen=True)
class LoadedInventory:
    path: Path
    model: Inventory
    # Indicator specs each trade task's strategy declares, read from its strategy file.
    strategy_indicators: dict[str, tuple[str, ...]]
    # The node whose root holds this inventory (deploy placed it there), None for an
    # operator's own inventory.
    origin: NodeOrigin | None = None

    @property
    def inventory_dir(self) -> Path:
        """The folder of the inventory as the operator wrote it (also when this is the copy
        deploy placed in a node root): a local node's relative base_dir is relative to it."""
        if self.origin is not None:
            return Path(self.origin.inventory_dir)
        return self.path.parent.resolve()

    @property
    def networks(self) -> list[str]:
        return list(self.model.networks)

    def select_network(self, name: str | None) -> str:
        """The network a command acts on: the one named, or the only one (in a node root: the
        node's)."""
        if name is None:
            if self.origin is not None and self.origin.network in self.model.networks:
                return self.origin.network
            if len(self.networks) == 1:
                return self.networks[0]
            raise UsageError(
                f"{self.path} has {len(self.networks)} networks; choose one with -n/--network",
                hint=f"networks: {', '.join(self.networks)}",
            )
        if name not in self.model.networks:
            raise UsageError(f"no network {name!r} in {self.path}",
                             hint=did_you_mean(name, self.networks)
                             or known_names("networks", self.networks))
        return name

    def nodes(self, network: str) -> list[NodeSpec]:
        defaults = self.model.defaults
        return [
            NodeSpec(
                network=network, name=name, host=node.host, tasks=tuple(node.tasks),
                user=node.user if node.user is not None else defaults.user,
                port=node.port if node.port is not None else defaults.port,
                base_dir=node.base_dir if node.base_dir is not None else defaults.base_dir,
                python=node.python if node.python is not None else defaults.python,
                transport=node.transport if node.transport is not None else defaults.transport,
                identity_file=node.identity_file if node.identity_file is not None
                else defaults.identity_file,
                proxy_jump=node.proxy_jump if node.proxy_jump is not None
                else defaults.proxy_jump,
                offline=node.offline if node.offline is not None else defaults.offline,
            )
            for name, node in self.model.networks[network].nodes.items()
        ]

    def strategy_path(self, task: TradeTask) -> Path:
        return (self.path.parent / task.strategy).resolve()


StrategyReader = Callable[[Path], tuple[str, ...]]


def read_strategy_indicators(path: Path) -> tuple[str, ...]:
    # Imported on first use, not to break a cycle (sfarm.trading never imports the inventory)
    # but for start-up time: the strategy model (~30 ms of pydantic class building) is for
    # commands that check strategies.
    from sfarm.trading.strategy import load_strategy

    # all_indicators: a class strategy (class = "module:Class") declares its own as well
    return tuple(load_strategy(path).all_indicators())


def read_declared_indicators(path: Path) -> tuple[str, ...]:
    """The indicators a strategy file declares, read with tomllib and not checked: for commands
    that only look at a farm (status), which need its plan but not the strategy model. The same
    list as `read_strategy_indicators` of a valid file."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as error:
        raise UsageError(f"cannot read strategy file {path}: {error}", file=path) from None
    strategy = document.get("strategy")
    indicators = strategy.get("indicators", []) if isinstance(strategy, dict) else []
    return tuple(spec for spec in indicators if isinstance(spec, str)) \
        if isinstance(indicators, list) else ()


def load_inventory(path: Path | None = None,
                   strategy_reader: StrategyReader = read_strategy_indicators) -> LoadedInventory:
    """Load and fully check an inventory; raise InventoryError listing every problem."""
    path = find_inventory(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"{path}: cannot read the inventory: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start}): an inventory is a "
                         "TOML file", hint="see docs/inventory.md for the format") from None
    raw = _parse_toml(path, text)
    index = SourceIndex.of(text)

    def located(problems: list[Problem], value_of: Callable[[Problem], Any]) -> InventoryError:
        return InventoryError([problem.located(path, index.line_of(problem.path, value_of(problem)))
                               for problem in problems])

    # Every problem at once: the values' problems, then the checks across sections on the
    # entries whose values are valid (sfarm.inventory.partial).
    problems: list[Problem] = []
    try:
        model = Inventory.model_validate(raw)
    except ValidationError as error:
        problems = problems_from_validation(error, raw)
        part = valid_part(raw, error)
        if part is None:
            raise located(problems, lambda p: _value_at(raw, p.path)) from None
        model = part
    whole = not problems

    problems += check_inventory(model, exchange_ids(), Declared.of(raw))
    strategies, strategy_problems = _read_strategies(path, model, strategy_reader)
    problems += strategy_problems
    problems += _check_secrets_file(path.parent / SECRETS_FILE)
    if problems and not whole:
        # The plan of a part would miss the producers that were left out.
        raise located(problems, lambda p: _value_at(raw, p.path))
    origin = read_origin(path.parent) if path.name == INVENTORY_FILE else None
    loaded = LoadedInventory(path=path, model=model, strategy_indicators=strategies,
                             origin=origin)

    # The plan's errors are the inventory's errors too; a missing producer is only a
    # consequence of a misspelt name (a node's task, a task's exchange: dataset ids hold it).
    consequence = {"missing-producer"} if _names_unknown(model) else set()
    problems += [Problem(problem.path, problem.message, problem.hint)
                 for network in loaded.networks
                 for problem in plan_network(loaded, network).problems
                 if problem.severity == "error" and problem.code not in consequence]
    if problems:
        raise located(problems, lambda p: _value_at(raw, p.path))
    return loaded


def _names_unknown(model: Inventory) -> bool:
    """A node names a task, or a task an exchange, that the inventory does not declare."""
    return any(task.exchange not in model.exchanges for task in model.tasks.values()) or any(
        task not in model.tasks for network in model.networks.values()
        for node in network.nodes.values() for task in node.tasks)


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise UsageError(f"{path}: not valid TOML: arrays or tables nested too deeply",
                         hint="see docs/inventory.md for the format") from None
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        position = _TOML_POSITION.search(message)
        line = int(position.group(1)) if position else None
        reason = _TOML_POSITION.sub("", message).strip()
        where = f"{path}:{line}" if line else str(path)
        snippet = ""
        if line and 0 < line <= len(text.splitlines()):
            snippet = f"\n    {line} | {text.splitlines()[line - 1]}"
        raise UsageError(f"{where}: not valid TOML: {reason}{snippet}",
                         hint=_TOML_HINTS.get(reason, "see docs/inventory.md for the format")) \
            from None


# tomllib's terse reasons for the commonest mistakes, said the way a person would fix them.
_TOML_HINTS = {
    "Illegal character '\\n'": "a string is not closed on this line: add the closing quote",
    "Unterminated string": "a string is not closed: add the closing quote",
    "Cannot overwrite a value": "a key is set twice, or a table declared twice: keep one",
    "Invalid value": 'strings need quotes, e.g. ccxt = "binance"',
}


def _value_at(raw: Any, path: tuple[str | int, ...]) -> Any:
    value = raw
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _read_strategies(path: Path, model: Inventory, reader: StrategyReader,
                     ) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    strategies: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for name, task in model.tasks.items():
        if not isinstance(task, TradeTask):
            continue
        strategy_file = (path.parent / task.strategy).resolve()
        if not strategy_file.is_file():
            what = ("is a directory, not a file" if strategy_file.is_dir() else
                    "is not a regular file" if strategy_file.exists() else "not found")
            problems.append(Problem(("tasks", name, "strategy"),
                                    f"strategy file {task.strategy!r} {what}",
                                    f"looked at {strategy_file}; paths are relative to the "
                                    "inventory"))
            continue
        try:
            strategies[name] = reader(strategy_file)
        except UsageError as error:
            problems.append(Problem(("tasks", name, "strategy"), error.message, error.hint))
    return strategies, problems


def _check_secrets_file(secrets: Path) -> list[Problem]:
    if not secrets.exists():
        return []
    mode = stat.S_IMODE(secrets.stat().st_mode)
    if mode & 0o077:
        return [Problem((), f"mode {mode:04o}: refused, secrets must be readable by their owner "
                            "only", f"run: chmod 600 {secrets}", file=secrets)]
    return []
