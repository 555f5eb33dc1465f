"""The transport to a node reached over SSH. A transport that serves (`serve=True`: kept
connections, deploy's phases, a log tail) starts one `sfarm node serve` on the node at its
first request and sends every request to it, for the life of the connection
(sfarm.remote.node_session); otherwise each request runs one `sfarm node call`, the request on
its stdin, the reply on stdout: a one-shot command costs one Python start on the node either
way. Both run the node's commands alone (`python -m sfarm.cli.node_stdio`), not the whole
command line: half the start-up.

Reads (`query`: a status, a log, facts) go instead through a relay to the node's resident agent
(sfarm.remote.relay, sfarm.runtime.agent_server), which supervisord runs once deployed: no
Python start of sfarm on the node; where no agent answers, the relay becomes `sfarm node serve`
itself. Kept connections keep the relay on a channel of its own, beside `sfarm node serve`'s
(started only when something else than a read is asked).

The node runs the controller's sfarm: `install` (deploy's first step) puts it into `<root>/venv`
(sfarm.remote.provision; from a wheelhouse the controller sends when the node is offline) unless
the node's `python` already has this version (an image, a configuration tool put it there).
"""

from __future__ import annotations

import posixpath
import re
import shlex

from sfarm import __version__
from sfarm.errors import RunError, SfarmError
from sfarm.inventory import NodeSpec
from sfarm.remote.connection import Connection, Failure, TransportError, expand_home
from sfarm.remote.jump_hosts import jump_hosts
from sfarm.remote.node_session import NodeSession, SessionEnded, SessionTimeout
from sfarm.remote.relay import RELAY_SOURCE
from sfarm.remote.ssh import SSHConnection
from sfarm.remote.wiring import Reach
from sfarm.runtime.build import sfarm_build
from sfarm.runtime.envelope import DEPLOY_HINT, ProtocolError
from sfarm.runtime.protocol import StepResult

VENV_PYTHON = "venv/bin/python"
COMMAND_TIMEOUT_S = 120.0
NODE_MODULE = "sfarm.cli.node_stdio"  # `sfarm node ...` without the rest of the command line
# Runs the node's python with the root's venv when there is one, else the node's python: one
# interpreter start per call (probing the version first doubled the time of a status).
# (A root under `~/` comes as it is: the shell and the node's python expand it, so the node's
# home is not asked for first, a round trip per command with the default base_dir.)
NODE_LAUNCHER = ('py="$1"; shift; case "$py" in "~/"*) py="$HOME/${py#"~/"}";; esac; '
                 '[ -x "$py" ] || py="$1"; shift; exec "$py" "$@"')
# The version and the code's digest (sfarm.runtime.build) of the sfarm a python has: an image
# with "the same version" of other code is not this sfarm.
BUILD_PROBE = ("import sfarm; from sfarm.runtime.build import sfarm_build; "
               "print('sfarm', sfarm.__version__, sfarm_build())")
_NO_SFARM = re.compile(r"No module named (?:'sfarm'|sfarm$)", re.MULTILINE)


