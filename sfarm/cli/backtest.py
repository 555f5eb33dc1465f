"""`sfarm backtest`: run a strategy over the candles of a data root and report."""

from __future__ import annotations

import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from sfarm import DEFAULT_CASH
from sfarm.cli.aligned import Column, print_table
from sfarm.cli.console import err, out, print_json
from sfarm.cli.node_root import DataRootOption, NodeRootOption, node_root
from sfarm.cli.options import InventoryOption, JsonOption, NetworkOption, checked_value
from sfarm.errors import RunError, UsageError
from sfarm.markets import check_market
from sfarm.timeframes import check_timeframe
from sfarm.timepoints import BadTimePoint, parse_time_point

if TYPE_CHECKING:
    import polars as pl

    from sfarm.trading.backtest import BacktestResult


def backtest_cmd(
    strategy: Annotated[Path, typer.Argument(metavar="STRATEGY",
                                             help="Strategy file (TOML).")],
    exchange: Annotated[str, typer.Option("--exchange", help="Exchange name of the dataset.")],
    market: Annotated[str, typer.Option("--market", help="Market, e.g. BTC/USDT.")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle timeframe, e.g. 1h.")],
    start: Annotated[str | None, typer.Option(
        "--from", help="First candle (inclusive): 2024-01-01, 2024-01-01T12:00 or 30d.")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="End (exclusive): same forms as --from.")] = None,
    root: DataRootOption = None,
    node: NodeRootOption = None,
    inventory: InventoryOption = None, network: NetworkOption = None,
    cash: Annotated[float, typer.Option("--cash", help="Initial equity (quote), above 0.")
                    ] = DEFAULT_CASH,
    json: JsonOption = False,
    equity: Annotated[Path | None, typer.Option(
        "--equity", metavar="FILE",
        help="Also write the whole equity curve (ts, equity, position at each candle) to FILE: "
             "Parquet when it ends in .parquet (any case), else CSV.")] = None,
) -> None:
    """Backtest a strategy on stored candles: signals on closed candles, fills at the next
    open, stops intrabar (docs/trading.md). Indicators come from the root's indicator
    datasets when they cover the range, else they are computed.

    The candles are a node root's: [bold]--node NAME[/] finds it from the inventory (as farm
    commands do), [bold]--root DIR[/] names it, else the current directory.

    Example: [bold]sfarm backtest strategies/rsi_revert.toml --node lab --exchange sim
    --market BTC/USDT --timeframe 1h --from 2d[/]
    """
    if not math.isfinite(cash):
        raise UsageError(f"--cash must be a finite number, got {cash:g}")
    if cash <= 0:
        raise UsageError(f"--cash must be greater than 0, got {cash:g}")
    checked_value("--market", check_market, market)
    checked_value("--timeframe", check_timeframe, timeframe)
    if equity is not None:
        _check_equity_path(equity)
    data_root = node_root(root, node, inventory, network)
    from sfarm.trading.backtest import backtest  # numba and polars: only when running one

    result = backtest(data_root, strategy, exchange=exchange, market=market, timeframe=timeframe,
                      start=_ms("--from", start), end=_ms("--to", end), cash=cash)
    for warning in result.warnings:  # on stderr in both modes; `--json` also lists them
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    # The file first (a report cut short by `| head` still leaves it), but its failure after
    # the report: the backtest's result is not lost to a full disk.
    failure = None if equity is None else _write_equity(result.equity_frame(), equity)
    if json:
        print_json(result.to_json(encoded_trades=True))
    else:
        render(result)
    if failure is not None:
        raise failure


def _check_equity_path(path: Path) -> None:
    """Refuse before the backtest runs what can never be written: a directory (`--equity ''`
    is `.`) or a file in a directory that does not exist."""
    if path.is_dir():
        raise UsageError(f"--equity: {path} is a directory, not a file to write the equity "
                         "curve to", hint=f"name a file, e.g. --equity {path / 'equity.csv'}")
    if not path.parent.is_dir():
        raise UsageError(f"--equity: no directory {path.parent} to write {path.name} in")


