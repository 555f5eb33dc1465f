"""A forward session's state and its datasets: what paper and live mode persist after each step.

A step appends, in this order, `sessions/<task>/orders`, `trades`, `equity` and then `state`,
whose manifest `extra["session"]` holds the whole `SessionState` (engine, feed, risk, broker
bookkeeping). That last append is the commit: a worker killed before it redoes the step from
the previous state, and the rows it wrote again are the same rows (every key is derived from
candle times, never from the wall clock), which the store skips as already stored.

Row keys (`ts`) follow the backtest's: an equity row per candle at its open time; a trade at
its exit candle's open, plus 1 ms when it exited inside the candle (stop, target); an order at
the open of the candle it was placed for, plus 0 (exit at the open), 1 (entry at the open),
2 (exit inside the candle) or 3 (a resting take-profit order placed with the entry; the n-th
take profit of one position at 3 + 4 (n - 1)), with the client id of `sfarm.trading.client_ids`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sfarm import data
from sfarm.context import ProgressBoard
from sfarm.data.ids import session_id
from sfarm.timeframes import DAY_MS
from sfarm.trading.backtest import TRADE_COLUMNS
from sfarm.trading.book import BrokerBook
from sfarm.trading.client_ids import (
    ENTRY,
    EXIT_AT_OPEN,
    EXIT_INTRABAR,
    TARGET,
    ClientOrderId,
    encode,
)
from sfarm.trading.engine import EngineState
from sfarm.trading.feed import FeedState

EXTRA_KEY = "session"
STATE_VERSION = 1
# The `action` column of order rows, by the order's action (`sfarm.trading.client_ids`).
ACTION_NAMES = {EXIT_AT_OPEN: "exit", ENTRY: "entry", EXIT_INTRABAR: "exit", TARGET: "target"}

ORDER_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64, "client_id": pl.String, "action": pl.String, "side": pl.String,
    "status": pl.String, "amount": pl.Float64, "price": pl.Float64, "cost": pl.Float64,
    "fee": pl.Float64, "reason": pl.String, "order_id": pl.String, "placed_at": pl.Int64,
}
EQUITY_SCHEMA: dict[str, Any] = {"ts": pl.Int64, "equity": pl.Float64, "position": pl.Float64,
                                 "close": pl.Float64}
STATE_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64, "cash": pl.Float64, "position": pl.Float64, "entry_price": pl.Float64,
    "pending_entry": pl.Int64, "pending_exit": pl.Boolean, "equity": pl.Float64,
    "halted": pl.Boolean,
}


@dataclass(frozen=True)
class RiskLimits:
    """The kill switch: fractions of equity; None is off."""

    max_drawdown: float | None = None  # from the peak equity of the session
    max_daily_loss: float | None = None  # from the equity at 00:00 UTC


@dataclass(frozen=True)
class RiskState:
    peak: float
    day: int  # 00:00 UTC (ms) of the day `day_equity` belongs to
    day_equity: float
    last_equity: float
    halted: str | None = None  # why trading stopped; kept across restarts
    halted_at: int | None = None

    @classmethod
    def initial(cls, equity: float, now_ms: int) -> RiskState:
        return cls(peak=equity, day=now_ms // DAY_MS * DAY_MS, day_equity=equity,
                   last_equity=equity)


def observe(risk: RiskState, equity: float, now_ms: int, limits: RiskLimits) -> RiskState:
    """Risk after seeing `equity` at `now_ms`; `halted` says why when a limit is crossed.

    The day's reference is the equity last seen before the day began (the close of the last
    candle of the previous day), so a loss is measured from 00:00 UTC."""
    if risk.halted:
        return risk
    day = now_ms // DAY_MS * DAY_MS
    day_equity = risk.day_equity if day == risk.day else risk.last_equity
    peak = max(risk.peak, equity)
    halted = None
    if limits.max_drawdown is not None and equity <= peak * (1 - limits.max_drawdown):
        halted = (f"max_drawdown: equity {equity:.2f} is {1 - equity / peak:.2%} below its "
                  f"peak {peak:.2f} (limit {limits.max_drawdown:.2%})")
    elif limits.max_daily_loss is not None and equity <= day_equity * (1 - limits.max_daily_loss):
        halted = (f"max_daily_loss: equity {equity:.2f} is {1 - equity / day_equity:.2%} below "
                  f"{day_equity:.2f} at 00:00 UTC (limit {limits.max_daily_loss:.2%})")
    return RiskState(peak=peak, day=day, day_equity=day_equity, last_equity=equity,
                     halted=halted, halted_at=now_ms if halted else None)


def first_breach(risk: RiskState, equity: np.ndarray, times: np.ndarray,
                 limits: RiskLimits) -> tuple[RiskState, int | None]:
    """Observe equities in order; the index of the first one that halts (None if none)."""
    for index, (value, moment) in enumerate(zip(equity.tolist(), times.tolist(), strict=True)):
        risk = observe(risk, value, int(moment), limits)
        if risk.halted:
            return risk, index
    return risk, None


@dataclass(frozen=True)
class SessionState:
    """Everything a session needs to continue after a restart."""

    mode: str
    strategy: str
    cash: float  # initial equity
    engine: EngineState
    feed: FeedState
    risk: RiskState
    broker: BrokerBook = field(default_factory=BrokerBook)  # live bookkeeping

    @property
    def last_ts(self) -> int:
        return self.engine.last_ts

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "mode": self.mode, "strategy": self.strategy,
                "cash": self.cash, "engine": self.engine.to_json(),
                "feed": self.feed.to_json(), "risk": asdict(self.risk),
                "broker": self.broker.to_json()}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SessionState:
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"session state version {document.get('version')!r} is not "
                             f"{STATE_VERSION}")
        return cls(mode=document["mode"], strategy=document["strategy"],
                   cash=float(document["cash"]),
                   engine=EngineState.from_json(document["engine"]),
                   feed=FeedState.from_json(document["feed"]),
                   risk=RiskState(**document["risk"]),
                   broker=BrokerBook.from_json(document.get("broker") or {}))


@dataclass
class StepRows:
    """What one step appends to the session's datasets (empty frames are skipped)."""

    orders: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ORDER_SCHEMA))
    trades: pl.DataFrame = field(default_factory=pl.DataFrame)
    equity: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EQUITY_SCHEMA))
    state: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=STATE_SCHEMA))


