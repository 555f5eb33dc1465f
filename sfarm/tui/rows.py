"""The dashboard's task table as data: one row per task (and one per node that did not answer),
and the filter an operator types above it. Pure: a status and a clock in, rows out, tested
without a terminal."""

from __future__ import annotations

from dataclasses import dataclass

from sfarm.data.layout import format_ts
from sfarm.farm.status import format_age, newest_candle, task_note
from sfarm.status import NetworkStatus

COLUMNS = ("node", "task", "kind", "state", "heartbeat", "last candle", "lag", "rows", "note")
UNREACHABLE = "unreachable"  # the state of a node's row when the node did not answer


@dataclass(frozen=True)
class TaskRow:
    """One line of the table, every cell already text."""

    node: str
    task: str | None  # None: the row of a node that did not answer
    kind: str
    state: str
    heartbeat: str
    last_candle: str
    lag: str
    rows: str
    note: str

    @property
    def key(self) -> str:
        """Unique in a network: a task may be placed on several nodes."""
        return f"{self.node}/{self.task or ''}"

    def cells(self) -> tuple[str, ...]:
        return (self.node, self.task or "-", self.kind, self.state, self.heartbeat,
                self.last_candle, self.lag, self.rows, self.note)


def task_rows(status: NetworkStatus, now: float) -> list[TaskRow]:
    """The table's rows in node order, then task order; a node that did not answer is one row
    in state `unreachable` with its reason (its tasks' last known state is not shown as if
    current)."""
    rows = []
    for node in status.nodes:
        if not node.reachable:
            rows.append(TaskRow(node.name, None, "-", UNREACHABLE, "-", "-", "-", "-",
                                first_line(node.error or "no reason given")))
            continue
        for task in node.tasks:
            rows.append(TaskRow(
                node.name, task.name, task.kind, task.state, format_age(task.heartbeat_age_s),
                format_ts(newest_candle(task)), format_age(task.lag_s),
                f"{sum(dataset.rows for dataset in task.datasets):,}" if task.datasets else "-",
                first_line(task_note(task, now))))
    return rows


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


@dataclass(frozen=True)
class RowFilter:
    """What the operator typed: `state:`, `node:` and `kind:` terms (each may list values
    separated by commas: `state:failed,stale`), and words that must each appear somewhere in
    the row. Case does not matter; an empty filter keeps every row."""

    states: frozenset[str] = frozenset()
    nodes: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> RowFilter:
        fields: dict[str, set[str]] = {"state": set(), "node": set(), "kind": set()}
        words = []
        for term in text.lower().split():
            name, colon, values = term.partition(":")
            if colon and name in fields and values:
                fields[name].update(value for value in values.split(",") if value)
            else:
                words.append(term)
        return cls(frozenset(fields["state"]), frozenset(fields["node"]),
                   frozenset(fields["kind"]), tuple(words))

    def matches(self, row: TaskRow) -> bool:
        if self.states and row.state.lower() not in self.states:
            return False
        if self.nodes and row.node.lower() not in self.nodes:
            return False
        if self.kinds and row.kind.lower() not in self.kinds:
            return False
        text = " ".join(row.cells()).lower()
        return all(word in text for word in self.words)

    def __bool__(self) -> bool:
        return bool(self.states or self.nodes or self.kinds or self.words)
