"""Tables for people as aligned text: one line per row, columns two spaces apart (a file, a
pipe, a terminal wide enough), so a row is one line for grep and 100,000 rows print in a
fraction of a second. rich's Table measures, pads and renders every cell, ~1 ms a row (100 s
for `sfarm data show --tail 200000`, 10-20 ms of a backtest's report): it is kept for a few rows
in a terminal too narrow for them, where it shrinks the columns and wraps their cells."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, TypeVar

from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

GAP = "  "
# More rows than this in a narrow terminal are aligned text too (each line then folded by the
# terminal at the same place, so the folded parts still line up): rich's Table would take
# seconds to minutes to lay them out.
WRAPPED_ROWS = 200
CHUNK_ROWS = 1000  # lines written at once: the first appear before the last are joined

T = TypeVar("T")


@dataclass(frozen=True)
class Column:
    """A column's header and its cells as printed; `styles`, if any, one per cell."""

    header: str
    cells: Sequence[str]
    left: bool = False  # text reads from the left; numbers and times line up on the right
    styles: Sequence[str] | None = None

    @property
    def width(self) -> int:
        return max(len(self.header), max(map(len, self.cells), default=0))

    def padded(self, width: int) -> list[str]:
        """The header, then the cells, each padded to `width` on the side away from its
        alignment."""
        pad = str.ljust if self.left else str.rjust
        return [pad(self.header, width), *(pad(cell, width) for cell in self.cells)]


def print_table(console: Console, title: str, columns: Sequence[Column]) -> None:
    """`columns` under their headers and `title`: aligned text when it fits the console's
    width or the console is a file or a pipe (then one line per row however wide), else
    rich's wrapping Table (for up to WRAPPED_ROWS rows)."""
    widths = [column.width for column in columns]
    rows = len(columns[0].cells) if columns else 0
    if (console.is_terminal and rows <= WRAPPED_ROWS
            and sum(widths) + len(GAP) * (len(widths) - 1) > console.width):
        console.print(wrapping_table(title, columns), soft_wrap=False)  # it fits the width
        return
    rows_and_header = zip(*(column.padded(width)
                            for column, width in zip(columns, widths, strict=True)), strict=True)
    console.print(Text(title, style="italic"), soft_wrap=True)
    console.print(Text(GAP.join(next(rows_and_header)), style="bold"), soft_wrap=True)
    if any(column.styles is not None for column in columns):
        for chunk in _chunks(_styled_lines(columns, rows_and_header)):
            console.print(Text("\n").join(chunk), soft_wrap=True)
    else:
        # Plain lines straight to the console's file: rich's rendering of a Text costs ~10 µs
        # a line, more than formatting the cells (the title and header above keep its styles).
        for lines in _chunks(map(GAP.join, rows_and_header)):
            console.file.write("\n".join(lines) + "\n")


def _styled_lines(columns: Sequence[Column], rows: Iterator[tuple[str, ...]]) -> Iterator[Text]:
    for index, row in enumerate(rows):
        line = Text()
        for position, (column, cell) in enumerate(zip(columns, row, strict=True)):
            line.append(GAP if position else "")
            line.append(cell, style=None if column.styles is None else column.styles[index])
        yield line


def _chunks(items: Iterator[T]) -> Iterator[list[T]]:
    while chunk := list(islice(items, CHUNK_ROWS)):
        yield chunk


def wrapping_table(title: str, columns: Sequence[Column]) -> Table:
    from rich.table import Table  # only a narrow terminal's few rows pay for it

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.header, justify="left" if column.left else "right")
    for index, row in enumerate(zip(*(column.cells for column in columns), strict=True)):
        table.add_row(*(Text(cell, style="" if column.styles is None else column.styles[index])
                        for column, cell in zip(columns, row, strict=True)))
    return table