def load_session(root: Path | str, task: str) -> SessionState | None:
    """The committed state of `task`'s session, or None when it has not started."""
    manifest = data.load_manifest(root, session_id(task, "state"), with_partitions=False)
    if manifest is None or EXTRA_KEY not in manifest.extra:
        return None
    return SessionState.from_json(manifest.extra[EXTRA_KEY])


def commit(root: Path | str, task: str, state: SessionState, rows: StepRows | None = None
           ) -> None:
    """Append the step's rows, then the state with its row (the commit)."""
    rows = rows or StepRows()
    for part in ("orders", "trades", "equity"):
        frame: pl.DataFrame = getattr(rows, part)
        if frame.height:
            data.append(root, session_id(task, part), frame)
    state_rows = rows.state if rows.state.height else pl.DataFrame()
    data.append(root, session_id(task, "state"), state_rows,
                extra={EXTRA_KEY: state.to_json()})


def resumed(state: SessionState) -> SessionState:
    """The state of a halted session let trade again: its kill switch measured anew from the
    equity it halted at (the peak and the day's reference both that equity)."""
    equity = state.risk.last_equity
    return replace(state, risk=replace(state.risk, peak=equity, day_equity=equity,
                                       halted=None, halted_at=None))


def resume_session(root: Path | str, task: str) -> str | None:
    """Commit the resumed state of `task`'s halted session (its worker must not run); why it
    had halted, or None when it had not (nothing is written then)."""
    state = load_session(root, task)
    if state is None or state.risk.halted is None:
        return None
    commit(root, task, resumed(state))
    return state.risk.halted


def session_outputs(root: Path | str, task: str) -> list[tuple[str, int | None, int]]:
    """(dataset, last_ts, rows) of the session's datasets that have rows."""
    found = []
    for part in ("orders", "trades", "equity", "state"):
        dataset = session_id(task, part)
        manifest = data.load_manifest(root, dataset, with_partitions=False)
        if manifest is not None and manifest.rows:
            found.append((dataset, manifest.last_ts, manifest.rows))
    return found


