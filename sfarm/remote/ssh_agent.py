"""The agent of a node reached over SSH: its side of every farm command runs on the node as
`sfarm node ...` (sfarm.cli.node), fed and read as JSON (sfarm.runtime.protocol).

The node runs the controller's sfarm: `deploy` installs it into `<root>/venv` (sfarm.remote.
provision) unless the node's `python` already has this version (an image, a configuration
tool put it there).
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Iterable
from pathlib import Path

from sfarm import __version__
from sfarm.errors import RunError
from sfarm.inventory import LoadedInventory, NodeSpec
from sfarm.remote.connection import Connection, expand_home
from sfarm.runtime.node import Action, LogChunk, StepResult
from sfarm.runtime.protocol import deployment_to_json, steps_from_json
from sfarm.status import NodeStatus, TaskStatus

VENV_PYTHON = "venv/bin/python"
COMMAND_TIMEOUT_S = 120.0
# Runs `sfarm node ...` with the root's venv when there is one, else the node's python: one
# interpreter start per command (probing the version first doubled the time of a status).
NODE_LAUNCHER = 'py="$1"; shift; [ -x "$py" ] || py="$1"; shift; exec "$py" -m sfarm node "$@"'


class SSHAgent:
    def __init__(self, spec: NodeSpec, connection: Connection) -> None:
        self.spec = spec
        self.connection = connection
        self._root: str | None = None
        self._python: str | None = None

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

    def _sfarm_version(self, python: str) -> str | None:
        # `python -m sfarm --version` prints "sfarm X"; a missing interpreter or package fails.
        probe = f"{shlex.quote(python)} -m sfarm --version 2>/dev/null"
        result = self.connection.run(["sh", "-c", probe], check=False, timeout=COMMAND_TIMEOUT_S)
        words = result.stdout_text.split()
        return words[1] if result.ok and len(words) == 2 and words[0] == "sfarm" else None

    def _node(self, *argv: str, input: bytes = b"") -> bytes:
        """Run `sfarm node ARGV --root ROOT` on the node; the node refuses to act when it runs
        another sfarm version than this one."""
        words = ["--expect-version", __version__, *argv, "--root", self.root]
        if self._python is not None:
            launch = [self._python, "-m", "sfarm", "node", *words]
        else:
            launch = ["sh", "-c", NODE_LAUNCHER, "sfarm-node",
                      posixpath.join(self.root, VENV_PYTHON), self.spec.python, *words]
        result = self.connection.run(launch, input=input, timeout=COMMAND_TIMEOUT_S,
                                     check=False)
        if result.ok:
            return result.stdout
        stderr = result.stderr_text
        if result.exit_code == 127 or "No module named sfarm" in stderr:
            raise RunError(f"{self.connection.where} has no sfarm {__version__} in "
                           f"{posixpath.join(self.root, 'venv')} nor in its python "
                           f"({self.spec.python}): `sfarm deploy` installs it")
        lines = [line for line in stderr.splitlines() if line.strip()]
        raise RunError(f"{self.connection.where}: sfarm node {argv[0]} failed: "
                       + ("\n".join(lines[-3:]) or f"exit code {result.exit_code}"))

    def deploy(self, inventory: LoadedInventory) -> list[StepResult]:
        from sfarm.remote.deploy import build_deployment
        from sfarm.remote.provision import provision

        if self._sfarm_version(self.spec.python) == __version__:
            self._python = self.spec.python
            steps = [StepResult("sfarm", "ok", f"sfarm {__version__} in {self.spec.python}")]
        else:
            steps = [provision(self.connection, self.root, self.spec.python)]
            self._python = posixpath.join(self.root, VENV_PYTHON)
        deployment = build_deployment(inventory, self.spec, Path(self.root), self._python)
        return steps + steps_from_json(self._node("apply", input=deployment_to_json(deployment)))

    def status(self, tasks: dict[str, str]) -> NodeStatus:
        rows = json.loads(self._node("status", input=json.dumps(tasks).encode()))
        return NodeStatus(name=self.spec.name, host=self.spec.host, reachable=True,
                          tasks=[TaskStatus.model_validate(row) for row in rows])

    def control(self, action: Action, names: Iterable[str]) -> list[StepResult]:
        words = [word for name in names for word in ("--task", name)]
        return steps_from_json(self._node("control", action, *words))

    def set_live(self, names: Iterable[str], armed: bool, command: str) -> list[StepResult]:
        words = [word for name in names for word in ("--task", name)]
        return steps_from_json(self._node("live", "--arm" if armed else "--disarm",
                                          "--by", command, *words))

    def down(self) -> StepResult:
        return steps_from_json(self._node("down"))[0]

    def read_log(self, name: str | None, offset: int | None, lines: int) -> LogChunk:
        words = ["log", "--json", "--lines", str(lines)]
        words += ["--task", name] if name else []
        words += ["--offset", str(offset)] if offset is not None else []
        document = json.loads(self._node(*words))
        return LogChunk(list(document["lines"]), int(document["offset"]))

    def close(self) -> None:
        self.connection.close()
