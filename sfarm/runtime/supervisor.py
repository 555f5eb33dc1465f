"""supervisord per node root: render its config from templates/, start it, talk to it.

supervisord listens only on a unix socket inside the node root (mode 0700, no TCP port) and is
driven through its XML-RPC interface over that socket, the same interface supervisorctl uses.

supervisord and everything it runs work under umask 077 (`DAEMON_UMASK`), so what they write
(its socket, log and pid file, the workers' logs, partitions, manifests, heartbeats) is the
node user's alone: started with it (`start_daemon`, the boot unit), and told it in its config
(`umask=` of [supervisord], which it applies when it daemonizes, and of every program).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from sfarm.data.fsio import make_private_dirs, write_atomic
from sfarm.errors import RunError
from sfarm.resources import template
from sfarm.runtime.build import BUILD_VARIABLE
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.locks import process_start
from sfarm.runtime.protocol import Program
from sfarm.status import TASK_HELD_EXIT

CONFIG_NAME = "supervisord.conf"
DAEMON_MODULE = "sfarm.runtime.supervisord"  # supervisord, keeping its log directory
DAEMON_UMASK = 0o077
SOCKET_NAME = "supervisor.sock"


def socket_path(root: NodeRoot) -> Path:
    return root.supervisor / SOCKET_NAME


def config_path(root: NodeRoot) -> Path:
    return root.supervisor / CONFIG_NAME


def _environment_line(environment: Mapping[str, str]) -> str:
    if not environment:
        return ""
    # supervisor's syntax: KEY="value",KEY2="value"; % must be doubled (its own expansion).
    pairs = ",".join(f'{key}="{value.replace("%", "%%")}"' for key, value in environment.items())
    return f"environment={pairs}"


def render_config(root: NodeRoot, network: str, node: str, programs: Sequence[Program],
                  build: str | None = None) -> str:
    """The supervisord.conf text for `programs` (pure); with `build` (sfarm.runtime.build),
    every program's environment names the sfarm build it runs, so that other code is another
    configuration and its programs are restarted by supervisord's update."""
    for program in programs:
        if any("\n" in part for part in program.command):
            raise ValueError(f"program {program.name}: a supervisord command is one line")
    program_template = Template(template("supervisor-program.conf").read_text())
    rendered = "".join(
        program_template.substitute(
            name=program.name, root=root.path,
            command=shlex.join(program.command).replace("%", "%%"),
            autostart=str(program.autostart).lower(), umask=f"{DAEMON_UMASK:03o}",
            held_exit=TASK_HELD_EXIT,
            environment_line=_environment_line(
                {**program.environment, BUILD_VARIABLE: build} if build else program.environment),
        )
        for program in programs
    )
    return Template(template("supervisord.conf").read_text()).substitute(
        root=root.path, socket=socket_path(root), network=network, node=node, programs=rendered,
        umask=f"{DAEMON_UMASK:03o}")


@dataclass(frozen=True)
class ProgramChanges:
    """What loading a new config does to the programs (as supervisord's reloadConfig says)."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()  # restarted: their configuration differs
    removed: tuple[str, ...] = ()  # stopped and dropped


_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")


def program_sections(text: str) -> dict[str, tuple[str, ...]]:
    """Each `[program:NAME]` section of a supervisord config: its lines, blank lines and
    comments left out (pure)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            name = header.group(1)
            current = (sections.setdefault(name.removeprefix("program:"), [])
                       if name.startswith("program:") else None)
        elif current is not None and line.strip() and not line.lstrip().startswith(";"):
            current.append(line.strip())
    return {name: tuple(lines) for name, lines in sections.items()}


def program_changes(old: str, new: str) -> ProgramChanges:
    """What loading config `new` over `old` would do to the programs: supervisord's
    reloadConfig compares each program's settings; so do their sections here, without
    asking it (reloadConfig is no dry run: it adopts the config it reads). Pure."""
    before, after = program_sections(old), program_sections(new)
    return ProgramChanges(
        added=tuple(sorted(after.keys() - before.keys())),
        changed=tuple(sorted(name for name in after.keys() & before.keys()
                             if after[name] != before[name])),
        removed=tuple(sorted(before.keys() - after.keys())))


def write_config(root: NodeRoot, text: str) -> bool:
    """Write the config if it changed; True when it did."""
    make_private_dirs(root.supervisor)
    root.supervisor.chmod(0o700)  # holds the control socket: only the owner may drive it
    make_private_dirs(root.logs)
    path = config_path(root)
    if path.exists() and path.read_text() == text:
        return False
    write_atomic(root.supervisor, CONFIG_NAME, text.encode())
    return True


def daemon_command(root: NodeRoot, python: str = sys.executable) -> list[str]:
    """How a node's supervisord is started: by deploy (`Supervisor.start_daemon`), and by the
    boot unit (sfarm.runtime.boot, with --nodaemon), in the node root with PYTHONUNBUFFERED=1.
    It is supervisor's, made to keep logs/ in place (sfarm.runtime.supervisord)."""
    return [python, "-m", DAEMON_MODULE, "-c", str(config_path(root))]