class SSHTransport:
    def __init__(self, spec: NodeSpec, connection: Connection, *, serve: bool = False) -> None:
        self.spec = spec
        self.connection = connection
        self.serve = serve
        self._root: str | None = None
        self._python: str | None = None  # known after install: no launcher needed then
        self._session: NodeSession | None = None  # `sfarm node serve`, kept (serve)
        self._relayed: NodeSession | None = None  # the relay to the resident agent, kept

    @property
    def where(self) -> str:
        return self.connection.where

    @property
    def root(self) -> str:
        """The node root on the node: `<base_dir>/<network>/<node>`, `~` and relative base
        directories taken from the login's home."""
        if self._root is None:
            base = expand_home(self.spec.base_dir, self.connection.home())
            if not base.startswith("/"):
                base = posixpath.join(self.connection.home(), base)
            self._root = posixpath.join(base, self.spec.network, self.spec.name)
        return self._root

    def reach(self) -> Reach:
        target = self._ssh().target
        jumps, jump_keys = jump_hosts(self.connection)
        return Reach(target.host, target.port, target.user, self._ssh().host_key(),
                     jumps=jumps, jump_keys=jump_keys)

    def _ssh(self) -> SSHConnection:
        assert isinstance(self.connection, SSHConnection)  # what the controller gives it
        return self.connection

    def install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        """This sfarm on the node: its python's when it has it, else `<root>/venv`'s, made
        from the node's package index or, `offline`, from a wheelhouse the controller sends."""
        steps = self._in_own_python()
        if steps is None:
            from sfarm.remote.provision import provision

            steps = provision(self.connection, self.root, self.spec.python,
                              offline=offline or self.spec.offline)
            self._python = posixpath.join(self.root, VENV_PYTHON)
        self._end_session()  # an agent started before runs the sfarm found before
        return steps, self._python

    def check_install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        """What `install` would do, doing nothing (a dry run): its steps ("changed": would
        install) and the python the node's workers would run with."""
        own = self._in_own_python()
        if own is not None:
            return own, self._python
        from sfarm.remote.offline import wheelhouse_needed
        from sfarm.remote.provision import provision_needed

        step = provision_needed(self.connection, self.root, self.spec.python)
        venv_python = posixpath.join(self.root, VENV_PYTHON)
        if step.status == "ok":
            self._python = venv_python
        if offline or self.spec.offline:
            return [wheelhouse_needed(step, self.root), step], venv_python
        return [step], venv_python

    def _in_own_python(self) -> list[StepResult] | None:
        """The step of a node whose `python` runs this sfarm already (its workers run with it:
        no venv), or None."""
        if not self._runs_this_sfarm(self.spec.python):
            return None
        self._python = self.spec.python
        return [StepResult("sfarm", "ok", f"sfarm {__version__} in {self.spec.python}")]

    def _runs_this_sfarm(self, python: str) -> bool:
        """Whether `python` on the node has this very sfarm: its version and its code."""
        # Prints "sfarm X BUILD"; a missing interpreter, package or an older sfarm fails. Not
        # `-m sfarm --version`: that loads the whole command line (0.8 s of CPU on the node).
        probe = f"{shlex.quote(python)} -c {shlex.quote(BUILD_PROBE)} 2>/dev/null"
        result = self.connection.run(["sh", "-c", probe], check=False, timeout=COMMAND_TIMEOUT_S)
        return result.ok and result.stdout_text.split() == ["sfarm", __version__, sfarm_build()]

    def _node_root(self) -> str:
        """The root as the node's process resolves it (`~` and a relative base_dir from the
        home sshd starts it in: `root`'s result), without asking for the home first."""
        base = self.spec.base_dir
        return (self.root if self._root or (base.startswith("~") and not base.startswith("~/")
                                            and base != "~")
                else posixpath.join(base, self.spec.network, self.spec.name))

    def _python_command(self, *words: str) -> list[str]:
        """The node's python (its venv's, else `python`) with `words`."""
        if self._python is not None:
            return [self._python, *words]
        return ["sh", "-c", NODE_LAUNCHER, "sfarm-node",
                posixpath.join(self._node_root(), VENV_PYTHON), self.spec.python, *words]

    def _node_command(self, command: str) -> list[str]:
        return self._python_command("-m", NODE_MODULE, command, "--root", self._node_root())

    def _relay_command(self, command: str) -> list[str]:
        """The relay to the node's resident agent, which becomes `sfarm node COMMAND` (call,
        serve) when no agent answers (sfarm.remote.relay): its stdin and stdout are that
        command's either way."""
        root = self._node_root()
        return self._python_command("-I", "-S", "-c", RELAY_SOURCE, root,
                                    command, "--root", root)

    def call(self, request: bytes) -> bytes:
        """The node's reply to `request`: from its agent (`sfarm node serve`, started at the
        first request) when this transport serves, else from one `sfarm node call`."""
        if self.serve:
            return self._call_session(request, relayed=False)
        result = self.connection.run(self._node_command("call"), input=request,
                                     timeout=COMMAND_TIMEOUT_S, check=False)
        if result.ok and result.stdout.strip():
            return result.stdout
        raise self._failure("call", result.exit_code, result.stderr_text)

    def query(self, request: bytes) -> bytes:
        """The node's reply to `request`, a read: through the relay to the node's resident
        agent (sfarm.remote.relay), which is `sfarm node serve` where no agent answers; kept
        on a channel of its own when this transport serves. A read is asked twice when the
        agent went away without answering it (a deploy restarting it): reads change nothing."""
        if self.serve:
            return self._call_session(request, relayed=True)
        for attempt in range(2):
            result = self.connection.run(self._relay_command("call"), input=request,
                                         timeout=COMMAND_TIMEOUT_S, check=False)
            if result.ok and result.stdout.strip():
                return result.stdout
            if not (result.ok and attempt == 0 and not result.stderr.strip()):
                break
        raise self._failure("call", result.exit_code, result.stderr_text)

    def _call_session(self, request: bytes, *, relayed: bool) -> bytes:
        """`request` on the kept session: the relay's (reads) or `sfarm node serve`'s."""
        for attempt in range(2):
            session = self._relayed if relayed else self._session
            fresh = session is None or not session.alive
            if session is None or fresh:
                self._end_session(relayed=relayed)
                command = (self._relay_command("serve") if relayed
                           else self._node_command("serve"))
                session = NodeSession(self._ssh().spawn(command), self.where,
                                      lambda pid, signal: self._signal(pid, signal))
                if relayed:
                    self._relayed = session
                else:
                    self._session = session
            try:
                return session.call(request, COMMAND_TIMEOUT_S)
            except SessionEnded as ended:
                self._end_session(relayed=relayed)
                if relayed and not fresh and attempt == 0:
                    continue  # the agent that answered before went away (a deploy): again
                raise self._failure("serve", ended.exit_code, ended.stderr) from None
            except SessionTimeout:
                self._end_session(relayed=relayed)
                raise TransportError(Failure.TIMEOUT, f"{self.where}: sfarm node serve gave "
                                     f"no reply within {COMMAND_TIMEOUT_S:g} s and was "
                                     "terminated") from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _signal(self, pid: int, signal: str) -> None:
        self.connection.run(["kill", f"-{signal}", str(pid)], check=False, timeout=10)

    def _failure(self, command: str, exit_code: int | None, stderr: str) -> SfarmError:
        """Why `sfarm node COMMAND` gave no reply, from its exit code and stderr."""
        if exit_code == 127 or _NO_SFARM.search(stderr):
            return RunError(f"{self.where} has no sfarm {__version__} in "
                            f"{posixpath.join(self.root, 'venv')} nor in its python "
                            f"({self.spec.python}): `sfarm deploy` installs it")
        if f"No such command '{command}'" in stderr or "No module named 'sfarm." in stderr \
                or (exit_code == 0 and not stderr.strip()):
            return ProtocolError(f"{self.where} runs an older sfarm, one without `sfarm node "
                                 f"{command}`; this is sfarm {__version__}", hint=DEPLOY_HINT)
        tail = "\n".join([line[:300] for line in stderr.splitlines() if line.strip()][-3:])
        ended = f"exit code {exit_code}" if exit_code is not None else "the channel closed"
        return RunError(f"{self.where}: sfarm node {command} failed: " + (tail or ended))

    def _end_session(self, *, relayed: bool | None = None) -> None:
        """End the kept session of reads (`relayed`), of the others (False), or both (None)."""
        if relayed is not False and self._relayed is not None:
            self._relayed.close()
            self._relayed = None
        if not relayed and self._session is not None:
            self._session.close()
            self._session = None

    def close(self) -> None:
        self._end_session()
        self.connection.close()
