"""Paper trading: the engine run forward on the live edge of the store, committed every step.

`PaperSession.open` resumes the task's committed session or starts one (at `since`, else at the
newest stored candle); `step()` feeds the candles stored since the last step through
`sfarm.trading.engine.run` with the carried state and commits the rows and the state at once
(`sfarm.trading.session.commit`). Fills follow the backtest's rules exactly, so a session
replayed over stored history has the backtest's trades and equity (tests check it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from sfarm.data.layout import format_ts
from sfarm.errors import RunError
from sfarm.timeframes import timeframe_ms
from sfarm.trading.book import BrokerBook
from sfarm.trading.client_ids import ENTRY
from sfarm.trading.engine import Candles, EngineParams, EngineState, RunResult, run
from sfarm.trading.feed import Feed, FeedStep, WaitingFor
from sfarm.trading.session import (
    RiskLimits,
    RiskState,
    SessionState,
    StepRows,
    commit,
    equity_rows,
    first_breach,
    halt_engine,
    load_session,
    simulated_orders,
    state_row,
    trade_rows,
)
from sfarm.trading.strategy import Strategy

log = logging.getLogger("sfarm.trading")
MAX_LOGGED_FILLS = 20  # a step with more (a catch-up) logs their count, not each one

# Candles per commit while catching up on history (at the live edge a step is the one new
# candle). A commit costs a few fsyncs (~15 ms); values never depend on this size.
CATCH_UP_ROWS = 500

__all__ = ["CATCH_UP_ROWS", "PaperSession", "SessionConfig", "WaitingFor"]


@dataclass(frozen=True)
class SessionConfig:
    """What a forward session trades; times in ms (`since`/`until` already resolved)."""

    task: str
    exchange: str
    market: str
    timeframe: str
    cash: float
    since: int | None = None  # first candle; None: the newest stored when the session starts
    until: int | None = None  # candles from here on are not traded
    limits: RiskLimits = field(default_factory=RiskLimits)
    # Indicator datasets an indicators task of the network produces (its plan): the session
    # waits for them instead of computing the same indicators itself.
    produced: frozenset[str] = frozenset()


def open_state(feed: Feed, root: Path, config: SessionConfig, strategy: Strategy,
               mode: str, book: BrokerBook | None = None) -> SessionState:
    """The committed state of the task's session, or a new one (committed before any step,
    so the first candle chosen is kept whatever happens next) with the broker's `book`."""
    state = load_session(root, config.task)
    if state is not None:
        wanted = {spec.text for spec in feed.specs}
        if set(state.feed.sources) != wanted or state.mode != mode:
            raise RunError(
                f"session {config.task!r} was started as {state.mode} with indicators "
                f"{sorted(state.feed.sources)}; the task now is {mode} with {sorted(wanted)}",
                hint=f"keep the session's strategy, or start a new session under another task "
                     f"name (or remove {root / 'data' / 'sessions' / config.task})")
        return state
    feed_state = feed.start(config.since)
    first = feed_state.last_ts + 1
    state = SessionState(mode=mode, strategy=strategy.name, cash=config.cash,
                         engine=EngineState.initial(config.cash), feed=feed_state,
                         risk=RiskState.initial(config.cash, first),
                         broker=book or BrokerBook())
    commit(root, config.task, state)
    log.info("%s: new %s session from %d (%s indicators: %s)", config.task, mode, first,
             strategy.name, feed_state.sources)
    return state


