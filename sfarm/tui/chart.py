"""One chart of a series against time, drawn with plotext: the dashboard's detail pane draws it
in a textual-plotext widget, `sfarm report` prints it, so both show the same chart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Series = tuple[str, list[int], list[float]]  # a chart's title, times (ms) and values

DATE_FORM = "d/m H:M"  # plotext's spelling of the labels' %d/%m %H:%M


def draw_series(plt: Any, series: Series) -> None:
    """Draw `series` on `plt`, plotext's module or a textual-plotext widget's `plt` (the same
    interface), replacing what it drew before."""
    title, stamps, values = series
    plt.clear_data()
    plt.clear_figure()
    plt.date_form(DATE_FORM)
    plt.plot([datetime.fromtimestamp(stamp / 1000, UTC).strftime("%d/%m %H:%M")
              for stamp in stamps], values, marker="braille")
    plt.title(title)