# What supervisord, and every worker and service it starts, inherits from the command that
# starts it: enough to run and reach the exchanges (proxies, certificates, numba's and polars'
# settings: NUMBA_CACHE_DIR where the package's directory is not the node user's), nothing
# else of the operator's session (no *_API_KEY, which would win over a rotated secrets file;
# no SSH_AUTH_SOCK, the operator's forwarded agent). PYTHONPATH too, made absolute (supervisord
# runs in the node root): where sfarm itself is found through it (a checkout), supervisord
# (sfarm.runtime.supervisord) and the workers run the sfarm that started them.
INHERITED = ("PATH", "PYTHONPATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE",
             "TZ", "TMPDIR", "XDG_RUNTIME_DIR", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
             "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "REQUESTS_CA_BUNDLE")
INHERITED_PREFIXES = ("NUMBA_", "POLARS_")


def supervised_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a node's supervisord starts with: `INHERITED` and the variables named
    `INHERITED_PREFIXES*` from `environ` (this process's by default), and PYTHONUNBUFFERED
    (workers' logs as they come)."""
    source = os.environ if environ is None else environ
    kept = {name: value for name, value in source.items()
            if name in INHERITED or name.startswith(INHERITED_PREFIXES)}
    kept.setdefault("PATH", os.defpath)
    if kept.get("PYTHONPATH"):
        kept["PYTHONPATH"] = os.pathsep.join(
            os.path.abspath(entry) for entry in kept["PYTHONPATH"].split(os.pathsep) if entry)
    return {**kept, "PYTHONUNBUFFERED": "1"}


class Supervisor:
    """A client of one node root's supervisord."""

    def __init__(self, root: NodeRoot) -> None:
        self.root = root

    @property
    def _proxy(self) -> Any:
        # A fresh transport per call: one that saw a failed request (supervisord not up yet)
        # refuses every later one.
        transport = SupervisorTransport(serverurl=f"unix://{socket_path(self.root)}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def is_running(self) -> bool:
        try:
            return self._proxy.supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def start_daemon(self, timeout_s: float = 15.0) -> None:
        """Start supervisord for this root unless it already runs."""
        if self.is_running():
            return
        # supervisord opens its own log before anything else: logs/ may have been deleted
        # while it was down (it makes it again itself once it runs: sfarm.runtime.supervisord).
        make_private_dirs(self.root.logs)
        # The umask from the start: supervisord opens its log and socket before it daemonizes
        # (where its config's umask= takes over).
        started = subprocess.run(daemon_command(self.root), check=False, cwd=self.root.path,
                                 env=supervised_environment(), umask=DAEMON_UMASK,
                                 capture_output=True, text=True)
        # Another command may have started it meanwhile (its exit says the socket is taken).
        if started.returncode != 0 and not self.is_running():
            said = (started.stderr or started.stdout).strip().splitlines()
            raise RunError(f"supervisord did not start for {self.root.path}"
                           + (f": {said[-1]}" if said else ""),
                           hint=f"see {self.root.logs / 'supervisord.log'}")
        deadline = time.monotonic() + timeout_s
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RunError(f"supervisord did not start for {self.root.path}",
                               hint=f"see {self.root.logs / 'supervisord.log'}")
            time.sleep(0.1)

    def apply_config(self) -> ProgramChanges:
        """Load a changed config: add new programs, restart changed ones, drop removed ones;
        the programs of each."""
        added, changed, removed = self._proxy.supervisor.reloadConfig()[0]
        for name in removed + changed:
            self._call_quietly("stopProcessGroup", name)
            self._proxy.supervisor.removeProcessGroup(name)
        for name in changed + added:
            self._proxy.supervisor.addProcessGroup(name)
        return ProgramChanges(tuple(sorted(added)), tuple(sorted(changed)),
                              tuple(sorted(removed)))

    def processes(self) -> dict[str, dict[str, Any]]:
        """name -> supervisord's process info (statename, pid, ...)."""
        return {info["name"]: info for info in self._proxy.supervisor.getAllProcessInfo()}

    def start(self, name: str) -> None:
        self._call_quietly("startProcess", name, "ALREADY_STARTED")

    def stop(self, name: str) -> None:
        self._call_quietly("stopProcess", name, "NOT_RUNNING")

    def shutdown(self, timeout_s: float = 20.0) -> None:
        """Stop every process and supervisord itself; wait until its socket and its process
        are gone (it removes the socket and its pid file, then exits: a `down` that returned
        at the socket left supervisord running for a moment, found by no sweep)."""
        if not self.is_running():
            return
        pid = self._proxy.supervisor.getPID()
        started = process_start(pid)
        self._proxy.supervisor.shutdown()
        deadline = time.monotonic() + timeout_s
        while (self.is_running() or socket_path(self.root).exists()
               or (started is not None and process_start(pid) == started)):
            if time.monotonic() > deadline:
                raise RunError(f"supervisord for {self.root.path} did not shut down")
            time.sleep(0.1)

    def _call_quietly(self, method: str, name: str, *benign: str) -> None:
        try:
            getattr(self._proxy.supervisor, method)(name)
        except xmlrpc.client.Fault as fault:
            if not any(code in fault.faultString for code in (*benign, "NOT_RUNNING")):
                raise RunError(f"supervisord {method}({name}): {fault.faultString}") from None
