"""`sfarm mine`: a one-off candle download on this machine, no farm needed."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from sfarm.cli.console import err, out, print_json
from sfarm.cli.node_root import DataRootOption, NodeRootOption, node_root
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption, checked_value
from sfarm.data import format_ts
from sfarm.errors import RunError, UsageError
from sfarm.markets import check_market
from sfarm.timeframes import check_timeframe, timeframe_ms
from sfarm.timepoints import BadTimePoint, parse_time_point

if TYPE_CHECKING:  # the miner (ccxt's async half, aiohttp) loads only when `mine` runs
    from sfarm.mining import MineProgress, MineResult, MinerSettings
    from sfarm.tasks import Exchange


def _time_ms(option: str, value: str) -> int:
    try:
        return parse_time_point(value).resolve()
    except BadTimePoint as error:
        raise UsageError(f"{option}: {error}") from None


def check_range(since_ms: int, until_ms: int | None, now_ms: int) -> None:
    """Refuse a range with nothing to mine in it: --since in the future, or not before --until."""
    if until_ms is not None and since_ms >= until_ms:
        raise UsageError(f"--since {format_ts(since_ms)} is not before --until "
                         f"{format_ts(until_ms)}: nothing to mine (swapped?)")
    if since_ms > now_ms:
        raise UsageError(f"--since {format_ts(since_ms)} is in the future (now is "
                         f"{format_ts(now_ms)} UTC): no candle to mine there yet")


def _exchange(ccxt_id: str, url: str | None) -> Exchange:
    from pydantic import ValidationError  # the task models: when mining, not at every start

    from sfarm.tasks import Exchange

    try:
        return Exchange(ccxt=ccxt_id, url=url)
    except ValidationError as error:
        problem = error.errors()[0]  # sfarm.tasks.Exchange's message quotes the url
        raise UsageError(f"--url: {problem['msg'].removeprefix('Value error, ')}",
                         hint="http(s)://host[:port], e.g. http://127.0.0.1:8900") from None


def _settings(retries: int) -> MinerSettings:
    from sfarm.mining import MinerSettings

    defaults = MinerSettings()
    return replace(defaults, retry=replace(defaults.retry, max_attempts=retries))


def _check_values(markets: list[str], timeframes: list[str]) -> None:
    """Refuse a misspelt market or timeframe before the exchange is asked for anything."""
    for market in markets:
        checked_value("--market", check_market, market)
    for timeframe in timeframes:
        checked_value("--timeframe", check_timeframe, timeframe)


def _gaps_text(status: MineProgress) -> str:
    if not status.exchange_gaps:
        return "-"
    step = timeframe_ms(status.timeframe)
    missing = sum((end - start + step - 1) // step for start, end in status.exchange_gaps)
    return f"{len(status.exchange_gaps)} ({missing:,} candles)"


def render_summary(result: MineResult) -> None:
    # Plain rules and no outer padding: the table fits 80 columns with full ids and times.
    table = Table(title="mined", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, collapse_padding=True)
    widest = max((len(status.dataset_id) for status in result.datasets), default=7)
    table.add_column("dataset", no_wrap=True, min_width=widest)  # ids are copied: never cut
    table.add_column("rows added", justify="right", no_wrap=True, min_width=7)
    table.add_column("rows", justify="right", no_wrap=True, min_width=7)
    # On a narrow terminal a time wraps below its date rather than being cut.
    table.add_column("first", min_width=10)
    table.add_column("last", min_width=10)
    table.add_column("exchange gaps")  # recorded holes the exchange itself has
    for status in result.datasets:
        added = f"{status.rows_added:,}"
        if status.phase in ("failed", "stopped"):
            added += f" [red]({status.phase})[/]" if status.phase == "failed" else " (stopped)"
        if status.bad_candles:  # served with impossible values: see the warning below
            added += f" [yellow]({status.bad_candles:,} refused)[/]"
        table.add_row(escape(status.dataset_id), added, f"{status.rows:,}",
                      format_ts(status.first_ts), format_ts(status.last_ts), _gaps_text(status))
    out.print(table)


def mine_cmd(
    exchange: Annotated[str, typer.Option(
        "--exchange", metavar="ID",
        help="ccxt exchange id, e.g. binance; it also names the datasets.")],
    market: Annotated[list[str], typer.Option(
        "--market", metavar="M", help="Market, BASE/QUOTE (repeat for several).")],
    timeframe: Annotated[list[str], typer.Option(
        "--timeframe", metavar="TF", help="Timeframe, e.g. 1m, 1h (repeat for several).")],
    since: Annotated[str, typer.Option(
        "--since", metavar="DATE",
        help="First candle: 2024-01-01 or a duration before now such as 3d.")],
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE",
        help="Stop before this time (default: now, the last closed candle).")] = None,
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    url: Annotated[str | None, typer.Option(
        "--url", metavar="URL",
        help="Send every REST request to this host instead (an emulator, a proxy).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", metavar="S", min=0.1, help="Seconds "
                                                     "before a request is abandoned and "
                                                     "retried (default: ccxt's, 10).")] = None,
    retries: Annotated[int, typer.Option("--retries", metavar="N", min=1, help="Attempts "
                                         "per request before a dataset fails (network "
                                         "errors, 429, 5xx, timeouts).")] = 8,
    json: JsonOption = False,
) -> None:
    """Download candles into ROOT/data/candles/<exchange>/<BASE-QUOTE>/<tf>: every candle of
    the range the datasets lack (holes within them too, then on from where they end). Closed
    candles only; gaps the exchange itself has are recorded, not invented.

    Example: [bold]sfarm mine --exchange binance --market BTC/USDT --market ETH/USDT
    --timeframe 1h --since 2024-01-01 --root ~/sfarm/lab[/]
    """
    from sfarm.mining import MineRequest, mine

    if timeout is not None and not math.isfinite(timeout):
        raise UsageError(f"--timeout must be a number of seconds, got {timeout}")
    _check_values(market, timeframe)
    since_ms = _time_ms("--since", since)
    until_ms = _time_ms("--until", until) if until else None
    check_range(since_ms, until_ms, int(time.time() * 1000))
    data_root = node_root(root, node, inventory, network)
    request = MineRequest(
        exchange=exchange, markets=tuple(dict.fromkeys(market)),
        timeframes=tuple(dict.fromkeys(timeframe)), since_ms=since_ms, until_ms=until_ms,
        follow=False)
    from sfarm.cli.mine_progress import ProgressView

    view = ProgressView(err)
    stop = threading.Event()
    try:
        with view.progress:
            result = mine(data_root, request, _exchange(exchange, url), stop=stop,
                          on_progress=view.update, settings=_settings(retries),
                          timeout_ms=int(timeout * 1000) if timeout else None)
    except KeyboardInterrupt:
        stop.set()
        err.print("interrupted: every stored page is kept; run the same command to resume")
        raise typer.Exit(130) from None
    if json:
        print_json({"datasets": [status.to_json() for status in result.datasets]})
    else:
        render_summary(result)
    for status in result.exchange_problems:  # the run went on; the data has holes
        err.print(f"[yellow]warning:[/] {escape(status.exchange_problem or '')}")
    if result.failures:
        failed = result.failures
        raise RunError(f"{len(failed)} of {len(result.datasets)} datasets failed: "
                       + "; ".join(f"{f.dataset_id}: {f.error}" for f in failed),
                       hint="run the same command again to resume where they stopped")


def register(app: typer.Typer) -> None:
    app.command("mine")(mine_cmd)
