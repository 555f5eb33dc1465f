"""The node protocol's messages: every request a controller makes of a node and every reply,
as typed models (one request model per operation, told apart by `op`), and the values they carry.

sfarm.runtime.envelope carries them as JSON bytes with the protocol's version. Pure: no I/O
here, and nothing heavier than pydantic is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from sfarm.resolver.routes import FarmKeyInfo
from sfarm.runtime.limits import SESSION_TRADES_MAX
from sfarm.status import ServiceStatus, TaskStatus

# File contents travel as base64 inside the JSON; unknown keys are an error, not ignored.
# A model's validator is built when first used (defer_build): a command sends one request and
# reads one reply, and building all ~30 at import was about a third of this module's import.
_WIRE = ConfigDict(extra="forbid", ser_json_bytes="base64", val_json_bytes="base64",
                   defer_build=True)

StepStatus = Literal["ok", "changed", "failed"]
# The detail of a "keep armed TASK" step: a disarming with `stale_only` left its arm (the
# farm tells the operator so instead of "places no order").
KEPT_ARMED = "armed worker"
Action = Literal["start", "stop", "restart"]


# --- values carried by requests and replies ---------------------------------------------------
# Dataclasses (pydantic's, validated on construction): built positionally all over sfarm.


@dataclass(frozen=True, config=_WIRE)
class StepResult:
    """One step of a command on a node: ok (nothing to do), changed, or failed."""

    step: str
    status: StepStatus
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"step": self.step, "status": self.status, "detail": self.detail}


@dataclass(frozen=True, config=_WIRE)
class NodeFile:
    path: str  # relative to the node root
    content: bytes
    mode: int = 0o600  # a node root is its user's alone (sfarm.runtime.apply)


@dataclass(frozen=True, config=_WIRE)
class Program:
    """One supervised process: a task's worker or a service such as the exchange emulator."""

    name: str
    command: Annotated[Sequence[str], AfterValidator(tuple)]  # any sequence in, a tuple kept
    environment: dict[str, str] = Field(default_factory=dict)
    autostart: bool = True


@dataclass(frozen=True, config=_WIRE)
class AuthorizedKeyLine:
    """The one line of the node user's ~/.ssh/authorized_keys that ends with `marker`: `line`,
    or none at all when None (the farm key's forced command, sfarm.resolver.authorized)."""

    marker: str
    line: str | None = None


@dataclass(frozen=True, config=_WIRE)
class NodeAddress:
    """How to reach a node of the network and where its root is: the inventory's connection
    fields of the node (sfarm.inventory.NodeSpec without its tasks), never a secret. A local
    node's base_dir is absolute (a relative one is the inventory folder's)."""

    name: str
    host: str
    port: int
    base_dir: str
    python: str
    transport: str
    user: str | None = None
    identity_file: str | None = None
    proxy_jump: str | None = None
    offline: bool = False


@dataclass(frozen=True, config=_WIRE)
class Deployment:
    """Everything a node needs (built by the controller, sfarm.remote.deploy)."""

    network: str
    node: str
    files: tuple[NodeFile, ...]
    programs: tuple[Program, ...]
    tasks: dict[str, str] = Field(default_factory=dict)  # task name -> kind, for status
    absent: tuple[str, ...] = ()  # files of the root that must not exist (a farm key given up)
    # The node user's lines in ~/.ssh/authorized_keys, one per key kind (none: untouched).
    authorized: tuple[AuthorizedKeyLine, ...] = ()
    fuse: bool = False  # the node mounts peers with sshfs: check that it can
    # Exchanges whose emulator this node serves: their accounts are kept in its secrets/
    # (made there once, never sent: sfarm.runtime.emulator_account).
    emulators: tuple[str, ...] = ()
    # What the node should say it left as it was, and why (secrets not at hand where deploy ran).
    notices: tuple[str, ...] = ()
    # Every node of the network as this deploy declares it: the node remembers the nodes an
    # earlier deploy declared and this one does not (sfarm.runtime.former), so `up` can name
    # them and `down --node` reach them. None: record nothing (a deployment built by hand).
    network_nodes: tuple[NodeAddress, ...] | None = None


@dataclass(frozen=True, config=_WIRE)
class LogChunk:
    """Lines of a log and the offset to read on from (the file's size when read)."""

    lines: list[str]
    offset: int


class WireModel(BaseModel):
    """A message or value of the protocol: frozen, no unknown keys, bytes as base64."""

    model_config = ConfigDict(**_WIRE, frozen=True)


class DatasetSummary(WireModel):
    """A dataset under a node root, from its manifest alone (what the data resolver compares)."""

    id: str
    node: str | None = None  # the producer of a mirrored dataset; None: the node's own data
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    generation: int = 0
    updated_at: str | None = None
    error: str | None = None  # the manifest could not be read


class DatasetTail(WireModel):
    """The last rows of a dataset, column by column: `ts` (ms, oldest first) and every numeric
    column but ts, each as long as `ts` (None where a value is missing or not a number).
    `error` says why there are no rows to show (no such dataset, unreadable), never raised."""

    id: str
    ts: list[int] = Field(default_factory=list)
    columns: dict[str, list[float | None]] = Field(default_factory=dict)
    error: str | None = None


class TradeRow(WireModel):
    """A closed trade of a session (the columns of sfarm.trading.backtest.TRADE_COLUMNS, then
    its fees and why it exited, when the dataset has them)."""

    side: str
    entry_ts: int
    exit_ts: int
    entry_price: float
    exit_price: float
    size: float
    pnl: float
    fees: float | None = None
    reason: str | None = None