def report_session(board: ProgressBoard, root: Path | str, task: str, equity: float,
                   position: float, cash: float) -> None:
    """Put the session's datasets that have rows and its equity, position and pnl on the task's
    board."""
    for dataset, last_ts, rows in session_outputs(root, task):
        board.output(dataset, last_ts, rows)
    board.set_trade(equity, position, equity - cash)


# ---- rows ---------------------------------------------------------------------------------

def equity_rows(ts: np.ndarray, equity: np.ndarray, position: np.ndarray,
                close: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({"ts": ts, "equity": equity, "position": position, "close": close},
                        schema=EQUITY_SCHEMA)


def trade_rows(trades: pl.DataFrame) -> pl.DataFrame:
    """`sessions/<task>/trades` rows, keyed as the backtest keys them."""
    intrabar = (pl.col("reason") != "signal").cast(pl.Int64)
    return trades.select((pl.col("exit_ts") + intrabar).alias("ts"), *TRADE_COLUMNS, "fees",
                         "reason")


def state_row(engine: EngineState, equity: float, halted: bool) -> pl.DataFrame:
    return pl.DataFrame([{
        "ts": engine.last_ts, "cash": engine.cash, "position": engine.position,
        "entry_price": None if engine.position == 0 or math.isnan(engine.entry_price)
        else engine.entry_price,
        "pending_entry": engine.pending_entry, "pending_exit": engine.pending_exit,
        "equity": equity, "halted": halted}], schema=STATE_SCHEMA)


def order_row(task: str, order: ClientOrderId, *, side: str, status: str, amount: float,
              price: float, cost: float, fee: float, reason: str, order_id: str | None = None,
              placed_at: int | None = None) -> dict[str, Any]:
    """The row of `task`'s `order`, keyed by the candle it is for and its action, with the
    client id live mode gives it."""
    return {"ts": order.row_ts, "client_id": encode(task, order),
            "action": ACTION_NAMES[order.action], "side": side, "status": status,
            "amount": amount, "price": price, "cost": cost, "fee": fee, "reason": reason,
            "order_id": order_id, "placed_at": placed_at}


def orders_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=ORDER_SCHEMA) if rows else pl.DataFrame(schema=ORDER_SCHEMA)


def simulated_orders(task: str, trades: pl.DataFrame, engine: EngineState, first_ts: int,
                     fee_rate: float) -> pl.DataFrame:
    """The fills of a paper step as order rows: entries at or after `first_ts` and every exit
    of the step's trades."""
    rows = []

    def entry(ts: int, side: float, units: float, price: float, fee: float) -> None:
        rows.append(order_row(task, ClientOrderId(ts, ENTRY),
                              side="buy" if side > 0 else "sell",
                              status="filled", amount=units, price=price, cost=units * price,
                              fee=fee, reason="signal"))

    for trade in trades.iter_rows(named=True):
        side = 1.0 if trade["side"] == "long" else -1.0
        if trade["entry_ts"] >= first_ts:
            entry(trade["entry_ts"], side, trade["size"], trade["entry_price"],
                  trade["size"] * trade["entry_price"] * fee_rate)
        offset = EXIT_AT_OPEN if trade["reason"] == "signal" else EXIT_INTRABAR
        cost = trade["size"] * trade["exit_price"]
        rows.append(order_row(task, ClientOrderId(trade["exit_ts"], offset),
                              side="sell" if side > 0 else "buy", status="filled",
                              amount=trade["size"], price=trade["exit_price"], cost=cost,
                              fee=cost * fee_rate, reason=trade["reason"]))
    if engine.position != 0 and engine.entry_ts >= first_ts:
        entry(engine.entry_ts, 1.0 if engine.position > 0 else -1.0, abs(engine.position),
              engine.entry_price, engine.entry_fee)
    return orders_frame(rows).sort("ts")


def halt_engine(engine: EngineState) -> EngineState:
    """The engine with its orders for the next open dropped (a halted session places none)."""
    return replace(engine, pending_entry=0, pending_exit=False)
