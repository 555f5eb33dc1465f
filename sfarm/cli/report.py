"""`sfarm report TASK`: how a trade session is doing, from the node that runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from sfarm.cli.completion import complete_tasks
from sfarm.cli.console import out, print_json
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption
from sfarm.errors import RunError
from sfarm.runtime.limits import SESSION_TRADES_MAX

if TYPE_CHECKING:
    from sfarm.runtime.protocol import SessionView

CHART_POINTS = 200  # the terminal chart's points: about one per column
JSON_POINTS = 2000  # the equity curve in --json, as backtest --json gives it
CHART_HEIGHT = 15

TradesOption = Annotated[int, typer.Option(
    "--trades", min=0, max=SESSION_TRADES_MAX,
    help="The last trades to list (all of them are counted).")]


def report(
    task: Annotated[str, typer.Argument(help="A trade task (paper, live or backtest).",
                                               autocompletion=complete_tasks)],
    inventory: InventoryOption = None, network: NetworkOption = None,
    trades: TradesOption = 20, json: JsonOption = False,
) -> None:
    """How a trade session is doing: equity, return, drawdown, PnL, its open position, its last
    trades and its equity curve as a chart.

    Asks the node that runs TASK (over SSH when it is not this machine). A paper or live session
    shows its committed state; a backtest task its last run. [bold]--json[/] gives the same,
    with the equity curve in at most 2,000 points (the first and last kept, each stretch's
    lowest and highest).

    Example: [bold]sfarm report -i inventory/local.toml rsi-paper[/]
    """
    from sfarm.farm import Farm  # the farm service (SSH) loads for farm commands only

    with Farm.open(inventory, network) as farm:
        node = farm.trade_node(task)
        view = farm.session(node, task, points=JSON_POINTS if json else CHART_POINTS,
                            trades=trades)
    if view is None:
        raise RunError(f"task {task!r} on node {node!r} has no session yet: it has not run "
                       "its first step",
                       hint=f"start it (sfarm start --task {task}) and see its progress with "
                            f"sfarm logs {node} {task}")
    if json:
        print_json(session_document(node, view))
        return
    render_report(node, view)


def session_document(node: str, view: SessionView) -> dict[str, Any]:
    """`report --json`: the view's fields, its node, and the equity curve as [ts, equity]."""
    document = view.model_dump(exclude={"equity_ts", "equity_values"})
    document["node"] = node
    document["equity_curve"] = [[ts, value] for ts, value
                                in zip(view.equity_ts, view.equity_values, strict=True)]
    return document


def render_report(node: str, view: SessionView) -> None:
    # The dashboard's own renderables, so the report and the dashboard say the same.
    import plotext

    from sfarm.tui.chart import draw_series
    from sfarm.tui.detail import session_detail

    out.print(f"[bold]{view.task}[/] on node [bold]{node}[/]")
    out.print(session_detail(view))
    if len(view.equity_ts) > 1:
        draw_series(plotext, (f"{view.task} equity", view.equity_ts, view.equity_values))
        plotext.plotsize(min(out.width, 120), CHART_HEIGHT)
        plotext.theme("clear")  # the terminal's own colours, readable on any background
        out.print(Text.from_ansi(plotext.build()))


def register(app: typer.Typer) -> None:
    app.command()(report)
