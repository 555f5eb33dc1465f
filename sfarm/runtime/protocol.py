"""The node protocol: every request a controller makes of a node and every reply, as typed
models, and the envelopes that carry them as JSON bytes with the protocol's version.

Both sides use this module: the controller encodes a request and decodes the reply
(`encode_request`, `decode_reply`), the node decodes the request and encodes its reply
(`decode_request`, `encode_reply`, `encode_error`; see sfarm.runtime.handler). The bytes travel
on the stdin/stdout of `sfarm node call` over SSH, or stay in this process for a local node.
Nothing sent (file contents, secrets among them) ever appears in a command line or a log.

The envelope is stable across versions, so that two versions can at least refuse each other
clearly: `{"protocol": N, "sfarm": "X", "request": {"op": ...}}` and
`{"protocol": N, "sfarm": "X", "ok": true, "reply": {...}}` or
`{"protocol": N, "sfarm": "X", "ok": false, "error": {"message": ..., "hint": ...}}`.
A node refuses a request of another protocol or sfarm version; a controller refuses such a
reply. Pure: no I/O here, and nothing heavier than pydantic is imported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar, cast, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.resolver.routes import FarmKeyInfo
from sfarm.status import ServiceStatus, TaskStatus

# Bump on any change of a request or reply that an older or newer peer could misread.
# 2: the `tail` and `session` requests (the dashboard's views of a dataset and a session).
# 3: the services of a node (the emulator, the resolver, the agent) in the status reply; the
#    network's nodes in a deployment, the `former` request, `LiveRequest.stale_only`.
PROTOCOL_VERSION = 3
DEPLOY_HINT = "run `sfarm deploy` from the controller: it installs the controller's sfarm"

# File contents travel as base64 inside the JSON; unknown keys are an error, not ignored.
# A model's validator is built when first used (defer_build): a command sends one request and
# reads one reply, and building all ~30 at import cost `sfarm status` a tenth of a second.
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


class _Wire(BaseModel):
    model_config = ConfigDict(**_WIRE, frozen=True)


class DatasetSummary(_Wire):
    """A dataset under a node root, from its manifest alone (what the data resolver compares)."""

    id: str
    node: str | None = None  # the producer of a mirrored dataset; None: the node's own data
    rows: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    generation: int = 0
    updated_at: str | None = None
    error: str | None = None  # the manifest could not be read


class DatasetTail(_Wire):
    """The last rows of a dataset, column by column: `ts` (ms, oldest first) and every numeric
    column but ts, each as long as `ts` (None where a value is missing or not a number).
    `error` says why there are no rows to show (no such dataset, unreadable), never raised."""

    id: str
    ts: list[int] = Field(default_factory=list)
    columns: dict[str, list[float | None]] = Field(default_factory=dict)
    error: str | None = None


class TradeRow(_Wire):
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


class SessionView(_Wire):
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


class ApplyRequest(_Wire):
    """Make the node root match a deployment and (re)load its supervisord. With `dry_run`, only
    say what would change (a "changed" step: would change) and change nothing; with `boot`,
    also make the node's supervisord start at boot (sfarm.runtime.boot). Both default to
    False, so a request without them reads as before."""

    op: Literal["apply"] = "apply"
    deployment: Deployment
    dry_run: bool = False
    boot: bool = False
    operator: str = ""  # user@host of the command, for the node's audit log


class StatusRequest(_Wire):
    """The state of these tasks (name -> kind) from supervisord and their heartbeats."""

    op: Literal["status"] = "status"
    tasks: dict[str, str]


class ControlRequest(_Wire):
    op: Literal["control"] = "control"
    action: Action
    tasks: list[str]


class LiveRequest(_Wire):
    """Arm (or disarm) live trade tasks: see sfarm.trading.live_guard."""

    op: Literal["live"] = "live"
    tasks: list[str]
    armed: bool
    by: str = "sfarm start --live"  # the command that arms, for the record
    operator: str = ""  # user@host of the command, for the node's audit log
    # Disarming only: remove only the arms that name no running worker of their task (`up`:
    # a worker it left running keeps its arming, one it restarted has a new pid).
    stale_only: bool = False


class ResumeRequest(_Wire):
    """Let a trade task's session halted by its kill switch trade again (its worker stopped)."""

    op: Literal["resume"] = "resume"
    task: str
    operator: str = ""  # user@host of the command, for the node's audit log


