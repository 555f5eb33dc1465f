"""Install this sfarm on a node: its wheel in `<root>/venv`, with the controller's own version of
every dependency.

A node then runs exactly what the controller runs (the same polars, the same TA-Lib build), and
a redeploy after a code change installs the change. The wheel (sfarm.remote.wheel: built once
per content, from the source tree or from the installed distribution) goes by rsync to
`<root>/venv/sfarm-wheel/<digest>/`; pip installs the pinned dependencies, then the wheel, forced
(the version string does not change with the code). A stamp written last holds the digest of the
wheel and the pins: the next deploy reads it and reports "ok" without building or sending
anything, and an interrupted install is done again (a wheel already sent is not sent twice).

Online (the default), the venv reaches the package index the node's pip is configured for (a
mirror or a proxy through pip.conf, if the node has no direct access); the wheel itself needs no
index, and a node that reaches none is told to deploy with --offline. Offline (`--offline`, or
`offline = true` on the node), the controller sends a wheelhouse to `<root>/wheelhouse/` with
every wheel the venv needs (sfarm.remote.offline, sfarm.remote.wheelhouse) and pip installs
from it with `--no-index`: a step of its own, "ok" when the node already holds it all.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import posixpath
import re

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.remote.connection import Connection, TransportError
from sfarm.remote.offline import NODE_WHEELHOUSE, send_wheelhouse, wheelhouse_needed
from sfarm.remote.wheel import Snapshot, cached_wheel, running_sfarm
from sfarm.runtime.build import code_digest
from sfarm.runtime.protocol import StepResult

STEP = "sfarm venv"
STAMP = "sfarm-wheel.sha256"  # in the venv: what is installed there
NODE_WHEELS = "sfarm-wheel"  # in the venv: the wheel on its way, removed once installed
# What deploys before the wheel left in a venv: the source tree, its digest and its .pth file.
SOURCE_LAYOUT = "rm -rf src sfarm-source.sha256 lib/python3*/site-packages/sfarm-source.pth"
# --no-compile: pip would compile every module of every package (ccxt alone is thousands of
# exchange modules), almost half of a first install's CPU and ~100 MB of the venv; Python
# compiles what a node imports at its first import instead (the venv is the node user's).
PIP = ("-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-compile")
PIP_TIMEOUT_S = 1800.0
# What pip prints when it reaches no index (connection refused, no route, no name, a proxy
# refusing): the node needs --offline, not a fix of sfarm's dependencies.
INDEX_UNREACHABLE = ("Failed to establish a new connection", "Connection refused",
                     "Network is unreachable", "Temporary failure in name resolution",
                     "Name or service not known", "ProxyError", "Max retries exceeded",
                     "Could not fetch URL")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def pinned_requirements() -> list[str]:
    """This sfarm's dependencies (not the extras) at the versions installed here."""
    pins = []
    for requirement in importlib.metadata.requires("sfarm") or []:
        if ";" in requirement:  # an extra (test, bench) or a platform marker
            continue
        match = _NAME.match(requirement)
        if match is not None:
            name = match.group(0)
            pins.append(f"{name}=={importlib.metadata.version(name)}")
    return pins


def install_digest(snapshot: Snapshot, pins: list[str]) -> str:
    """What a node's stamp holds when its venv runs `snapshot` with `pins`: its code's digest
    (sfarm.runtime.build), which a checkout and an installed sfarm share, so a deploy from any
    node finds the venv as the controller left it."""
    return hashlib.sha256("\n".join([code_digest(snapshot.files), *pins]).encode()).hexdigest()