class PaperSession:
    """One paper session over the candles of a node root."""

    def __init__(self, root: Path | str, config: SessionConfig, strategy: Strategy,
                 state: SessionState, feed: Feed) -> None:
        self.root = Path(root)
        self.config = config
        self.strategy = strategy
        self.params = EngineParams.from_strategy(strategy)
        self.state = state
        self.feed = feed

    @classmethod
    def open(cls, root: Path | str, config: SessionConfig, strategy: Strategy) -> PaperSession:
        """Resume or start the session; WaitingFor when its candles do not exist yet."""
        feed = Feed(root, strategy, exchange=config.exchange, market=config.market,
                    timeframe=config.timeframe, produced=config.produced)
        return cls(root, config, strategy, open_state(feed, Path(root), config, strategy,
                                                      "paper"), feed)

    @property
    def halted(self) -> str | None:
        return self.state.risk.halted

    @property
    def position(self) -> float:
        return self.state.engine.position

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.feed.dataset_ids

    def equity(self) -> float:
        return self.state.risk.last_equity

    def advance(self) -> int:
        """One turn of the worker's loop: a step (see `step`)."""
        return self.step()

    def waiting_for(self, processed: int) -> str | None:
        """What the session waits for after a turn that processed `processed` candles."""
        if processed or self.halted:
            return None
        step = timeframe_ms(self.config.timeframe)
        if self.config.until is not None and self.state.last_ts + step >= self.config.until:
            return "nothing: the session reached its until"
        return "new candles"

    def step(self, max_rows: int = CATCH_UP_ROWS) -> int:
        """Process the candles stored since the last step (at most `max_rows`) and commit;
        return how many. WaitingFor when a stored indicator lags behind the candles."""
        if self.halted:
            return 0
        step = self.feed.next(self.state.feed, max_rows=max_rows, end=self.config.until)
        if step.frame.height == 0:
            return 0
        result, risk = self._run(step)
        halted = risk.halted is not None
        if halted and result.state.last_ts < step.state.last_ts:
            # The limit broke before the last candle: the session stops at that candle.
            step = self.feed.next(self.state.feed, max_rows=int(np.searchsorted(
                step.frame["ts"].to_numpy(), result.state.last_ts)) + 1)
        engine = halt_engine(result.state) if halted else result.state
        first_ts = int(step.frame["ts"][0])
        count = len(result.equity)
        rows = StepRows(
            orders=simulated_orders(self.config.task, result.trades, engine, first_ts,
                                    self.params.fee),
            trades=trade_rows(result.trades),
            equity=equity_rows(step.frame["ts"].to_numpy()[:count], result.equity,
                               result.position, step.frame["close"].to_numpy()[:count]),
            state=state_row(engine, float(result.equity[-1]), halted))
        state = replace(self.state, engine=engine, feed=step.state, risk=risk)
        commit(self.root, self.config.task, state, rows)
        self.state = state
        log_fills(self.config.task, rows.orders, result.trades)
        log_signal(self.config.task, engine, int(step.frame["ts"][count - 1]))
        if halted:
            log.warning("%s: halted: %s", self.config.task, risk.halted)
        return count

    def _run(self, step: FeedStep) -> tuple[RunResult, RiskState]:
        """Run the step's candles; when a risk limit breaks, only up to that candle."""
        candles = Candles.from_frame(step.frame, step.signals)
        result = run(candles, self.params, self.state.engine)
        closes = candles.ts + timeframe_ms(self.config.timeframe)
        risk, breach = first_breach(self.state.risk, result.equity, closes, self.config.limits)
        if breach is not None and breach < len(candles) - 1:
            result = run(candles.slice(0, breach + 1), self.params, self.state.engine)
        return result, risk


def log_fills(task: str, orders: pl.DataFrame, trades: pl.DataFrame) -> None:
    """One log line per simulated fill: an entry, or an exit with its trade's PnL. A catch-up
    over many candles says how many fills it made instead (`sfarm report` lists the trades)."""
    if orders.height > MAX_LOGGED_FILLS:
        pnl = float(trades["pnl"].sum()) if trades.height else 0.0
        log.info("%s: caught up: %d fills, %d trades closed, pnl %+.2f (see sfarm report %s)",
                 task, orders.height, trades.height, pnl, task)
        return
    for entry in orders.filter(pl.col("action") == "entry").iter_rows(named=True):
        log.info("%s: filled: %s %.8g at %.8g, the open of %s (signal)", task, entry["side"],
                 entry["amount"], entry["price"], format_ts(entry["ts"] - ENTRY))
    for trade in trades.iter_rows(named=True):
        log.info("%s: filled: closed %s %.8g at %.8g on %s (%s), pnl %+.2f", task,
                 trade["side"], trade["size"], trade["exit_price"], format_ts(trade["exit_ts"]),
                 trade["reason"], trade["pnl"])


def log_signal(task: str, engine: EngineState, closed_ts: int) -> None:
    """The strategy's signal on the last candle processed, filled at the next candle's open."""
    if engine.pending_entry:
        side = "long" if engine.pending_entry > 0 else "short"
        log.info("%s: signal on the candle of %s: enter %s at the next open", task,
                 format_ts(closed_ts), side)
    elif engine.pending_exit:
        log.info("%s: signal on the candle of %s: exit at the next open", task,
                 format_ts(closed_ts))


def replay(root: Path | str, config: SessionConfig, strategy: Strategy, *,
           rows_per_step: int = 1, deadline_s: float | None = None) -> PaperSession:
    """Run a paper session over the candles already stored (from `config.since`), a step of
    `rows_per_step` candles at a time, until it has processed them all."""
    session = PaperSession.open(root, config, strategy)
    started = time.monotonic()
    while session.step(rows_per_step):
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise RunError(f"replay of {config.task} took longer than {deadline_s} s")
    return session
