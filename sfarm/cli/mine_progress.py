"""`sfarm mine`'s progress bars on stderr: one bar per dataset, candle slots walked and the
rate. Apart from the command so that rich's progress machinery loads when a mine runs, not
with every command's help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from sfarm.mining import MineProgress


class _RateColumn(ProgressColumn):
    """Candles per second, from rich's smoothed speed."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s", style="cyan")


class _CandlesColumn(ProgressColumn):
    """Candle slots walked / planned (planned grows while the live edge moves)."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("loading markets", style="dim")
        return Text(f"{task.completed:,.0f}/{task.total:,.0f}")


class ProgressView:
    """One bar per dataset; totals grow while the live edge moves."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=16),
            _CandlesColumn(),
            _RateColumn(), TimeRemainingColumn(),
            console=console, disable=not console.is_terminal, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def update(self, status: MineProgress) -> None:
        task = self.tasks.get(status.dataset_id)
        if task is None:
            task = self.progress.add_task(status.dataset_id, total=None)
            self.tasks[status.dataset_id] = task
        if status.phase == "starting":
            return
        self.progress.update(task, total=status.planned, completed=status.done_slots)
