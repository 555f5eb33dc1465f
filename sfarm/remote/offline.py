"""An offline node's side of its install: what its python accepts, and its wheelhouse sent.

The wheelhouse lives in `<root>/wheelhouse/`, a stable directory: rsync compares it with the
controller's (sfarm.remote.wheelhouse) and moves only what differs, so a redeploy with the same
dependencies sends nothing but a changed sfarm wheel, and a venv made again (removed, or broken)
installs from what the node already holds. Dependencies that are no longer needed are deleted
there; sfarm's own wheel, sent beside them, replaces the one before it.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from sfarm.errors import RunError
from sfarm.remote.connection import Connection, TransportError
from sfarm.remote.wheelhouse import PROBE, Interpreter, wheelhouse
from sfarm.runtime.protocol import StepResult

STEP = "sfarm wheelhouse"
NODE_WHEELHOUSE = "wheelhouse"  # in the node root: what an offline node installs from
PROBE_TIMEOUT_S = 60.0
SFARM_WHEELS = "sfarm-*.whl"  # sfarm's own wheel in the node's wheelhouse, sent on its own


def probe(connection: Connection, python: str) -> Interpreter:
    """The interpreter `python` is on the node, as its pip sees it."""
    try:
        result = connection.run([python, "-c", PROBE], timeout=PROBE_TIMEOUT_S)
        return Interpreter.from_json(result.stdout_text)
    except TransportError as error:
        raise RunError(f"{connection.where}: cannot learn what {python} accepts: "
                       f"{error.message}", hint="the venv's python needs its pip (the venv "
                       "module with ensurepip: on Debian, apt-get install python3-venv)") from None
    except (ValueError, KeyError) as error:
        raise RunError(f"{connection.where}: {python} described itself unreadably: "
                       f"{error}") from None


def send_wheelhouse(connection: Connection, python: str, house: str, wheel: Path,
                    pins: list[str]) -> StepResult:
    """Make the node's `house` hold the wheels `pins` need on the node's `python` and sfarm's
    `wheel`: built on the controller unless cached, sent only where they differ."""
    node = probe(connection, python)
    local = wheelhouse(node, pins, where=connection.where)
    connection.run(["mkdir", "-p", house])
    synced = connection.rsync(f"{local}/", f"{house}/", pull=False, delete=True,
                              excludes=(SFARM_WHEELS,))
    own = connection.rsync(str(wheel), f"{house}/", pull=False)
    connection.run(["find", house, "-maxdepth", "1", "-name", SFARM_WHEELS,
                    "!", "-name", wheel.name, "-delete"])
    sent = synced.paths("transfer") + own.paths("transfer")
    deleted = synced.paths("delete")
    kind = f"for {node.describe()}"
    if not sent and not deleted:
        return StepResult(STEP, "ok", f"{house} holds them ({kind})")
    sizes = {path.name: path.stat().st_size for path in [*local.glob("*.whl"), wheel]}
    moved = sum(sizes.get(posixpath.basename(name), 0) for name in sent)
    detail = f"sent {len(sent)} wheel(s), {moved / 1e6:.1f} MB, to {house} ({kind})"
    if deleted:
        detail += f"; {len(deleted)} no longer needed deleted"
    return StepResult(STEP, "changed", detail)


def wheelhouse_needed(venv_step: StepResult, root: str) -> StepResult:
    """What `send_wheelhouse` would do, for a dry run that found the venv as `venv_step`
    says: nothing when the venv runs this sfarm, else send what `<root>/wheelhouse` lacks
    (which takes building and comparing: a dry run does neither)."""
    if venv_step.status == "ok":
        return StepResult(STEP, "ok", "not needed: the venv runs it")
    house = posixpath.join(root, NODE_WHEELHOUSE)
    return StepResult(STEP, "changed", f"would send to {house} the wheels it lacks of those the "
                      "venv needs (made on this machine for the node's python)")
