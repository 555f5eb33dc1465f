"""Reconciliation of a live session with the exchange when it starts or restarts.

The exchange is the truth: the session's own orders (by client id) since its last committed
candle that its state does not know are adopted (their fills applied) or, when open and not
its take profit, canceled; a take profit that filled or vanished while the worker was down is
settled; a position or cash larger than the account's balance is cut to it. Every difference
is logged as a warning. A halted session is left as it is.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from sfarm.trading.broker import OrderFill
from sfarm.trading.client_ids import ENTRY, EXIT_AT_OPEN, EXIT_INTRABAR, TARGET, decode

if TYPE_CHECKING:  # the session calls this module; it is only a type here
    from sfarm.trading.live import LiveSession

log = logging.getLogger("sfarm.trading.live")

# Why an adopted sell closed the position, by its client id's action (a polled stop's id does
# not say whether it was the stop loss or the trailing stop).
EXIT_REASONS = {EXIT_AT_OPEN: "signal", ENTRY: "signal", EXIT_INTRABAR: "stop_loss",
                TARGET: "take_profit"}


def reconcile(session: LiveSession) -> None:
    """Adopt the exchange's truth: the session's orders and the account's balance; commit
    when anything changed."""
    if session.halted:
        return
    task, broker = session.config.task, session.broker
    changed = session.sync_target()
    applied = session.book.applied
    since = max(session.engine.last_ts, session.book.created_at)
    for order in broker.orders_since(since, session.prefix):
        if order.client_id in applied or order.client_id == session.target:
            continue
        changed |= _adopt(session, order)
    balance = broker.balance()
    engine = session.engine
    if engine.position > balance.base_total + 1e-12:
        log.warning("%s: the state holds %.8g %s, the account %.8g: adopting the account's",
                    task, engine.position, broker.base, balance.base_total)
        position = balance.base_total if balance.base_total >= broker.min_amount() else 0.0
        session.set_engine(replace(engine, position=position))
        changed = True
    if session.engine.cash > balance.quote_total + 1e-9:
        log.warning("%s: the session's cash %.2f is more than the account's %.2f %s: cut to it",
                    task, session.engine.cash, balance.quote_total, broker.quote)
        session.set_engine(replace(session.engine, cash=balance.quote_total))
        changed = True
    if session.engine.position > 0 and not session.target and session.params.take_profit > 0:
        session.place_target()
        changed = True
    if changed:
        session.commit()


def _adopt(session: LiveSession, order: OrderFill) -> bool:
    """An order of this session placed before a restart and missing from the state; True when
    the state changed."""
    task = session.config.task
    placed = decode(task, order.client_id)
    if order.is_open:
        if placed.action == TARGET and session.engine.position > 0 and not session.target:
            log.warning("%s: adopting open take-profit order %s", task, order.client_id)
            session.set_book(session.book.with_target(order.client_id, placed.sequence or 1))
        else:
            log.warning("%s: canceling unknown open order %s", task, order.client_id)
            session.broker.cancel(order.client_id)
        return True
    if not order.filled:
        return False
    log.warning("%s: adopting %s order %s (%.8g at %.8g) placed before the restart", task,
                order.side, order.client_id, order.amount, order.price)
    engine = session.engine
    if order.side == "buy" and engine.position == 0:
        skipped = max(0, (placed.candle_ts - engine.last_ts) // session.step_ms - 1)
        session.apply_entry(order, placed.candle_ts, engine.bars + skipped)
    elif order.side == "sell" and engine.position > 0:
        session.apply_exit(order, placed.candle_ts, EXIT_REASONS[placed.action])
    return True
