"""The dashboard's log pane: it follows the log of the selected task (all of a node's workers
when a node is selected), as `sfarm logs -f` does, through the farm service's log tail."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.widgets import RichLog
from textual.worker import get_current_worker

from sfarm.farm import Farm
from sfarm.tui.actions import Selection

FIRST_LINES = 200  # lines shown first; the pane keeps five times as many


class LogPane(RichLog):
    def __init__(self, farm: Farm, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=FIRST_LINES * 5, wrap=True, markup=False)
        self.farm = farm
        self.following: Selection | None = None  # whose log the pane follows

    def on_mount(self) -> None:
        self.border_title = "log"

    def follow(self, selection: Selection) -> None:
        """Follow the log of `selection` (a task, or a node's workers); nothing for the
        network. Following the same one again changes nothing."""
        target = selection if selection.node is not None else None
        if target == self.following:
            return
        self.following = target
        self.clear()
        self.border_title = f"log: {target.label}" if target else "log"
        if target is not None and target.node is not None:
            self._tail(target.node, target.task)
        else:
            self.workers.cancel_group(self, "log")

    @work(thread=True, group="log", exclusive=True, exit_on_error=False)
    def _tail(self, node: str, task: str | None) -> None:
        worker = get_current_worker()
        try:
            with self.farm.logs(node, task, FIRST_LINES) as tail:
                several = len(tail.tasks) > 1
                first = True
                while not worker.is_cancelled:
                    lines = [f"{chunk.task} {line}" if several else line
                             for chunk in tail.read() for line in chunk.lines]
                    if first and not lines:
                        lines = ["(nothing logged yet)"]
                    first = False
                    if lines and not worker.is_cancelled:
                        self.app.call_from_thread(self._write_lines, lines)
                    _sleep_unless_cancelled(tail.poll_interval_s, lambda: worker.is_cancelled)
        except Exception as error:
            if not worker.is_cancelled:
                self.app.call_from_thread(self.write, Text(f"cannot read the log: {error}",
                                                           style="red"))

    def _write_lines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(Text(line))


def _sleep_unless_cancelled(seconds: float, cancelled: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not cancelled() and time.monotonic() < deadline:
        time.sleep(0.05)
