"""The node root (SPEC section 5): where each file of a node lives, as pure path functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sfarm.data.layout import DATA_DIR, MIRROR_DIR


@dataclass(frozen=True)
class NodeRoot:
    path: Path

    @property
    def inventory(self) -> Path:
        return self.path / "inventory.toml"

    @property
    def data(self) -> Path:
        return self.path / DATA_DIR

    @property
    def mirror(self) -> Path:
        return self.path / MIRROR_DIR

    @property
    def run(self) -> Path:
        return self.path / "run"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def secrets(self) -> Path:
        return self.path / "secrets"

    @property
    def supervisor(self) -> Path:
        return self.path / "supervisor"

    def heartbeat(self, task: str) -> Path:
        return self.run / f"{task}.json"

    def log(self, task: str) -> Path:
        return self.logs / f"{task}.log"

    def task_lock(self, task: str) -> Path:
        """Held by the worker running `task` (sfarm.runtime.task_lock)."""
        return self.run / f"{task}.lock"

    @property
    def node_lock(self) -> Path:
        """Held by the deploy changing this root (sfarm.runtime.node_lock)."""
        return self.path / "deploy.lock"
