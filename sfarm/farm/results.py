"""What a farm command did, as data: each node's outcome and the notes a person should read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sfarm.remote.controller import NodeOutcome

NoteLevel = Literal["note", "error"]


@dataclass(frozen=True)
class Note:
    """Something to tell the operator beside the steps (a live task that places no order)."""

    level: NoteLevel
    message: str
    node: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "node": self.node, "message": self.message}


@dataclass(frozen=True)
class FarmReport:
    """A command's outcome on every selected node; `ok` when no node failed. In a dry run
    (`dry_run`) nothing was changed: a "changed" step says what would change."""

    command: str
    nodes: list[NodeOutcome]
    notes: list[Note] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return all(outcome.ok for outcome in self.nodes)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.nodes)

    def to_json(self) -> dict[str, Any]:
        return {"command": self.command, "ok": self.ok, "dry_run": self.dry_run,
                "nodes": [outcome.to_json() for outcome in self.nodes],
                "notes": [note.to_json() for note in self.notes],
                "summary": self.summary.to_json()}


@dataclass(frozen=True)
class Summary:
    """The recap a run ends with (as Ansible's PLAY RECAP): nodes that failed, steps by
    status."""

    nodes: int
    failed: tuple[str, ...]  # the nodes that failed, in node order
    steps: dict[str, int]  # step status -> how many, over every node

    @classmethod
    def of(cls, outcomes: list[NodeOutcome]) -> Summary:
        steps = {"ok": 0, "changed": 0, "failed": 0}
        for outcome in outcomes:
            for step in outcome.steps:
                steps[step.status] = steps.get(step.status, 0) + 1
        return cls(len(outcomes), tuple(o.node for o in outcomes if not o.ok), steps)

    def to_json(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "ok": self.nodes - len(self.failed),
                "failed": list(self.failed), "steps": self.steps}
