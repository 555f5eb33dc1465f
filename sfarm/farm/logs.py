"""Reading the logs of a node's workers and services: first their last lines, then what each
adds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from sfarm.inventory.problems import did_you_mean, known_names
from sfarm.remote.agent import NodeAgent


def unknown_log_hint(name: str, tasks: Sequence[str], services: Sequence[str]) -> str:
    """What `sfarm logs NODE NAME` can read instead of `name`: a near miss, then the node's
    tasks and its services."""
    known = f"{known_names('tasks', tasks)}; {known_names('services', services)}"
    near = did_you_mean(name, [*tasks, *services])
    return f"{near} ({known})" if near else known


@dataclass(frozen=True)
class LogLines:
    task: str
    lines: list[str]


class LogTail:
    """The logs of some tasks of one node, read through its agent (held open until `close`):
    the first `read()` returns the last `lines` lines of each, every later one what was written
    since (from the start again after supervisord rotated a log)."""

    def __init__(self, agent: NodeAgent, tasks: list[str], lines: int) -> None:
        self.agent = agent
        self.tasks = tasks
        self.lines = lines
        self._offsets: dict[str, int] = {}
        # Polling a local file is cheap; over SSH every read is a command on the node.
        self.poll_interval_s = 0.5 if agent.spec.is_local else 1.0

    def read(self) -> list[LogLines]:
        chunks = []
        for task in self.tasks:
            chunk = self.agent.read_log(task, self._offsets.get(task), self.lines)
            self._offsets[task] = chunk.offset
            chunks.append(LogLines(task, chunk.lines))
        return chunks

    def close(self) -> None:
        self.agent.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
