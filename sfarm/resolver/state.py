"""`run/resolver.json`: the resolver's view of each input it follows, for `sfarm status`.

An input is stale from the moment the resolver can no longer tell that its mirror holds the
producer's latest commit (the producer unreachable, a pull failing) until a pull succeeds again.
The board is shared by the resolver's threads and written atomically on every change and every
`WRITE_INTERVAL_S`, so an old file means a resolver that is not running.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from sfarm.data.fsio import write_atomic
from sfarm.resolver.routes import Routes
from sfarm.status import DatasetProgress, InputStatus

STATE_FILE = "run/resolver.json"
WRITE_INTERVAL_S = 2.0
SILENT_AFTER_S = 3 * WRITE_INTERVAL_S


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


def input_statuses(routes: Routes, state: ResolverState | None, task: str,
                   reported: Sequence[DatasetProgress], now: float) -> list[InputStatus]:
    """A task's inputs for `sfarm status`: its own node's datasets as the task reports them,
    the mirrored ones as the resolver does. A resolver whose file is old has stopped: what it
    follows is stale since its last word."""
    own = {progress.id: progress.last_ts for progress in reported}
    silent_since = None
    if state is not None and now - state.updated_at > SILENT_AFTER_S:
        silent_since = state.updated_at
    statuses = []
    for entry in routes.inputs.get(task, ()):
        if entry.source_node == routes.node:
            statuses.append(InputStatus(id=entry.id, source_node=entry.source_node,
                                        last_ts=own.get(entry.id)))
            continue
        held = state.of(entry.id, entry.source_node) if state is not None else None
        stale = held.stale_since if held is not None else None
        if silent_since is not None:
            stale = min(stale or silent_since, silent_since)
        statuses.append(InputStatus(id=entry.id, source_node=entry.source_node,
                                    last_ts=held.last_ts if held else own.get(entry.id),
                                    stale_since=stale))
    return statuses


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
