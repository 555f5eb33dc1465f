"""A node's one entry point: a request envelope in, a reply envelope out (sfarm.runtime.protocol).

`handle` serves both kinds of node: `sfarm node call` feeds it stdin on a node reached over SSH,
`sfarm node serve` one frame after another (`serve`), and a local node's agent calls it
in-process with the same bytes. It never raises: whatever goes wrong on the node, a refused
version, a malformed request or an unexpected exception, becomes an error reply with a message
a person can act on.
"""

from __future__ import annotations

import getpass
import logging
import os
import platform
import sys
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

from sfarm import __version__
from sfarm.errors import SfarmError
from sfarm.resolver.routes import held_key
from sfarm.runtime import node as node_ops
from sfarm.runtime.envelope import PROTOCOL_VERSION, decode_request, encode_error, encode_reply
from sfarm.runtime.framing import BrokenStream, FrameError, read_frame, write_frame
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import (
    ApplyRequest,
    ControlRequest,
    DatasetsReply,
    DatasetsRequest,
    DownRequest,
    FactsReply,
    FactsRequest,
    FormerReply,
    FormerRequest,
    LiveRequest,
    LogReply,
    LogRequest,
    Reply,
    Request,
    ResumeRequest,
    SessionReply,
    SessionRequest,
    StatusReply,
    StatusRequest,
    StepsReply,
    TailReply,
    TailRequest,
)

log = logging.getLogger(__name__)


def handle(root: Path, raw: bytes, accepts: tuple[type, ...] | None = None) -> bytes:
    """The reply envelope to the request envelope `raw`, acted on in the node root `root`;
    with `accepts`, a request of another type gets an error reply (the resident agent answers
    reads only: sfarm.runtime.agent_server)."""
    try:
        request = decode_request(raw)
        if accepts is not None and not isinstance(request, accepts):
            return encode_error(f"the node's resident agent does not take a "
                                f"{type(request).__name__}: it answers reads only",
                                hint="send it with `sfarm node call` (sfarm does)")
        return encode_reply(dispatch(NodeRoot(root), request))
    except SfarmError as error:
        return encode_error(error.message, error.hint)
    except Exception as error:  # the reply is the only way back: nothing may escape
        # The traceback is for a debugging session (logging at DEBUG), never for the reply.
        log.debug("unexpected error on the node", exc_info=True)
        return encode_error(f"unexpected {type(error).__name__} on the node: {error}",
                            hint="a bug in sfarm: please report it with this message")


def serve(root: Path, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer framed requests (sfarm.runtime.framing) from `requests` on `replies`, one reply
    frame per request frame, in order, until `requests` ends. A frame that cannot be read gets
    an error reply and the next one is read; a stream that breaks (ends inside a frame) ends
    the loop after an error reply, as the end of the stream does. Never raises but for a
    reply that cannot be written (the peer is gone)."""
    while answer_next(root, requests, replies):
        pass


def answer_next(root: Path, requests: BinaryIO, replies: BinaryIO,
                accepts: tuple[type, ...] | None = None,
                answering: AbstractContextManager[object] | None = None) -> bool:
    """Answer the next frame of `requests` (see `serve`; `accepts` as for `handle`), holding
    `answering` from the moment it is read until its reply is written; False when there is
    nothing more to answer (the stream ended, or broke)."""
    try:
        request = read_frame(requests)
    except FrameError as error:
        write_frame(replies, encode_error(f"malformed frame: {error}"))
        return True
    except BrokenStream as error:
        write_frame(replies, encode_error(f"malformed frame: {error}"))
        return False
    if request is None:
        return False
    with answering or nullcontext():
        write_frame(replies, handle(root, request, accepts))
    return True


def dispatch(root: NodeRoot, request: Request) -> Reply:
    """Do what `request` asks in `root` and say what happened."""
    if _needs_root(request):
        node_ops.require_root(root)
    match request:
        case ApplyRequest(deployment=deployment, dry_run=dry_run, boot=boot,
                          operator=operator):
            return StepsReply(steps=node_ops.apply_deployment(root, deployment, dry_run=dry_run,
                                                              boot=boot, operator=operator))
        case StatusRequest(tasks=tasks):
            processes = node_ops.supervised_processes(root)  # one question for both
            return StatusReply(
                tasks=node_ops.node_task_status(root, tasks, processes=processes),
                services=node_ops.node_service_status(root, tasks, processes))
        case ControlRequest(action=action, tasks=tasks):
            return StepsReply(steps=node_ops.control(root, action, tasks))
        case LiveRequest(tasks=tasks, armed=armed, by=by, operator=operator,
                         stale_only=stale_only):
            return StepsReply(steps=node_ops.set_live(root, tasks, armed, by, operator,
                                                      stale_only=stale_only))
        case FormerRequest(forget=forget):
            from sfarm.runtime.former import forget_former

            return FormerReply(nodes=forget_former(root, forget))
        case ResumeRequest(task=task, operator=operator):
            return StepsReply(steps=node_ops.resume(root, task, operator))
        case DownRequest():
            return StepsReply(steps=node_ops.shutdown(root))
        case LogRequest(task=task, offset=offset, lines=lines):
            return LogReply(chunk=node_ops.read_log(root, task, offset=offset, lines=lines))
        case DatasetsRequest(ids=ids, mirrors=mirrors):
            return DatasetsReply(datasets=node_ops.dataset_summaries(root, ids, mirrors))
        case FactsRequest():
            return FactsReply(sfarm=__version__, protocol=PROTOCOL_VERSION,
                              python=sys.executable, python_version=platform.python_version(),
                              root=str(root.path), user=getpass.getuser(),
                              farm_key=held_key(root.path, "farm"),
                              sshfs_key=held_key(root.path, "sshfs"),
                              sftp_server=_sftp_server())
        case TailRequest(id=dataset_id, limit=limit, mirror_of=mirror_of):
            from sfarm.runtime import views  # the store loads for these only: not for a status

            return TailReply(tail=views.dataset_tail(root, dataset_id, limit, mirror_of=mirror_of))
        case SessionRequest(task=task, points=points, trades=trades):
            from sfarm.runtime import views

            return SessionReply(session=views.session_view(root, task, points, trades))
    raise AssertionError(f"no handler for {request!r}")  # the union above is exhaustive


def _needs_root(request: Request) -> bool:
    """Whether `request` acts on a deployed node root: all do but apply (it makes one), facts
    (a survey before deploying), the views that say what is not there yet (status: `not
    deployed` and why; a session: none yet; a dataset's tail: no such dataset) and those that
    only make a node safe, down and disarming (where there is no root, nothing runs and nothing
    is armed)."""
    if isinstance(request, ApplyRequest | FactsRequest | DownRequest | StatusRequest
                  | SessionRequest | TailRequest | FormerRequest):
        return False
    return not (isinstance(request, LiveRequest) and not request.armed)


def _sftp_server() -> str | None:
    """This machine's sftp-server (the SSHFS key's forced command), None when there is none."""
    from sfarm.resolver.sshfs_command import SFTP_SERVER_CANDIDATES

    return next((path for path in SFTP_SERVER_CANDIDATES if os.access(path, os.X_OK)), None)