class DownRequest(_Wire):
    """Stop every worker and the node's supervisord."""

    op: Literal["down"] = "down"


class LogRequest(_Wire):
    """The last `lines` lines of a log (offset None) or what was written after `offset`;
    task None: supervisord's own log."""

    op: Literal["log"] = "log"
    task: str | None = None
    offset: int | None = Field(default=None, ge=0)
    lines: int = Field(default=40, ge=0)


class DatasetsRequest(_Wire):
    """Summaries of the node's own datasets (and its mirrors' with `mirrors`); `ids` keeps
    only those."""

    op: Literal["datasets"] = "datasets"
    ids: list[str] | None = None
    mirrors: bool = False


class FactsRequest(_Wire):
    op: Literal["facts"] = "facts"


class TailRequest(_Wire):
    """The last `limit` rows of a dataset the node holds: its own, else the one mirror that
    holds it (`mirror_of` names the producer whose mirror to read)."""

    op: Literal["tail"] = "tail"
    id: str
    limit: int = Field(default=120, ge=1, le=5000)
    mirror_of: str | None = None


class SessionRequest(_Wire):
    """A trade task's session: its equity curve in at most `points` points and its last
    `trades` trades."""

    op: Literal["session"] = "session"
    task: str
    points: int = Field(default=200, ge=2, le=5000)
    trades: int = Field(default=10, ge=0, le=1000)


class FormerRequest(_Wire):
    """The nodes an earlier deploy of the network declared and the last one no longer does,
    as this node remembers them, once it forgot those in `forget` (stopped by `down --node`)."""

    op: Literal["former"] = "former"
    forget: list[str] = Field(default_factory=list)


Request = Annotated[ApplyRequest | StatusRequest | ControlRequest | LiveRequest | ResumeRequest
                    | DownRequest | LogRequest | DatasetsRequest | FactsRequest | TailRequest
                    | SessionRequest | FormerRequest, Field(discriminator="op")]


# --- replies ----------------------------------------------------------------------------------


class StepsReply(_Wire):
    """The reply to apply, control, live and down."""

    steps: list[StepResult]


class StatusReply(_Wire):
    tasks: list[TaskStatus]
    services: list[ServiceStatus] = Field(default_factory=list)  # since protocol 3


class LogReply(_Wire):
    chunk: LogChunk


class DatasetsReply(_Wire):
    datasets: list[DatasetSummary]


class FactsReply(_Wire):
    sfarm: str
    protocol: int
    python: str  # the interpreter's path
    python_version: str
    root: str
    user: str
    farm_key: FarmKeyInfo | None = None  # the network's farm key this node holds
    sshfs_key: FarmKeyInfo | None = None  # the network's SSHFS key this node holds
    sftp_server: str | None = None  # the node's sftp-server, for an SSHFS key's line


class TailReply(_Wire):
    tail: DatasetTail


class SessionReply(_Wire):
    session: SessionView | None  # None: the session has not started


class FormerReply(_Wire):
    nodes: list[NodeAddress]


Reply = (StepsReply | StatusReply | LogReply | DatasetsReply | FactsReply | TailReply
         | SessionReply | FormerReply)
R = TypeVar("R", bound=BaseModel)


# --- envelopes ----------------------------------------------------------------------------------


class RequestEnvelope(_Wire):
    protocol: int
    sfarm: str
    request: Request


_ENVELOPE_KEYS = RequestEnvelope.model_fields.keys()
# Each request type by its `op` (the discriminator of Request's union).
_REQUEST_BY_OP: dict[str, type[BaseModel]] = {
    model.model_fields["op"].default: model for model in get_args(get_args(Request)[0])}


class ErrorInfo(_Wire):
    message: str
    hint: str | None = None


class ReplyEnvelope(_Wire):
    """A reply before its body is read: the body's type depends on the request."""

    protocol: int
    sfarm: str
    ok: bool
    reply: dict[str, Any] | None = None
    error: ErrorInfo | None = None


class ProtocolError(RunError):
    """A message this side cannot use: not JSON, the wrong shape, another version."""


class NodeError(RunError):
    """The node answered with an error: the operation failed there."""