class SessionView(WireModel):
    """A trade session as its committed state and datasets show it (sfarm.runtime.views):
    `mode` paper, live or backtest (a backtest task's last run), `cash` the initial equity,
    `return_pct` in percent of it, `entry_price` None when flat (or not known: a backtest),
    `halted` why the kill switch stopped it, `max_drawdown` the deepest fall of its whole
    equity curve from a peak (a fraction, as backtest metrics give it), `equity_ts`/
    `equity_values` the equity curve downsampled (first and last points kept), `trades` the
    last closed trades oldest first of `trade_count` in all."""

    task: str
    mode: str
    strategy: str
    cash: float
    equity: float
    pnl: float
    return_pct: float
    position: float
    entry_price: float | None = None
    halted: str | None = None
    max_drawdown: float = 0.0
    last_ts: int | None = None
    equity_ts: list[int] = Field(default_factory=list)
    equity_values: list[float] = Field(default_factory=list)
    trades: list[TradeRow] = Field(default_factory=list)
    trade_count: int = 0


# --- requests: one model per operation, told apart by `op` ------------------------------------


class ApplyRequest(WireModel):
    """Make the node root match a deployment and (re)load its supervisord. With `dry_run`, only
    say what would change (a "changed" step: would change) and change nothing; with `boot`,
    also make the node's supervisord start at boot (sfarm.runtime.boot). Both default to
    False, so a request without them reads as before."""

    op: Literal["apply"] = "apply"
    deployment: Deployment
    dry_run: bool = False
    boot: bool = False
    operator: str = ""  # user@host of the command, for the node's audit log


class StatusRequest(WireModel):
    """The state of these tasks (name -> kind) from supervisord and their heartbeats."""

    op: Literal["status"] = "status"
    tasks: dict[str, str]


class ControlRequest(WireModel):
    op: Literal["control"] = "control"
    action: Action
    tasks: list[str]


class LiveRequest(WireModel):
    """Arm (or disarm) live trade tasks: see sfarm.trading.live_guard."""

    op: Literal["live"] = "live"
    tasks: list[str]
    armed: bool
    by: str = "sfarm start --live"  # the command that arms, for the record
    operator: str = ""  # user@host of the command, for the node's audit log
    # Disarming only: remove only the arms that name no running worker of their task (`up`:
    # a worker it left running keeps its arming, one it restarted has a new pid).
    stale_only: bool = False


class ResumeRequest(WireModel):
    """Let a trade task's session halted by its kill switch trade again (its worker stopped)."""

    op: Literal["resume"] = "resume"
    task: str
    operator: str = ""  # user@host of the command, for the node's audit log


class DownRequest(WireModel):
    """Stop every worker and the node's supervisord."""

    op: Literal["down"] = "down"


class LogRequest(WireModel):
    """The last `lines` lines of a log (offset None) or what was written after `offset`;
    task None: supervisord's own log."""

    op: Literal["log"] = "log"
    task: str | None = None
    offset: int | None = Field(default=None, ge=0)
    lines: int = Field(default=40, ge=0)


class DatasetsRequest(WireModel):
    """Summaries of the node's own datasets (and its mirrors' with `mirrors`); `ids` keeps
    only those."""

    op: Literal["datasets"] = "datasets"
    ids: list[str] | None = None
    mirrors: bool = False


class FactsRequest(WireModel):
    op: Literal["facts"] = "facts"


class TailRequest(WireModel):
    """The last `limit` rows of a dataset the node holds: its own, else the one mirror that
    holds it (`mirror_of` names the producer whose mirror to read)."""

    op: Literal["tail"] = "tail"
    id: str
    limit: int = Field(default=120, ge=1, le=5000)
    mirror_of: str | None = None


class SessionRequest(WireModel):
    """A trade task's session: its equity curve in at most `points` points and its last
    `trades` trades."""

    op: Literal["session"] = "session"
    task: str
    points: int = Field(default=200, ge=2, le=5000)
    trades: int = Field(default=10, ge=0, le=SESSION_TRADES_MAX)


class FormerRequest(WireModel):
    """The nodes an earlier deploy of the network declared and the last one no longer does,
    as this node remembers them, once it forgot those in `forget` (stopped by `down --node`)."""

    op: Literal["former"] = "former"
    forget: list[str] = Field(default_factory=list)


Request = Annotated[ApplyRequest | StatusRequest | ControlRequest | LiveRequest | ResumeRequest
                    | DownRequest | LogRequest | DatasetsRequest | FactsRequest | TailRequest
                    | SessionRequest | FormerRequest, Field(discriminator="op")]


# --- replies ----------------------------------------------------------------------------------


class StepsReply(WireModel):
    """The reply to apply, control, live and down."""

    steps: list[StepResult]


class StatusReply(WireModel):
    tasks: list[TaskStatus]
    services: list[ServiceStatus] = Field(default_factory=list)  # since protocol 3


class LogReply(WireModel):
    chunk: LogChunk


class DatasetsReply(WireModel):
    datasets: list[DatasetSummary]


class FactsReply(WireModel):
    sfarm: str
    protocol: int
    python: str  # the interpreter's path
    python_version: str
    root: str
    user: str
    farm_key: FarmKeyInfo | None = None  # the network's farm key this node holds
    sshfs_key: FarmKeyInfo | None = None  # the network's SSHFS key this node holds
    sftp_server: str | None = None  # the node's sftp-server, for an SSHFS key's line


class TailReply(WireModel):
    tail: DatasetTail


class SessionReply(WireModel):
    session: SessionView | None  # None: the session has not started


class FormerReply(WireModel):
    nodes: list[NodeAddress]


Reply = (StepsReply | StatusReply | LogReply | DatasetsReply | FactsReply | TailReply
         | SessionReply | FormerReply)