def _write_equity(frame: pl.DataFrame, path: Path) -> RunError | None:
    """Write the curve to `path`; the error to raise once the report is out, if it failed."""
    import polars as pl

    try:
        if path.name.lower().endswith(".parquet"):
            frame.write_parquet(path)
        else:
            frame.write_csv(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        return RunError(f"--equity: cannot write the equity curve to {path}: "
                        f"{_os_reason(error)}",
                        hint="the report is complete without it: run again with --equity "
                             "naming a writable file for the curve")
    err.print(f"equity curve: {frame.height:,} rows in {path}")
    return None


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _os_reason(error: BaseException) -> str:
    """The operating system's reason ("No space left on device"): polars' errors carry no
    errno, only Rust's "(os error 28)" in their message."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    found = _OS_ERROR.search(str(error))
    if found:
        return os.strerror(int(found[1]))
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _ms(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_point(value).resolve()
    except BadTimePoint as error:
        raise UsageError(f"{option}: {error}") from None


def _iso(ts: object) -> str:
    """A millisecond timestamp of a trade row or the open position (values typed `object`)."""
    if not isinstance(ts, int):
        return "-"
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _pct(value: object) -> str:
    return "-" if value is None else f"{float(value) * 100:.2f}%"  # type: ignore[arg-type]


def _num(value: object, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"  # type: ignore[arg-type]


def render(result: BacktestResult, console: Console = out) -> None:
    """The report for people: summary metrics, the last trades, an open position."""
    report = result.metrics.to_json()
    first, last = (int(result.ts[0]), int(result.ts[-1])) if len(result.ts) else (None, None)
    console.print(f"[bold]{result.strategy}[/] on {result.dataset_id}: {len(result.ts):,} "
                  f"candles, {_iso(first)} to {_iso(last)} UTC")
    rows = [
        ("initial equity", _num(report["initial_equity"])),
        ("final equity", _num(report["final_equity"])),
        ("return", _pct(report["return"])), ("CAGR", _pct(report["cagr"])),
        ("Sharpe", _num(report["sharpe"])), ("Sortino", _num(report["sortino"])),
        ("Calmar", _num(report["calmar"])), ("max drawdown", _pct(report["max_drawdown"])),
        ("trades", f"{report['trades']:,}"), ("win rate", _pct(report["win_rate"])),
        ("profit factor", _num(report["profit_factor"])),
        ("average trade", _num(report["avg_trade"])
         + f" ({_pct(report['avg_trade_return'])})"),
        ("exposure", _pct(report["exposure"])),
    ]
    console.print(_summary(rows))
    trades = result.run.trades
    if trades.height:
        # In a file or a pipe, one line per trade (for grep) however wide, as in a wide terminal.
        print_table(console, f"last trades (of {trades.height:,})", _trade_columns(trades))
    position = result.open_position()
    if position:
        console.print(f"[yellow]open at the end[/]: {position['side']} {position['size']:.6g} "
                  f"since {_iso(position['entry_ts'])} at {position['entry_price']:.4f}, "
                  f"marked at the last close (unrealized {position['unrealized_pnl']:,.2f})")
    computed = [spec for spec, source in result.indicator_sources.items() if source == "computed"]
    if computed:
        console.print(f"[dim]indicators computed here (no covering dataset): "
                  f"{', '.join(computed)}[/]")


def _summary(rows: list[tuple[str, str]]) -> Text:
    """Names (dim) and right-aligned values in two columns two spaces apart: the text a
    borderless rich Table of them prints, without its measuring and wrapping of every cell
    (~10 ms of a backtest's report)."""
    names = max(len(name) for name, _ in rows)
    values = max(len(value) for _, value in rows)
    text = Text()
    for index, (name, value) in enumerate(rows):
        text.append("\n" if index else "")
        text.append(name.ljust(names), style="dim")
        text.append("  " + value.rjust(values))
    return text


TRADE_HEADERS = ("side", "entry", "exit", "entry price", "exit price", "size", "pnl", "reason")
TEXT_COLUMNS = {0, 7}  # left-aligned: side and reason; the rest are numbers and times
PNL_COLUMN = TRADE_HEADERS.index("pnl")  # green or red


def _trade_columns(trades: pl.DataFrame) -> list[Column]:
    """The last ten trades' columns, the pnl green or red. sfarm.cli.aligned prints them as
    text, as the summary is: rich's Table measured, padded and rendered its 80 cells in
    10-20 ms, ~10% of a 2e6-candle backtest (kept for a terminal too narrow for them)."""
    last = list(trades.tail(10).iter_rows(named=True))
    rows = [[trade["side"], _iso(trade["entry_ts"]), _iso(trade["exit_ts"]),
             _num(trade["entry_price"], 4), _num(trade["exit_price"], 4),
             _num(trade["size"], 6), _num(trade["pnl"]), trade["reason"]] for trade in last]
    colours = ["green" if trade["pnl"] > 0 else "red" for trade in last]
    return [Column(header, [cells[index] for cells in rows], left=index in TEXT_COLUMNS,
                   styles=colours if index == PNL_COLUMN else None)
            for index, header in enumerate(TRADE_HEADERS)]


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest_cmd)
