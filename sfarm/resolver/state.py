"""`run/resolver.json`: the resolver's view of each input it follows, for `sfarm status`.

An input is stale from the moment the resolver can no longer tell that its mirror holds the
producer's latest commit (the producer unreachable, a pull failing) until a pull succeeds again.
The board is shared by the resolver's threads and written atomically on every change and every
`WRITE_INTERVAL_S`, so an old file means a resolver that is not running.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sfarm.data.fsio import write_atomic

STATE_FILE = "run/resolver.json"
WRITE_INTERVAL_S = 2.0


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class InputState(_Model):
    id: str
    source_node: str
    last_ts: int | None = None  # the mirror's last candle (ms)
    rows: int = 0
    stale_since: float | None = None  # unix seconds; None while the mirror is known current
    error: str | None = None
    pulled_at: float | None = None  # the last pull that changed the mirror


class ResolverState(_Model):
    updated_at: float
    inputs: list[InputState] = []

    def of(self, dataset_id: str, source_node: str) -> InputState | None:
        for entry in self.inputs:
            if entry.id == dataset_id and entry.source_node == source_node:
                return entry
        return None


def read_state(root: Path) -> ResolverState | None:
    try:
        return ResolverState.model_validate_json((root / STATE_FILE).read_bytes())
    except (FileNotFoundError, ValueError):
        return None


class Board:
    """The inputs' states, updated by the followers' threads, kept on disk."""

    def __init__(self, root: Path, inputs: list[InputState]) -> None:
        self.root = root
        self._inputs = {(entry.source_node, entry.id): entry for entry in inputs}
        self._lock = threading.Lock()

    def update(self, node: str, dataset_id: str, **changes: object) -> None:
        with self._lock:
            key = (node, dataset_id)
            self._inputs[key] = self._inputs[key].model_copy(update=changes)
            self._write()

    def fail(self, node: str, dataset_id: str, error: str) -> None:
        """A pull of one input failed: stale from now (unless it already was)."""
        with self._lock:
            key = (node, dataset_id)
            entry = self._inputs[key]
            self._inputs[key] = entry.model_copy(update={
                "stale_since": entry.stale_since or time.time(), "error": error})
            self._write()

    def stale(self, node: str, since: float, error: str) -> None:
        """Every input from `node` is stale (since `since`, unless it already was)."""
        with self._lock:
            for key, entry in self._inputs.items():
                if key[0] == node:
                    self._inputs[key] = entry.model_copy(update={
                        "stale_since": entry.stale_since or since, "error": error})
            self._write()

    def snapshot(self) -> ResolverState:
        with self._lock:
            return ResolverState(updated_at=time.time(), inputs=list(self._inputs.values()))

    def write(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        state = ResolverState(updated_at=time.time(), inputs=list(self._inputs.values()))
        path = self.root / STATE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path.parent, path.name, state.model_dump_json(indent=1).encode(),
                     sync_dir=False)
