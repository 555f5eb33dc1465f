"""The dashboard's detail pane: what the status says of the selection, and what its node is
asked for beside it (a node's facts, a task's recent candles, a trade session), drawn as text
(sfarm.tui.detail) and a chart (textual-plotext)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual_plotext import PlotextPlot

from sfarm.farm import Farm
from sfarm.runtime.protocol import DatasetTail, FactsReply, SessionView
from sfarm.status import NetworkStatus, NodeStatus, TaskStatus
from sfarm.tui.actions import Selection
from sfarm.tui.chart import Series, draw_series
from sfarm.tui.detail import (
    chart_series,
    network_detail,
    node_detail,
    session_detail,
    task_detail,
)

CHART_POINTS = 120  # candles or equity points a chart draws
LAST_TRADES = 8

# What the selection's node was asked (facts, a dataset's tail, a session), None for nothing.
Fetched = FactsReply | DatasetTail | SessionView | None


class DetailPane(VerticalScroll):
    def __init__(self, farm: Farm, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.farm = farm
        self.selection = Selection()
        self.status: NetworkStatus | None = None
        self.status_at = 0.0
        self._fetching = False
        self._fetched: tuple[Selection, Fetched] | None = None

    def compose(self) -> ComposeResult:
        yield Static("collecting the status of every node…", id="detail-text")
        yield PlotextPlot(id="detail-chart")
        yield Static(id="detail-more")

    def on_mount(self) -> None:
        self.border_title = "detail"
        self.query_one("#detail-chart").display = False

    def show(self, selection: Selection, status: NetworkStatus | None, status_at: float) -> None:
        """Show `selection` as of `status`, and ask its node for the rest (again: a refresh
        brings new candles and trades)."""
        self.selection, self.status, self.status_at = selection, status, status_at
        self._redraw()
        self._fetch_next()

    @property
    def ready(self) -> bool:
        """Whether the pane shows all it will for the selection: what its node was asked has
        come back, or nothing needs asking."""
        return self.selection.node is None or (
            self._fetched is not None and self._fetched[0] == self.selection)

    # -- drawing -----------------------------------------------------------------------------

    def _redraw(self) -> None:
        if self.status is None:
            return
        where = self.selection
        fetched = self._fetched[1] if self._fetched and self._fetched[0] == where else None
        text, more = self.query_one("#detail-text", Static), self.query_one("#detail-more",
                                                                             Static)
        series: Series | None = None
        more.update("")
        if where.node is None:
            text.update(network_detail(self.status, self.farm.flow(self.status)))
        elif where.task is None or (task := self._task_status(where.node, where.task)) is None:
            node = self._node_status(where.node)
            facts = fetched if isinstance(fetched, FactsReply) else None
            text.update(node_detail(node, facts) if node
                        else f"node {where.node}: no status yet")
        else:
            text.update(task_detail(where.node, task, self.status_at))
            if isinstance(fetched, SessionView):
                more.update(session_detail(fetched))
                series = ("equity", fetched.equity_ts, fetched.equity_values)
            elif isinstance(fetched, DatasetTail):
                more.update(fetched.error or "")
                series = chart_series(fetched)
        self._draw(series)

    def _draw(self, series: Series | None) -> None:
        chart = self.query_one("#detail-chart", PlotextPlot)
        chart.display = series is not None and len(series[1]) > 1
        if series is None or not chart.display:
            return
        draw_series(chart.plt, series)
        chart.refresh()

    def _node_status(self, name: str) -> NodeStatus | None:
        nodes = self.status.nodes if self.status else []
        return next((node for node in nodes if node.name == name), None)

    def _task_status(self, node: str, task: str) -> TaskStatus | None:
        found = self._node_status(node)
        if found is None or not found.reachable:
            return None
        return next((entry for entry in found.tasks if entry.name == task), None)

    # -- asking the node ---------------------------------------------------------------------

    def _fetch_next(self) -> None:
        """Ask for the selection's data, unless a request is under way (its answer asks
        again when the selection moved on meanwhile)."""
        if not self._fetching and self.selection.node is not None:
            self._fetching = True
            self._fetch(self.selection)

    @work(thread=True, group="detail", exit_on_error=False)
    def _fetch(self, target: Selection) -> None:
        try:
            fetched = self._ask(target)
        except Exception as error:  # the node's trouble shows in the status already
            fetched = None
            self.log.warning(f"detail of {target.label}: {error}")
        finally:
            self._fetching = False
        self.app.call_from_thread(self._fetched_for, target, fetched)

    def _ask(self, target: Selection) -> Fetched:
        assert target.node is not None
        node = self._node_status(target.node)
        if node is None or not node.reachable:
            return None
        if target.task is None:
            return self.farm.facts(target.node)
        task = self._task_status(target.node, target.task)
        if task is None:
            return None
        if task.kind == "trade":
            return self.farm.session(target.node, target.task, points=CHART_POINTS,
                                     trades=LAST_TRADES)
        if task.datasets:
            # The liveliest output: the newest candle, then the finest (the most rows).
            chosen = max(task.datasets, key=lambda dataset: (dataset.last_ts or 0, dataset.rows))
            return self.farm.tail(target.node, chosen.id, CHART_POINTS)
        return None

    def _fetched_for(self, target: Selection, fetched: Fetched) -> None:
        self._fetched = (target, fetched)
        if target == self.selection:
            self._redraw()
        else:
            self._fetch_next()  # the selection moved on meanwhile
