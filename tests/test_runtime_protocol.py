"""The node protocol's encoding, pure: every request and reply round-trips exactly through its
envelope; another protocol or sfarm version is refused both ways, with the versions named and
the hint to deploy; a malformed reply is one ProtocolError naming the node. Also the node's log
reader, which the `log` request serves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from sfarm import __version__
from sfarm.runtime.envelope import (
    PROTOCOL_VERSION,
    NodeError,
    ProtocolError,
    decode_reply,
    decode_request,
    encode_error,
    encode_reply,
    encode_request,
)
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.node import read_log
from sfarm.runtime.protocol import (
    ApplyRequest,
    ControlRequest,
    DatasetsReply,
    DatasetsRequest,
    DatasetSummary,
    DatasetTail,
    Deployment,
    DownRequest,
    FactsReply,
    FactsRequest,
    LiveRequest,
    LogChunk,
    LogReply,
    LogRequest,
    NodeFile,
    Program,
    SessionReply,
    SessionRequest,
    SessionView,
    StatusReply,
    StatusRequest,
    StepResult,
    StepsReply,
    TailReply,
    TailRequest,
    TradeRow,
)
from sfarm.status import TASK_STATES, DatasetStatus, TaskStatus, TradeProgress

WHERE = "node quant-1 (sfarm@10.0.0.12:22)"

# --- strategies: every value a request or a reply carries -------------------------------------

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
texts = st.text(st.characters(codec="utf-8"), max_size=30)
stamps = st.none() | st.integers(0, 2**62)
reals = st.floats(allow_nan=False, allow_infinity=False)
# Wire dataclasses are built by keyword: once built, a deferred pydantic dataclass's signature
# reads (*args, field, ...), and hypothesis would then infer a positional field a second time.
steps = st.builds(StepResult, step=texts, status=st.sampled_from(["ok", "changed", "failed"]),
                  detail=texts)
files = st.builds(NodeFile, path=texts, content=st.binary(max_size=300),
                  mode=st.integers(0, 0o7777))
programs = st.builds(Program, name=names, command=st.lists(texts, max_size=4).map(tuple),
                     environment=st.dictionaries(names, texts, max_size=3),
                     autostart=st.booleans())
deployments = st.builds(Deployment, network=names, node=names,
                        files=st.lists(files, max_size=3).map(tuple),
                        programs=st.lists(programs, max_size=3).map(tuple),
                        tasks=st.dictionaries(names, names, max_size=3))
datasets = st.builds(DatasetStatus, id=names, last_ts=stamps, rows=st.integers(0, 2**40),
                     lag_s=st.none() | reals)
tasks = st.builds(TaskStatus, name=names, kind=names, state=st.sampled_from(TASK_STATES),
                  pid=st.none() | st.integers(1, 2**31), heartbeat_age_s=st.none() | reals,
                  last_error=st.none() | texts, waiting_for=st.none() | texts,
                  datasets=st.lists(datasets, max_size=3),
                  trade=st.none() | st.builds(TradeProgress, equity=reals, position=reals,
                                              pnl=reals))
summaries = st.builds(DatasetSummary, id=names, node=st.none() | names,
                      rows=st.integers(0, 2**40), first_ts=stamps, last_ts=stamps,
                      generation=st.integers(0, 2**40), updated_at=st.none() | texts,
                      error=st.none() | texts)

REQUESTS = {
    "apply": st.builds(ApplyRequest, deployment=deployments),
    "status": st.builds(StatusRequest, tasks=st.dictionaries(names, names, max_size=4)),
    "control": st.builds(ControlRequest, action=st.sampled_from(["start", "stop", "restart"]),
                         tasks=st.lists(names, max_size=4)),
    "live": st.builds(LiveRequest, tasks=st.lists(names, max_size=4), armed=st.booleans(),
                      by=texts),
    "down": st.just(DownRequest()),
    "log": st.builds(LogRequest, task=st.none() | names, offset=st.none() | st.integers(0),
                     lines=st.integers(0, 10**6)),
    "datasets": st.builds(DatasetsRequest, ids=st.none() | st.lists(names, max_size=4),
                          mirrors=st.booleans()),
    "facts": st.just(FactsRequest()),
    "tail": st.builds(TailRequest, id=names, limit=st.integers(1, 5000),
                      mirror_of=st.none() | names),
    "session": st.builds(SessionRequest, task=names, points=st.integers(2, 5000),
                         trades=st.integers(0, 1000)),
}
REPLIES = {
    "steps": st.builds(StepsReply, steps=st.lists(steps, max_size=5)),
    "status": st.builds(StatusReply, tasks=st.lists(tasks, max_size=3)),
    "log": st.builds(LogReply, chunk=st.builds(LogChunk, lines=st.lists(texts, max_size=5),
                                                 offset=st.integers(0))),
    "datasets": st.builds(DatasetsReply, datasets=st.lists(summaries, max_size=4)),
    "facts": st.builds(FactsReply, sfarm=names, protocol=st.integers(0), python=texts,
                       python_version=texts, root=texts, user=texts),
    "tail": st.builds(TailReply, tail=st.builds(
        DatasetTail, id=names, ts=st.lists(st.integers(0, 2**62), max_size=4),
        columns=st.dictionaries(names, st.lists(st.none() | reals, max_size=4), max_size=3),
        error=st.none() | texts)),
    "session": st.builds(SessionReply, session=st.none() | st.builds(
        SessionView, task=names, mode=names, strategy=names, cash=reals, equity=reals,
        pnl=reals, return_pct=reals, position=reals, entry_price=st.none() | reals,
        halted=st.none() | texts, last_ts=stamps, equity_ts=st.lists(st.integers(0), max_size=4),
        equity_values=st.lists(reals, max_size=4), trade_count=st.integers(0),
        trades=st.lists(st.builds(TradeRow, side=st.sampled_from(["long", "short"]),
                                  entry_ts=st.integers(0), exit_ts=st.integers(0),
                                  entry_price=reals, exit_price=reals, size=reals, pnl=reals,
                                  fees=st.none() | reals, reason=st.none() | texts),
                        max_size=3))),
}


@pytest.mark.parametrize("op", sorted(REQUESTS))
def test_every_request_round_trips(op: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(REQUESTS[op])
    def round_trip(request: Any) -> None:
        raw = encode_request(request)
        envelope = json.loads(raw)
        assert envelope["protocol"] == PROTOCOL_VERSION and envelope["sfarm"] == __version__
        assert envelope["request"]["op"] == op
        assert decode_request(raw) == request

    round_trip()


@pytest.mark.parametrize("kind", sorted(REPLIES))
def test_every_reply_round_trips(kind: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(REPLIES[kind])
    def round_trip(reply: BaseModel) -> None:
        raw = encode_reply(reply)  # type: ignore[arg-type]
        assert json.loads(raw)["ok"] is True
        assert decode_reply(raw, type(reply), WHERE) == reply

    round_trip()


def test_file_contents_travel_as_base64_not_as_text() -> None:
    secret = NodeFile("secrets/secrets.toml", bytes(range(256)), mode=0o600)
    deployment = Deployment("prod", "quant-1", (secret,), (
        Program("mine", ("python", "-m", "sfarm", "worker", "run", "--task", "mine"),
                {"TZ": "UTC"}, autostart=False),))
    raw = encode_request(ApplyRequest(deployment=deployment))
    content = json.loads(raw)["request"]["deployment"]["files"][0]["content"]
    assert isinstance(content, str) and content.isascii()
    decoded = decode_request(raw)
    assert isinstance(decoded, ApplyRequest) and decoded.deployment == deployment
    assert decoded.deployment.files[0].content == bytes(range(256))


def _request(protocol: int = PROTOCOL_VERSION, sfarm: str = __version__,
             request: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"protocol": protocol, "sfarm": sfarm,
                       "request": request or {"op": "facts"}}).encode()


def _reply(protocol: int = PROTOCOL_VERSION, sfarm: str = __version__, **rest: Any) -> bytes:
    return json.dumps({"protocol": protocol, "sfarm": sfarm, **rest}).encode()


@pytest.mark.parametrize(("protocol", "sfarm"), [(PROTOCOL_VERSION + 1, __version__),
                                                 (PROTOCOL_VERSION - 1, __version__),
                                                 (PROTOCOL_VERSION, "0.0.1")])
def test_a_node_refuses_a_controller_of_another_version(protocol: int, sfarm: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        decode_request(_request(protocol, sfarm))
    message = refused.value.message
    assert f"the controller runs sfarm {sfarm} (node protocol {protocol})" in message
    assert f"this node sfarm {__version__} (node protocol {PROTOCOL_VERSION})" in message
    assert "sfarm deploy" in (refused.value.hint or "")


@pytest.mark.parametrize(("protocol", "sfarm"), [(PROTOCOL_VERSION + 1, __version__),
                                                 (PROTOCOL_VERSION, "9.9.9")])
def test_a_controller_refuses_a_reply_of_another_version(protocol: int, sfarm: str) -> None:
    raw = _reply(protocol, sfarm, ok=True, reply={"steps": []})
    with pytest.raises(ProtocolError) as refused:
        decode_reply(raw, StepsReply, WHERE)
    message = refused.value.message
    assert message.startswith(WHERE + ": ")
    assert f"the node runs sfarm {sfarm} (node protocol {protocol})" in message
    assert f"this controller sfarm {__version__}" in message
    assert "sfarm deploy" in (refused.value.hint or "")


def test_a_refusal_from_a_node_of_another_version_stays_legible() -> None:
    """The error reply is the part of the envelope every version reads alike (a newer one may
    say more: what this version does not know is left aside)."""
    raw = _reply(PROTOCOL_VERSION + 1, "0.2.0", ok=False,
                 error={"message": "the controller runs sfarm 0.1.0 (node protocol 1), this "
                                   "node sfarm 0.2.0 (node protocol 2)",
                        "hint": "run `sfarm deploy` from the controller", "code": 409})
    with pytest.raises(NodeError) as refused:
        decode_reply(raw, StepsReply, WHERE)
    assert "this node sfarm 0.2.0" in refused.value.message
    assert refused.value.hint == "run `sfarm deploy` from the controller"


def test_an_error_reply_carries_the_node_message_and_hint() -> None:
    with pytest.raises(NodeError) as failed:
        decode_reply(encode_error("supervisord did not start", "see logs/supervisord.log"),
                     StepsReply, WHERE)
    assert failed.value.message == "supervisord did not start"
    assert failed.value.hint == "see logs/supervisord.log"


@pytest.mark.parametrize(("raw", "words"), [
    (b"", "its reply is not JSON: nothing"),
    (b"Welcome to node-1!\n{}", "its reply is not JSON: 'Welcome to node-1!"),
    (b"\xff\xfe", "its reply is not JSON"),
    (b"[1, 2]", "its reply is not a JSON object"),
    (b'{"hello": "world"}', "not a node protocol envelope"),
    (_reply(ok=True), "a reply with neither a result nor an error"),
    (_reply(ok="maybe", reply={"steps": []}), ("malformed reply: ok: Input should be a valid "
                                              "boolean")),
    (_reply(ok=True, reply={"steps": [{"step": "x", "status": "great"}]}),
     "malformed reply: steps.0.status"),
    (_reply(ok=True, reply={"tasks": []}), "malformed reply: steps: Field required"),
    (_reply(ok=True, reply={"steps": [], "extra": 1}), "malformed reply: extra"),
    (_reply(ok=False, error={"text": "no message"}), "malformed reply: error.message"),
])
def test_a_malformed_reply_is_one_error_naming_the_node(raw: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as malformed:
        decode_reply(raw, StepsReply, WHERE)
    assert malformed.value.message.startswith(WHERE + ": ")
    assert words in malformed.value.message


@pytest.mark.parametrize(("raw", "words"), [
    (b"not json", "the request is not JSON"),
    (_request(request={"op": "reboot"}), "malformed request: request: Input tag 'reboot'"),
    (_request(request={"op": "control", "action": "pause", "tasks": []}),
     "malformed request: request.control.action"),
    (_request(request={"op": "log", "offset": -1}), "request.log.offset"),
])
def test_a_malformed_request_is_refused(raw: bytes, words: str) -> None:
    with pytest.raises(ProtocolError) as malformed:
        decode_request(raw)
    assert words in malformed.value.message


def test_read_log_tails_then_follows_across_a_rotation(tmp_path: Path) -> None:
    root = NodeRoot(tmp_path)
    log = root.log("mine")
    log.parent.mkdir(parents=True)
    assert read_log(root, "mine") == read_log(root, "mine", offset=7)  # no log yet: nothing
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    first = read_log(root, "mine", lines=3)
    assert first.lines == ["line 97", "line 98", "line 99"] and first.offset == log.stat().st_size
    with log.open("a") as handle:
        handle.write("line 100\n")
    after = read_log(root, "mine", offset=first.offset)
    assert after.lines == ["line 100"] and after.offset == log.stat().st_size
    log.write_text("rotated 1\n")  # supervisord rotated it: shorter than the offset
    assert read_log(root, "mine", offset=after.offset).lines == ["rotated 1"]


@pytest.mark.parametrize("request_document", [
    {"op": "tail", "id": "candles/sim/BTC-USDT/1m", "limit": 0},
    {"op": "tail", "id": "candles/sim/BTC-USDT/1m", "limit": 5001},
    {"op": "session", "task": "paper", "points": 1},
    {"op": "session", "task": "paper", "trades": 1001},
])
def test_views_out_of_range_are_refused(request_document: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match="malformed request"):
        decode_request(_request(request=request_document))
