"""Live trading: the paper session's decisions, executed as orders on the exchange (spot, long).

Each closed candle runs through `sfarm.trading.engine.run` exactly as on paper; what the engine
would fill at the next open is sent at once as a market order (`sfarm.trading.broker`), and
the state then holds the exchange's fills, not the simulated ones. Between candles the session
polls the price: stop loss and trailing stop exit at market when crossed (the kernel's rule,
`sfarm.trading.stops`); a take profit rests on the exchange as a limit sell placed with the
entry. When the engine sees a stop that the polls missed (a wick between two polls), the
position is closed at the candle's close. Entries are only taken on the newest closed candle:
after downtime, missed entries are not chased, missed exits are taken at once.

Starting (or restarting) reconciles with the exchange (`sfarm.trading.reconcile`). The kill
switch (`max_drawdown` from the peak, `max_daily_loss` from 00:00 UTC) cancels the session's
open orders and halts it for good (kept in its state across restarts); the position is left as
is. Orders carry the client ids of `sfarm.trading.client_ids`; what the session remembers
about them is its `sfarm.trading.book.BrokerBook`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sfarm.errors import RunError, UsageError
from sfarm.timeframes import candle_open, timeframe_ms
from sfarm.trading.book import BrokerBook
from sfarm.trading.broker import Broker, OrderFill
from sfarm.trading.client_ids import (
    ENTRY,
    EXIT_AT_OPEN,
    EXIT_INTRABAR,
    TARGET,
    ClientOrderId,
    client_id_prefix,
    decode,
    encode,
)
from sfarm.trading.engine import TRADE_SCHEMA, Candles, EngineParams, EngineState, run
from sfarm.trading.feed import Feed, FeedStep
from sfarm.trading.paper import SessionConfig, open_state
from sfarm.trading.reconcile import reconcile
from sfarm.trading.session import (
    StepRows,
    commit,
    equity_rows,
    halt_engine,
    observe,
    order_row,
    orders_frame,
    state_row,
    trade_rows,
)
from sfarm.trading.stops import polled_stop
from sfarm.trading.strategy import Strategy

log = logging.getLogger("sfarm.trading.live")


class LiveSession:
    """One live session: the task's state under `root`, orders through `broker`."""

    def __init__(self, root: Path | str, config: SessionConfig, strategy: Strategy,
                 feed: Feed, broker: Broker, *, clock: Callable[[], float] = time.time,
                 on_order: Callable[[OrderFill], None] | None = None) -> None:
        if strategy.allows_short:
            raise UsageError(f"strategy {strategy.name!r} sells short; live trading is spot "
                             "and long only", hint="drop entry_short/exit_short for live use")
        self.root = Path(root)
        self.config = config
        self.strategy = strategy
        self.params = EngineParams.from_strategy(strategy)
        self.feed = feed
        self.broker = broker
        self.clock = clock
        self.on_order = on_order
        self.prefix = client_id_prefix(config.task)
        self.step_ms = timeframe_ms(config.timeframe)
        # A new session adopts no order placed before it: the account may have older orders
        # of an earlier session of the same task.
        self.state = open_state(feed, self.root, replace(config, since=None), strategy, "live",
                                BrokerBook(created_at=self.now_ms()))
        self.rows: list[dict[str, Any]] = []  # order rows not committed yet
        self.trades: list[dict[str, Any]] = []
        self.price: float | None = None

    @classmethod
    def open(cls, root: Path | str, config: SessionConfig, strategy: Strategy,
             broker: Broker, **options: Any) -> LiveSession:
        """Resume or start the session and reconcile it with the exchange."""
        broker.load()
        feed = Feed(root, strategy, exchange=config.exchange, market=config.market,
                    timeframe=config.timeframe, produced=config.produced)
        session = cls(root, config, strategy, feed, broker, **options)
        reconcile(session)
        return session

    # -- state ------------------------------------------------------------------------------

    @property
    def engine(self) -> EngineState:
        return self.state.engine

    @property
    def book(self) -> BrokerBook:
        return self.state.broker

    @property
    def halted(self) -> str | None:
        return self.state.risk.halted

    @property
    def target(self) -> str | None:
        return self.book.target

    @property
    def position(self) -> float:
        return self.engine.position

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.feed.dataset_ids

    def equity(self, price: float | None = None) -> float:
        """Cash plus the position at `price` (else the last price seen)."""
        mark = price if price is not None else self.price
        if self.engine.position == 0:
            return self.engine.cash
        if mark is None:
            return self.state.risk.last_equity
        return self.engine.cash + self.engine.position * mark

    def set_engine(self, engine: EngineState) -> None:
        self.state = replace(self.state, engine=engine)

    def set_book(self, book: BrokerBook) -> None:
        self.state = replace(self.state, broker=book)

    def commit(self, equity: pl.DataFrame | None = None,
               state_rows: pl.DataFrame | None = None) -> None:
        """Append the order and trade rows gathered since the last commit, and the state."""
        rows = StepRows(orders=orders_frame(self.rows),
                        trades=trade_rows(pl.DataFrame(self.trades, schema=TRADE_SCHEMA)))
        if equity is not None:
            rows.equity = equity
        if state_rows is not None:
            rows.state = state_rows
        commit(self.root, self.config.task, self.state, rows)
        self.rows, self.trades = [], []

    # -- the worker's loop (`sfarm.trading.loop`) -------------------------------------------

    def advance(self) -> int:
        """One turn of the worker's loop: the candles closed since the last turn, else a poll
        of the price; the number of candles."""
        count = self.step()
        if not count:
            self.poll()
        return count

    def waiting_for(self, processed: int) -> str | None:
        """What the session waits for: nothing, as it polls, unless it is halted."""
        return "nothing: halted by the kill switch" if self.halted else None

    # -- candles ----------------------------------------------------------------------------

    def step(self, max_candles: int = 1000) -> int:
        """Act on the candles closed since the last step; commit after each one."""
        count = 0
        while count < max_candles and not self.halted:
            step = self.feed.next(self.state.feed, max_rows=1)
            if step.frame.height == 0:
                break
            self._on_candle(step)
            count += 1
        return count

    def _on_candle(self, step: FeedStep) -> None:
        self.sync_target()
        candles = Candles.from_frame(step.frame, step.signals)
        ts, close = int(candles.ts[0]), float(candles.close[0])
        next_open = ts + self.step_ms
        before = self.engine
        sim = run(candles, self.params, before)
        # Held through this candle (an entry adopted after a restart may belong to the next).
        held = before.position > 0 and before.entry_ts <= ts
        # The engine's bookkeeping of the candle, with the real cash and position.
        self.set_engine(replace(before, last_ts=sim.state.last_ts, bars=sim.state.bars,
                                pending_entry=0, pending_exit=False,
                                extreme=sim.state.extreme if held else before.extreme))
        self.state = replace(self.state, feed=step.state)
        self.price = close
        equity = self.equity(close)
        risk = observe(self.state.risk, equity, next_open, self.config.limits)
        self.state = replace(self.state, risk=risk)
        equity_frame = equity_rows(candles.ts, np.array([equity]),
                                   np.array([before.position]), candles.close)
        if risk.halted:
            self._halt(risk.halted, equity_frame)
            return
        stops = sim.trades.filter(pl.col("reason") != "signal")
        if held and stops.height:  # the polls missed it: close now, at market
            self._exit(ts, EXIT_INTRABAR, str(stops["reason"][0]))
        elif held and sim.state.pending_exit:
            self._exit(next_open, EXIT_AT_OPEN, "signal")
        fresh = self.now_ms() - next_open < self.step_ms
        if sim.state.pending_entry == 1 and self.engine.position == 0:
            if fresh:
                self._enter(next_open, sim.state.bars)
            else:
                log.info("%s: entry signal on candle %d skipped: it closed too long ago",
                         self.config.task, ts)
        self.commit(equity_frame, state_row(self.engine, equity, False))

    # -- between candles ------------------------------------------------------------------

    def poll(self) -> None:
        """Check the price against the stops and the kill switch; commit any fill."""
        if self.halted:
            return
        self.price = price = self.broker.price()
        changed = self.sync_target()
        if self.engine.position > 0:
            check = polled_stop(self.engine, self.params, price)
            self.set_engine(check.engine)
            if check.reason is not None:
                log.info("%s: %s at %.8g (stop %.8g)", self.config.task, check.reason, price,
                         check.stop)
                self._exit(candle_open(self.now_ms(), self.config.timeframe), EXIT_INTRABAR,
                           check.reason)
                changed = True
        risk = observe(self.state.risk, self.equity(price), self.now_ms(), self.config.limits)
        self.state = replace(self.state, risk=risk)
        if risk.halted:
            self._halt(risk.halted)
        elif changed:
            self.commit()

    # -- orders ---------------------------------------------------------------------------

    def _enter(self, candle_ts: int, bar: int) -> None:
        engine = self.engine
        budget = engine.cash * self.params.size_fraction if self.params.size_quote <= 0 \
            else min(self.params.size_quote, engine.cash)
        budget = min(budget, self.broker.balance().quote_free)
        if budget < self.broker.min_cost():
            log.warning("%s: entry skipped: %.8g %s to spend is below the market's minimum",
                        self.config.task, budget, self.broker.quote)
            return
        fill = self.broker.buy_with_quote(self._client_id(candle_ts, ENTRY), budget)
        self._notify(fill)
        self.apply_entry(fill, candle_ts, bar)
        self.place_target()

    def apply_entry(self, fill: OrderFill, candle_ts: int, bar: int) -> None:
        """Put an entry's fill in the state: the position, its price, fee and candle."""
        self.rows.append(self._order_row(fill, "signal"))
        self.set_book(self.book.applying(fill.client_id))
        if not fill.filled:
            log.warning("%s: entry %s got no fill (%s)", self.config.task, fill.client_id,
                        fill.status)
            return
        engine = self.engine
        self.set_engine(replace(engine, cash=engine.cash - fill.cost,
                                position=engine.position + fill.amount - fill.fee_base,
                                entry_price=fill.price, entry_ts=candle_ts, entry_bar=bar,
                                entry_fee=fill.fee_quote, extreme=fill.price))
        log.info("%s: bought %.8g at %.8g (order %s)", self.config.task, fill.amount,
                 fill.price, fill.client_id)

    def place_target(self) -> None:
        """Rest the position's take profit on the exchange (when the strategy has one)."""
        engine = self.engine
        if self.params.take_profit <= 0 or engine.position <= 0 or self.target:
            return
        units = self.broker.amount(engine.position)
        if units < self.broker.min_amount():
            return
        # A new id for each take profit of a position: a canceled one's id would find it again.
        sequence = self.book.target_seq + 1
        client_id = self._client_id(engine.entry_ts, TARGET, sequence)
        order = self.broker.sell_limit(client_id, units,
                                       engine.entry_price * (1 + self.params.take_profit))
        self._notify(order)
        self.set_book(self.book.with_target(client_id, sequence))

    def _exit(self, candle_ts: int, action: int, reason: str) -> None:
        if self.target and not self._cancel_target():
            return  # the take profit filled first: nothing left to sell
        units = self.broker.amount(self.engine.position)
        if units < self.broker.min_amount():
            log.warning("%s: %.8g %s left is below the market's minimum: written off",
                        self.config.task, self.engine.position, self.broker.base)
            self.set_engine(replace(self.engine, position=0.0))
            return
        fill = self.broker.sell(self._client_id(candle_ts, action), units)
        self._notify(fill)
        self.apply_exit(fill, candle_ts, reason)

    def apply_exit(self, fill: OrderFill, candle_ts: int, reason: str) -> None:
        """Put an exit's fill in the state: the cash, what is left, the trade it closes."""
        self.rows.append(self._order_row(fill, reason))
        self.set_book(self.book.applying(fill.client_id))
        if not fill.filled:
            log.warning("%s: exit %s got no fill (%s)", self.config.task, fill.client_id,
                        fill.status)
            return
        engine = self.engine
        left = engine.position - fill.amount
        if self.broker.amount(left) < self.broker.min_amount():
            left = 0.0  # what the lot rounding left behind is too small to sell: closed
        # The units this exit accounts for: all of them when it closes the position (the
        # unsellable rest is a loss of this trade), else those sold.
        units = engine.position - left if engine.position > 0 else fill.amount
        share = min(1.0, units / engine.position) if engine.position > 0 else 1.0
        pnl = fill.cost - fill.fee_quote - units * engine.entry_price - engine.entry_fee * share
        self.trades.append({
            "side": "long", "entry_ts": engine.entry_ts, "exit_ts": candle_ts,
            "entry_price": engine.entry_price, "exit_price": fill.price, "size": fill.amount,
            "pnl": pnl, "fees": engine.entry_fee * share + fill.fee_quote, "reason": reason,
            "entry_bar": engine.entry_bar, "exit_bar": engine.bars})
        self.set_engine(replace(engine, cash=engine.cash + fill.cost - fill.fee_quote,
                                position=left, entry_fee=engine.entry_fee * (1 - share)))
        log.info("%s: sold %.8g at %.8g (%s, order %s), pnl %.2f", self.config.task,
                 fill.amount, fill.price, reason, fill.client_id, pnl)

    def sync_target(self) -> bool:
        """Settle the take profit if it is no longer open; True when the state changed."""
        if not self.target:
            return False
        order = self.broker.find(self.target)
        if order is not None and order.is_open:
            return False
        self._settle_target(order)
        return True

    def _cancel_target(self) -> bool:
        """Cancel the take profit; True when a position is left to sell (it may have filled)."""
        assert self.target is not None
        order = self.broker.cancel(self.target)
        if order is not None and order.is_open:
            raise RunError(f"take-profit order {self.target} is still open after a cancel")
        self._settle_target(order)
        return self.engine.position > 0

    def _settle_target(self, order: OrderFill | None) -> None:
        """Forget the ended take profit, applying what it filled."""
        client_id = self.target
        self.set_book(self.book.without_target())
        if order is None or not order.filled:
            log.info("%s: take-profit order %s is %s", self.config.task, client_id,
                     "gone" if order is None else order.status)
            if order is not None:
                self.rows.append(self._order_row(order, "take_profit"))
            return
        moment = order.timestamp or self.now_ms()
        self.apply_exit(order, candle_open(moment, self.config.timeframe), "take_profit")

    def _client_id(self, candle_ts: int, action: int, sequence: int | None = None) -> str:
        return encode(self.config.task, ClientOrderId(candle_ts, action, sequence))

    def _order_row(self, fill: OrderFill, reason: str) -> dict[str, Any]:
        """The order's row, keyed by the candle and action its client id names."""
        return order_row(self.config.task, decode(self.config.task, fill.client_id),
                         side=fill.side, status=fill.status, amount=fill.amount,
                         price=fill.price, cost=fill.cost, fee=fill.fee_quote, reason=reason,
                         order_id=fill.order_id, placed_at=fill.timestamp)

    def _notify(self, fill: OrderFill) -> None:
        if self.on_order is not None:
            self.on_order(fill)

    # -- kill switch ----------------------------------------------------------------------

    def _halt(self, reason: str, equity: pl.DataFrame | None = None) -> None:
        for order in self.broker.open_orders(self.prefix):
            ended = self.broker.cancel(order.client_id)
            log.warning("%s: kill switch: canceled %s (%s)", self.config.task, order.client_id,
                        ended.status if ended else "gone")
            if order.client_id == self.target:
                self._settle_target(ended)
        self.set_engine(halt_engine(self.engine))
        self.set_book(self.book.without_target())
        now = self.now_ms()
        self.state = replace(self.state, risk=replace(self.state.risk, halted=reason,
                                                      halted_at=now))
        log.error("%s: halted by the kill switch: %s", self.config.task, reason)
        if equity is not None:
            state_rows = state_row(self.engine, float(equity["equity"][0]), True)
        else:  # between two candles: the row is keyed by the moment it halted
            state_rows = state_row(self.engine, self.equity(), True).with_columns(
                ts=pl.lit(now, pl.Int64))
        self.commit(equity, state_rows)