def provision(connection: Connection, root: str, python: str, *,
              snapshot: Snapshot | None = None, offline: bool = False) -> list[StepResult]:
    """Make `<root>/venv` run this sfarm (or `snapshot`): its dependencies from the node's
    package index, or with `offline` from a wheelhouse sent to `<root>/wheelhouse` (that
    step first). Each step "ok" when there was nothing to do."""
    snapshot = snapshot or running_sfarm()
    pins = pinned_requirements()
    venv = posixpath.join(root, "venv")
    venv_python = posixpath.join(venv, "bin", "python")
    stamp = posixpath.join(venv, STAMP)
    wanted = install_digest(snapshot, pins)
    build = f"sfarm {__version__} (wheel {snapshot.digest[:12]})"
    if connection.get(stamp) == wanted.encode():
        done = StepResult(STEP, "ok", f"{build} in {venv}")
        return [wheelhouse_needed(done, root), done] if offline else [done]
    wheel = cached_wheel(snapshot)  # before the node is touched: a failed build changes nothing
    _create_venv(connection, venv, python)
    steps: list[StepResult] = []
    if offline:
        house = posixpath.join(root, NODE_WHEELHOUSE)
        steps.append(send_wheelhouse(connection, venv_python, house, wheel, pins))
        _pip(connection, [venv_python, *PIP, "--no-index", "--find-links", house, *pins],
             offline=True)
        node_wheel = posixpath.join(house, wheel.name)
    else:
        _pip(connection, [venv_python, *PIP, *pins], offline=False)
        wheels = posixpath.join(venv, NODE_WHEELS)
        connection.run(["mkdir", "-p", wheels])
        connection.rsync(str(wheel.parent), f"{wheels}/", pull=False)  # -> <digest>/<wheel>
        node_wheel = posixpath.join(wheels, wheel.parent.name, wheel.name)
    connection.run([venv_python, *PIP, "--no-deps", "--no-index", "--force-reinstall",
                    node_wheel], timeout=PIP_TIMEOUT_S)
    connection.run(["sh", "-c", f'cd "$1" && rm -rf {NODE_WHEELS} && {SOURCE_LAYOUT}',
                    "sfarm-provision", venv])
    installed = connection.run([venv_python, "-m", "sfarm", "--version"]).stdout_text.split()
    if installed[-1:] != [__version__]:
        raise RunError(f"{connection.where}: {venv} runs {' '.join(installed) or 'nothing'}, "
                       f"not sfarm {__version__}")
    connection.put(wanted.encode(), stamp)  # last: an interrupted install is redone
    return [*steps, StepResult(STEP, "changed", f"{build} installed in {venv}")]


def _pip(connection: Connection, argv: list[str], *, offline: bool) -> None:
    """Run pip on the node; a failure says whether the index was out of reach."""
    try:
        connection.run(argv, timeout=PIP_TIMEOUT_S)
    except TransportError as error:
        if error.result is None:  # a timeout, the connection lost: its own message
            raise
        tail = error.result.stderr_tail()
        if offline:
            raise RunError(f"{connection.where}: pip could not install sfarm's dependencies "
                           f"from the wheelhouse sent to the node:\n{tail}") from None
        if any(sign in error.result.stderr_text for sign in INDEX_UNREACHABLE):
            raise RunError(f"{connection.where}: the node's pip reaches no package index, so "
                           f"it could not install sfarm's dependencies:\n{tail}",
                           hint="deploy with --offline (or set `offline = true` on the node "
                                "in the inventory): the controller then sends the wheels "
                                "itself") from None
        raise RunError(f"{connection.where}: pip could not install sfarm's dependencies:\n"
                       f"{tail}") from None


def _create_venv(connection: Connection, venv: str, python: str) -> None:
    if connection.run(["test", "-x", posixpath.join(venv, "bin", "python")], check=False).ok:
        return
    try:
        connection.run([python, "-m", "venv", venv], timeout=PIP_TIMEOUT_S)
    except TransportError as error:
        raise RunError(f"{connection.where}: cannot create {venv} with {python}: "
                       f"{error.message}",
                       hint="the node needs Python >= 3.11 with its venv module (on "
                            "Debian: apt-get install python3-venv), or set `python`") from None


def provision_needed(connection: Connection, root: str, python: str, *,
                     snapshot: Snapshot | None = None) -> StepResult:
    """What `provision` would do, changing nothing on the node and building nothing (a dry
    run): "ok" when `<root>/venv` already runs this sfarm (the same stamp `provision` reads),
    "changed" when it would install it (saying whether it would create the venv), "failed"
    when it could not: `python` cannot make a venv."""
    snapshot = snapshot or running_sfarm()
    venv = posixpath.join(root, "venv")
    build = f"sfarm {__version__} (wheel {snapshot.digest[:12]})"
    stamp = connection.get(posixpath.join(venv, STAMP))
    if stamp == install_digest(snapshot, pinned_requirements()).encode():
        return StepResult(STEP, "ok", f"{build} in {venv}")
    if connection.run(["test", "-x", posixpath.join(venv, "bin", "python")], check=False).ok:
        return StepResult(STEP, "changed", f"would install {build} in {venv}, which runs "
                          + ("another build" if stamp else "no complete install"))
    # What `python -m venv` needs, asked without making anything.
    probe = "import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))"
    try:
        usable = connection.run([python, "-c", probe], check=False, timeout=PIP_TIMEOUT_S).ok
    except TransportError:  # no such interpreter, on a connection that says so by raising
        usable = False
    if not usable:
        return StepResult(STEP, "failed", f"would create {venv} with {python}, which cannot: "
                          "the node needs Python >= 3.11 with its venv module (on Debian: "
                          "apt-get install python3-venv), or set `python`")
    return StepResult(STEP, "changed", f"would create {venv} with {python} and install {build}")
