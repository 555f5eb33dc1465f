"""The transport to a node reached over SSH: each request of the node protocol runs one
`sfarm node call` on the node (sfarm.cli.node), the request on its stdin, the reply on stdout.

The node runs the controller's sfarm: `install` (deploy's first step) puts it into `<root>/venv`
(sfarm.remote.provision; from a wheelhouse the controller sends when the node is offline) unless
the node's `python` already has this version (an image, a configuration tool put it there).
"""

from __future__ import annotations

import posixpath
import shlex

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.inventory import NodeSpec
from sfarm.remote.connection import Connection, expand_home
from sfarm.remote.jump_hosts import jump_hosts
from sfarm.remote.ssh import SSHConnection
from sfarm.remote.wiring import Reach
from sfarm.runtime.protocol import DEPLOY_HINT, ProtocolError, StepResult

VENV_PYTHON = "venv/bin/python"
COMMAND_TIMEOUT_S = 120.0
# Runs `sfarm node ...` with the root's venv when there is one, else the node's python: one
# interpreter start per call (probing the version first doubled the time of a status).
NODE_LAUNCHER = 'py="$1"; shift; [ -x "$py" ] || py="$1"; shift; exec "$py" -m sfarm node "$@"'


class SSHTransport:
    def __init__(self, spec: NodeSpec, connection: Connection) -> None:
        self.spec = spec
        self.connection = connection
        self._root: str | None = None
        self._python: str | None = None  # known after install: no launcher needed then

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
        if self._sfarm_version(self.spec.python) == __version__:
            steps = [StepResult("sfarm", "ok", f"sfarm {__version__} in {self.spec.python}")]
            self._python = self.spec.python
        else:
            from sfarm.remote.provision import provision

            steps = provision(self.connection, self.root, self.spec.python,
                              offline=offline or self.spec.offline)
            self._python = posixpath.join(self.root, VENV_PYTHON)
        return steps, self._python

    def check_install(self, *, offline: bool = False) -> tuple[list[StepResult], str | None]:
        """What `install` would do, doing nothing (a dry run): its steps ("changed": would
        install) and the python the node's workers would run with."""
        if self._sfarm_version(self.spec.python) == __version__:
            self._python = self.spec.python
            return [StepResult("sfarm", "ok", f"sfarm {__version__} in {self.spec.python}")], \
                self._python
        from sfarm.remote.offline import wheelhouse_needed
        from sfarm.remote.provision import provision_needed

        step = provision_needed(self.connection, self.root, self.spec.python)
        venv_python = posixpath.join(self.root, VENV_PYTHON)
        if step.status == "ok":
            self._python = venv_python
        if offline or self.spec.offline:
            return [wheelhouse_needed(step, self.root), step], venv_python
        return [step], venv_python

    def _sfarm_version(self, python: str) -> str | None:
        # `python -m sfarm --version` prints "sfarm X"; a missing interpreter or package fails.
        probe = f"{shlex.quote(python)} -m sfarm --version 2>/dev/null"
        result = self.connection.run(["sh", "-c", probe], check=False, timeout=COMMAND_TIMEOUT_S)
        words = result.stdout_text.split()
        return words[1] if result.ok and len(words) == 2 and words[0] == "sfarm" else None

    def call(self, request: bytes) -> bytes:
        """Run `sfarm node call --root ROOT` on the node with `request` on its stdin."""
        words = ["call", "--root", self.root]
        if self._python is not None:
            launch = [self._python, "-m", "sfarm", "node", *words]
        else:
            launch = ["sh", "-c", NODE_LAUNCHER, "sfarm-node",
                      posixpath.join(self.root, VENV_PYTHON), self.spec.python, *words]
        result = self.connection.run(launch, input=request, timeout=COMMAND_TIMEOUT_S,
                                     check=False)
        if result.ok:
            return result.stdout
        stderr = result.stderr_text
        if result.exit_code == 127 or "No module named sfarm" in stderr:
            raise RunError(f"{self.where} has no sfarm {__version__} in "
                           f"{posixpath.join(self.root, 'venv')} nor in its python "
                           f"({self.spec.python}): `sfarm deploy` installs it")
        if "No such command 'call'" in stderr:
            raise ProtocolError(f"{self.where} runs an older sfarm, one without `sfarm node "
                                f"call`; this is sfarm {__version__}", hint=DEPLOY_HINT)
        raise RunError(f"{self.where}: sfarm node call failed: "
                       + (result.stderr_tail(3) or f"exit code {result.exit_code}"))

    def close(self) -> None:
        self.connection.close()
