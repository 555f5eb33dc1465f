"""The inventory as typed, validated data (SPEC section 3).

These models check each value on its own. The task and exchange tables are the models of
`sfarm.tasks`, which the engines read; here an indicators task's specs must also parse (the spec
language is `sfarm.indicators`, which sits above `sfarm.tasks`). Checks across sections (a node
naming an unknown task, a task naming an unknown exchange) live in `sfarm.inventory.checks`; the
dataset graph lives in `sfarm.plan`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Discriminator, Field, Tag

from sfarm.indicators.spec import IndicatorSpecError, parse_spec
from sfarm.printable import Printable
from sfarm.tasks import (
    Exchange,
    IndicatorsTask,
    MineTask,
    Name,
    NonEmptyUnique,
    Strict,
    TradeTask,
)


def _check_indicator(value: str) -> str:
    try:
        parse_spec(value)
    except IndicatorSpecError as error:
        raise ValueError(str(error)) from None
    return value


def _each_study_once(specs: list[str]) -> list[str]:
    """Two spellings of one study (`rsi(14)`, `rsi( 14 )`) would produce one dataset twice."""
    seen: dict[str, str] = {}
    for text in specs:
        key = parse_spec(text).key
        if key in seen:
            raise ValueError(f"{text!r} is the same indicator as {seen[key]!r} (dataset key "
                             f"{key}): list it once")
        seen[key] = text
    return specs


class CheckedIndicatorsTask(IndicatorsTask):
    """An `indicators` task as the inventory reads it: each spec must parse, each study once
    (the engines get this model, an IndicatorsTask)."""

    indicators: Annotated[list[Annotated[str, AfterValidator(_check_indicator)]],
                          Field(min_length=1), NonEmptyUnique, AfterValidator(_each_study_once)]


def _ssh_word(value: str) -> str:
    """A host, user or jump host: one word that ssh and rsync cannot read as an option."""
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-': ssh would read it as an option")
    if any(char.isspace() for char in value):
        raise ValueError(f"{value!r} contains a space")
    return value


SshWord = Annotated[Printable, AfterValidator(_ssh_word)]


def _task_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("kind")
    return getattr(value, "kind", None)


InventoryTask = Annotated[
    Annotated[MineTask, Tag("mine")]
    | Annotated[CheckedIndicatorsTask, Tag("indicators")]
    | Annotated[TradeTask, Tag("trade")],
    Discriminator(_task_kind),
]


class Farm(Strict):
    name: Name = "farm"


Transport = Literal["rsync", "sshfs"]


class Defaults(Strict):
    """Node settings every node inherits; a node may override any of them."""

    user: SshWord | None = None
    port: int = Field(22, ge=1, le=65535)
    base_dir: Printable = "~/sfarm"
    python: Printable = "python3"
    transport: Transport = "rsync"
    identity_file: Printable | None = None
    proxy_jump: SshWord | None = None
    offline: bool = False


class Node(Strict):
    host: SshWord = Field(min_length=1)
    tasks: Annotated[list[Name], NonEmptyUnique] = []
    user: SshWord | None = None
    port: int | None = Field(None, ge=1, le=65535)
    base_dir: Printable | None = None
    python: Printable | None = None
    transport: Transport | None = None
    identity_file: Printable | None = None
    proxy_jump: SshWord | None = None
    offline: bool | None = None

    @property
    def is_local(self) -> bool:
        return self.host == "local"


class Network(Strict):
    nodes: dict[Name, Node] = Field(min_length=1)


class Inventory(Strict):
    version: Literal[1]
    farm: Farm = Farm()
    defaults: Defaults = Defaults()
    exchanges: dict[Name, Exchange] = {}
    tasks: dict[Name, InventoryTask] = {}
    networks: dict[Name, Network] = Field(min_length=1)


# Where a model sits in the document, for "unknown key ... did you mean" messages.
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "": Inventory,
    "farm": Farm,
    "defaults": Defaults,
    "exchanges.*": Exchange,
    "tasks.*.mine": MineTask,
    "tasks.*.indicators": CheckedIndicatorsTask,
    "tasks.*.trade": TradeTask,
    "networks.*": Network,
    "networks.*.nodes.*": Node,
}
