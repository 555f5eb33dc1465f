"""The envelopes of the node protocol: the messages of sfarm.runtime.protocol as JSON bytes,
with the protocol's and sfarm's versions.

The controller encodes a request and decodes the reply (`encode_request`, `decode_reply`), the
node decodes the request and encodes its reply (`decode_request`, `encode_reply`,
`encode_error`; see sfarm.runtime.handler). The bytes travel on the stdin/stdout of `sfarm node
call` over SSH, or stay in this process for a local node. Nothing sent (file contents, secrets
among them) ever appears in a command line or a log.

The envelope is stable across versions, so that two versions can at least refuse each other
clearly: `{"protocol": N, "sfarm": "X", "request": {"op": ...}}` and
`{"protocol": N, "sfarm": "X", "ok": true, "reply": {...}}` or
`{"protocol": N, "sfarm": "X", "ok": false, "error": {"message": ..., "hint": ...}}`.
A node refuses a request of another protocol or sfarm version; a controller refuses such a
reply. Pure: no I/O here.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar, cast, get_args

from pydantic import BaseModel, ValidationError

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.runtime.protocol import Reply, Request, WireModel

# Bump on any change of a request or reply that an older or newer peer could misread.
# 2: the `tail` and `session` requests (the dashboard's views of a dataset and a session).
# 3: the services of a node (the emulator, the resolver, the agent) in the status reply; the
#    network's nodes in a deployment, the `former` request, `LiveRequest.stale_only`.
PROTOCOL_VERSION = 3
DEPLOY_HINT = "run `sfarm deploy` from the controller: it installs the controller's sfarm"


R = TypeVar("R", bound=BaseModel)


# --- envelopes ----------------------------------------------------------------------------------


class RequestEnvelope(WireModel):
    protocol: int
    sfarm: str
    request: Request


_ENVELOPE_KEYS = RequestEnvelope.model_fields.keys()
# Each request type by its `op` (the discriminator of Request's union).
_REQUEST_BY_OP: dict[str, type[BaseModel]] = {
    model.model_fields["op"].default: model for model in get_args(get_args(Request)[0])}


class ErrorInfo(WireModel):
    message: str
    hint: str | None = None


class ReplyEnvelope(WireModel):
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
