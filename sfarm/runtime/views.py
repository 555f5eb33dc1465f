"""What the dashboard and `sfarm report` show of a node's data, read on the node: a dataset's
last rows (`dataset_tail`) and a trade session's view (`session_view`), answers to the node
protocol's `tail` and `session` requests (sfarm.runtime.handler).

Each reads only what it shows: the last partitions of a dataset (the store's `read_tail`), a
session's committed state (its `state` manifest, or a backtest task's report kept with its
equity rows), its equity curve's columns and its last trades. Building the replies from frames
(`tail_of_frame`, `build_session_view`, `build_backtest_view`) is pure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import polars as pl

from sfarm import data
from sfarm.data.ids import session_id
from sfarm.errors import SfarmError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import DatasetTail, SessionView, TradeRow
from sfarm.trading.backtest import TRADE_COLUMNS
from sfarm.trading.curve import downsample
from sfarm.trading.metrics import max_drawdown

if TYPE_CHECKING:
    from sfarm.trading.session import SessionState


def dataset_tail(root: NodeRoot, dataset_id: str, limit: int, *,
                 mirror_of: str | None = None) -> DatasetTail:
    """The last `limit` rows of `dataset_id` as the node holds it: its own dataset, else the
    one mirror that holds it (`mirror_of`: that producer's mirror only). Only the partitions
    holding those rows are opened. A dataset missing, ambiguous or unreadable is a tail with
    `error` saying so, never an exception."""
    try:
        location = data.locate(root.path, dataset_id, mirror_of=mirror_of)
        if location is None:
            where = f"mirror/{mirror_of}" if mirror_of else "this node (own data or mirrors)"
            return DatasetTail(id=dataset_id, error=f"no dataset {dataset_id} in {where}")
        frame = data.read_tail(root.path, location.dataset_id, limit, mirror_of=location.node)
    except SfarmError as error:
        return DatasetTail(id=dataset_id, error=f"cannot read {dataset_id}: {error.message}")
    except (OSError, pl.exceptions.PolarsError) as error:  # a damaged file, a permission
        return DatasetTail(id=dataset_id,
                           error=f"cannot read {dataset_id}: {type(error).__name__}: {error}")
    return tail_of_frame(dataset_id, frame)


def tail_of_frame(dataset_id: str, frame: pl.DataFrame) -> DatasetTail:
    """A frame of a dataset (with `ts`, sorted) as a tail: ts and every numeric column but ts,
    as floats, a missing or NaN value as None; other columns (text, booleans) left out."""
    numeric = [name for name, dtype in frame.schema.items() if name != "ts" and dtype.is_numeric()]
    return DatasetTail(id=dataset_id, ts=[int(value) for value in frame["ts"].to_list()],
                       columns={name: [_number(value) for value in frame[name].to_list()]
                                for name in numeric})


def _number(value: float | int | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else number


def session_view(root: NodeRoot, task: str, points: int, trades: int) -> SessionView | None:
    """The session of trade task `task` on this node: its state, its equity curve
    (sessions/<task>/equity) in at most `points` points and its last `trades` trades
    (sessions/<task>/trades). A paper or live session shows its committed state; a backtest
    task (no session state) its run's report, kept with its equity rows. None when neither
    has committed anything yet."""
    from sfarm.trading.session import load_session  # the trading engine loads for this only

    state = load_session(root.path, task)
    equity_id, trades_id = session_id(task, "equity"), session_id(task, "trades")
    report = None
    if state is None:
        equity_manifest = data.load_manifest(root.path, equity_id, with_partitions=False)
        report = backtest_report(equity_manifest.extra if equity_manifest else {})
        if report is None:
            return None
    try:
        equity = data.read(root.path, equity_id, columns=["ts", "equity", "position"])
    except data.DatasetNotFound:  # a session committed before its first candle
        equity = pl.DataFrame(schema=EQUITY_SCHEMA)
    manifest = data.load_manifest(root.path, trades_id, with_partitions=False)
    count = manifest.rows if manifest is not None else 0
    recent = (data.read_tail(root.path, trades_id, trades) if count and trades
              else pl.DataFrame())
    if state is not None:
        return build_session_view(task, state, equity, recent, count, points)
    assert report is not None
    return build_backtest_view(task, report, equity, recent, count, points)


EQUITY_SCHEMA = {"ts": pl.Int64, "equity": pl.Float64, "position": pl.Float64}


def backtest_report(extra: dict[str, Any]) -> tuple[str, float] | None:
    """(strategy, initial equity) of the backtest whose report is in an equity manifest's
    `extra` (sfarm.trading.task.append_backtest), None when there is none."""
    summary = extra.get("backtest")
    if not isinstance(summary, dict):
        return None
    metrics = summary.get("metrics")
    initial = metrics.get("initial_equity") if isinstance(metrics, dict) else None
    if not isinstance(initial, int | float) or not initial > 0:
        return None
    return str(summary.get("strategy", "")), float(initial)


def build_session_view(task: str, state: SessionState, equity: pl.DataFrame,
                       trades: pl.DataFrame, trade_count: int, points: int) -> SessionView:
    """The view of a paper or live session from its committed `state`, its equity rows (`ts`,
    `equity`), its last trades (rows of sessions/<task>/trades, oldest first) and how many
    trades it has in all. Pure."""
    engine, risk = state.engine, state.risk
    flat = engine.position == 0 or math.isnan(engine.entry_price)
    return _view(task, state.mode, state.strategy, state.cash, risk.last_equity,
                 engine.position, None if flat else engine.entry_price, risk.halted,
                 state.last_ts if state.last_ts >= 0 else None, equity, trades, trade_count,
                 points)


def build_backtest_view(task: str, report: tuple[str, float], equity: pl.DataFrame,
                        trades: pl.DataFrame, trade_count: int, points: int) -> SessionView:
    """The view of a backtest task's run from its report (strategy, initial equity), its
    equity rows (`ts`, `equity`, `position`: the last ones are where the run ended) and its
    trades as `build_session_view`'s. The entry price of a position still open is not in a
    backtest's rows: None. Pure."""
    strategy, cash = report
    last = equity.row(-1, named=True) if equity.height else {}
    return _view(task, "backtest", strategy, cash, last.get("equity", cash),
                 last.get("position") or 0.0, None, None, last.get("ts"), equity, trades,
                 trade_count, points)


def _view(task: str, mode: str, strategy: str, cash: float, equity_now: float,
          position: float, entry_price: float | None, halted: str | None, last_ts: int | None,
          equity: pl.DataFrame, trades: pl.DataFrame, trade_count: int,
          points: int) -> SessionView:
    """The view; the curve downsampled by sfarm.trading.curve.downsample (each bucket's
    minimum and maximum, the first and last point kept)."""
    ts, values = (downsample(equity["ts"].to_numpy(), equity["equity"].to_numpy(), points)
                  if equity.height else ([], []))
    pnl = equity_now - cash
    drawdown = max_drawdown(equity["equity"].to_numpy(), cash) if equity.height else 0.0
    return SessionView(task=task, mode=mode, strategy=strategy, cash=cash, equity=equity_now,
                       pnl=pnl, return_pct=pnl / cash * 100, position=position,
                       entry_price=entry_price, halted=halted, max_drawdown=drawdown,
                       last_ts=last_ts, equity_ts=ts,
                       equity_values=values, trades=trade_list(trades), trade_count=trade_count)


def trade_list(trades: pl.DataFrame) -> list[TradeRow]:
    """Rows of a session's trades dataset as TradeRows, in the frame's order."""
    if trades.is_empty():
        return []
    extra = [name for name in ("fees", "reason") if name in trades.columns]
    return [TradeRow(**row) for row in trades.select(*TRADE_COLUMNS, *extra).iter_rows(named=True)]