def encode_request(request: Request) -> bytes:
    # The envelope's fields written around the request's own JSON: RequestEnvelope's
    # serializer would be built for every request type to write one.
    return json.dumps({"protocol": PROTOCOL_VERSION, "sfarm": __version__,
                       "request": request.model_dump(mode="json")},
                      separators=(",", ":")).encode()


def decode_request(raw: bytes) -> Request:
    """The request in `raw`; ProtocolError when it is malformed or of another version."""
    document = _json_object(raw, "the request")
    _check_versions(document, "the controller", "this node")
    request = document.get("request")
    op = request.get("op") if isinstance(request, dict) else None
    model = _REQUEST_BY_OP.get(op) if isinstance(op, str) else None
    if model is not None and document.keys() == _ENVELOPE_KEYS:
        # The model the envelope's union picks by `op`, validated alone (the other request
        # types' validators are not built); anything it refuses goes through the envelope
        # below, whose message names the union's member as before.
        try:
            return cast(Request, model.model_validate(request))
        except ValidationError:
            pass
    try:
        return RequestEnvelope.model_validate(document).request
    except ValidationError as error:
        raise ProtocolError(f"malformed request: {_summary(error)}") from None


def encode_reply(reply: Reply) -> bytes:
    body = reply.model_dump(mode="json")
    return json.dumps({"protocol": PROTOCOL_VERSION, "sfarm": __version__, "ok": True,
                       "reply": body}).encode()


def encode_error(message: str, hint: str | None = None) -> bytes:
    envelope = ReplyEnvelope(protocol=PROTOCOL_VERSION, sfarm=__version__, ok=False,
                             error=ErrorInfo(message=message, hint=hint))
    return envelope.model_dump_json(exclude_none=True).encode()


def decode_reply(raw: bytes, expected: type[R], where: str) -> R:
    """The reply body in `raw`, of type `expected`. The node's error reply raises NodeError
    (its message and hint); anything unusable raises ProtocolError naming `where`."""
    try:
        document = _json_object(raw, "its reply",
                                hint="is something on the node printing to stdout?")
        error = document.get("error")
        if document.get("ok") is False and isinstance(error, dict) \
                and isinstance(message := error.get("message"), str):
            # An error reply reads the same in every version: a refusal stays legible.
            hint = error.get("hint")
            raise NodeError(message, hint=hint if isinstance(hint, str) else None)
        _check_versions(document, "the node", "this controller")
        envelope = ReplyEnvelope.model_validate(document)
        if not envelope.ok or envelope.reply is None:
            raise ProtocolError("a reply with neither a result nor an error")
        return expected.model_validate(envelope.reply)
    except ValidationError as error:
        raise ProtocolError(f"{where}: malformed reply: {_summary(error)}",
                            hint=DEPLOY_HINT) from None
    except ProtocolError as error:
        raise ProtocolError(f"{where}: {error.message}", hint=error.hint) from None


def _json_object(raw: bytes, what: str, hint: str | None = None) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"{what} is not JSON: {_preview(raw)}", hint=hint) from None
    if not isinstance(document, dict):
        raise ProtocolError(f"{what} is not a JSON object: {_preview(raw)}")
    return document


def _check_versions(document: dict[str, Any], peer: str, self_name: str) -> None:
    """Refuse a peer of another protocol or sfarm version, naming both versions."""
    protocol, sfarm = document.get("protocol"), document.get("sfarm")
    if protocol == PROTOCOL_VERSION and sfarm == __version__:
        return
    if not isinstance(protocol, int) or not isinstance(sfarm, str):
        raise ProtocolError(f"not a node protocol envelope (no protocol and sfarm version): "
                            f"{_preview(json.dumps(document).encode())}")
    raise ProtocolError(f"{peer} runs sfarm {sfarm} (node protocol {protocol}), "
                        f"{self_name} sfarm {__version__} (node protocol {PROTOCOL_VERSION})",
                        hint=DEPLOY_HINT)


def _summary(error: ValidationError, count: int = 3) -> str:
    problems = [f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: {item['msg']}"
                for item in error.errors()[:count]]
    more = error.error_count() - count
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _preview(raw: bytes, limit: int = 80) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return repr(text[:limit] + ("…" if len(text) > limit else "")) if text else "nothing"
