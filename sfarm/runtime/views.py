"""What the dashboard and `sfarm report` show of a node's data, read on the node: a dataset's
last rows (`dataset_tail`) and a trade session's view (`session_view`), answers to the node
protocol's `tail` and `session` requests (sfarm.runtime.handler).

Each reads only what it shows: the last partitions of a dataset (the store's `read_tail`), a
session's committed state (its `state` manifest), its equity curve's two columns and its last
trades. Building the replies from frames (`tail_of_frame`, `build_session_view`) is pure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import polars as pl

from sfarm import data
from sfarm.data.ids import session_id
from sfarm.errors import SfarmError
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.protocol import DatasetTail, SessionView, TradeRow
from sfarm.trading.backtest import TRADE_COLUMNS
from sfarm.trading.curve import downsample

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
    """The session of trade task `task` on this node, None when it has not committed a step
    yet: its state, its equity curve (sessions/<task>/equity) in at most `points` points and
    its last `trades` trades (sessions/<task>/trades)."""
    from sfarm.trading.session import load_session  # the trading engine loads for this only

    state = load_session(root.path, task)
    if state is None:
        return None
    equity_id, trades_id = session_id(task, "equity"), session_id(task, "trades")
    try:
        equity = data.read(root.path, equity_id, columns=["ts", "equity"])
    except data.DatasetNotFound:  # a session committed before its first candle
        equity = pl.DataFrame(schema={"ts": pl.Int64, "equity": pl.Float64})
    manifest = data.load_manifest(root.path, trades_id, with_partitions=False)
    count = manifest.rows if manifest is not None else 0
    recent = (data.read_tail(root.path, trades_id, trades) if count and trades
              else pl.DataFrame())
    return build_session_view(task, state, equity, recent, count, points)


def build_session_view(task: str, state: SessionState, equity: pl.DataFrame,
                       trades: pl.DataFrame, trade_count: int, points: int) -> SessionView:
    """The view of a session from its committed `state`, its equity rows (`ts`, `equity`),
    its last trades (rows of sessions/<task>/trades, oldest first) and how many trades it has
    in all. The curve is downsampled by sfarm.trading.curve.downsample (min and max of each
    bucket, first and last point kept). Pure."""
    engine, risk = state.engine, state.risk
    pnl = risk.last_equity - state.cash
    flat = engine.position == 0 or math.isnan(engine.entry_price)
    ts, values = (downsample(equity["ts"].to_numpy(), equity["equity"].to_numpy(), points)
                  if equity.height else ([], []))
    return SessionView(
        task=task, mode=state.mode, strategy=state.strategy, cash=state.cash,
        equity=risk.last_equity, pnl=pnl, return_pct=pnl / state.cash * 100,
        position=engine.position, entry_price=None if flat else engine.entry_price,
        halted=risk.halted, last_ts=state.last_ts if state.last_ts >= 0 else None,
        equity_ts=ts, equity_values=values, trades=trade_list(trades), trade_count=trade_count)


def trade_list(trades: pl.DataFrame) -> list[TradeRow]:
    """Rows of a session's trades dataset as TradeRows, in the frame's order."""
    if trades.is_empty():
        return []
    extra = [name for name in ("fees", "reason") if name in trades.columns]
    return [TradeRow(**row) for row in trades.select(*TRADE_COLUMNS, *extra).iter_rows(named=True)]
