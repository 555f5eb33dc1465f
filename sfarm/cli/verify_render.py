"""What `sfarm data verify` prints of the store's reports: each dataset's result, its problems
and warnings, what a repair kept and lost, and what to do next."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from sfarm.cli.console import err, out
from sfarm.data.layout import format_ts

if TYPE_CHECKING:
    from sfarm.data import RepairReport, VerifyReport

REPAIR_HINT = ("`sfarm data verify --repair [ID] --root ROOT` moves damaged or unreadable files "
               "to ROOT/quarantine/ (never deletes them) and rewrites the manifest; the next "
               "`sfarm mine` fetches the missing candles (gaps) again")

AFTER_REPAIR_HINT = ("the next `sfarm mine` of these datasets fetches their gaps (what the "
                     "repair lost included) from the exchange again")


def mirror_hint(dataset_id: str, node: str) -> str:
    return f"a mirror is a copy: pull it again (sfarm data pull {node} {dataset_id})"


def render_repairs(repairs: list[RepairReport]) -> None:
    for report in repairs:
        if not report.repaired:
            out.print(f"[green]nothing to repair[/] {report.dataset_id}")
            continue
        lost = ("an unknown number of" if report.rows_lost is None
                else f"{report.rows_lost:,}")
        out.print(f"[yellow]repaired[/] {report.dataset_id}: {report.rows_after:,} rows kept "
                  f"(generation {report.generation}), {lost} rows lost"
                  + (f"; files moved to {report.quarantine}" if report.quarantine else ""))
        for note in report.notes:
            out.print(f"  {note}")
        for file in report.lost:
            rows = "" if file.rows is None else f", {file.rows:,} rows"
            where = "was missing" if file.moved_to is None else "moved aside"
            out.print(f"  lost {file.file} ({file.reason}): {format_ts(file.first_ts)} to "
                      f"{format_ts(file.last_ts)} UTC{rows}, {where}")


def render_reports(root: Path, reports: list[VerifyReport]) -> None:
    if not reports:
        err.print(f"no datasets under {root}/data or {root}/mirror")
        return
    table = Table(title=f"verify {root}", title_justify="left")
    for column in ("id", "node", "rows", "partitions", "gaps", "result"):
        table.add_column(column, justify="right" if column in ("rows", "partitions", "gaps")
                         else "left")
    for report in reports:
        result = "[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problems[/]"
        if report.ok and report.warnings:
            result += f" [yellow]({len(report.warnings)} warnings)[/]"
        gaps = str(len(report.gaps)) + (f" (+{report.excused_gaps} exchange)"
                                        if report.excused_gaps else "")
        table.add_row(report.dataset_id, report.node or "", f"{report.rows:,}",
                      str(report.partitions), gaps, result)
    out.print(table)
    for report in reports:
        for problem in report.problems:
            out.print(f"[red]problem[/] {report.dataset_id}: {problem}")
        for warning in report.warnings:
            out.print(f"[yellow]warning[/] {report.dataset_id}: {warning}")
