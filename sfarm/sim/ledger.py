"""Emulated spot accounts: balances, orders and fills against the synthetic price walk.

Rules (a simple, documented subset of Binance's matching):
* A MARKET order fills at once, fully, at the current price (the close of the still-open minute).
* A LIMIT order that is marketable when placed fills at once at the current price (taker). Otherwise
  IOC/FOK orders expire and GTC orders rest, their funds locked. A LIMIT_MAKER that would match is
  rejected ("Order would immediately match and take.").
* A resting order is matched lazily, on every signed request of its account: it fills fully at its
  own price (maker) in the first minute whose candle trades through it after it was placed; in the
  minute it was placed, only a move beyond that minute's extreme at placement time counts.
* Commission (`fee_rate`, default 0.1 %) is taken from the asset received, as Binance does.
* `newClientOrderId` must be unique among the account's open orders, else "Duplicate order sent."
  (-2010); a filled or canceled order's id may be used again, as Binance documents.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import numpy as np

from sfarm.sim.candles import CandleSource
from sfarm.sim.exchange_info import MAX_NUM_ORDERS, min_notional
from sfarm.sim.markets import SimMarket
from sfarm.sim.protocol import ApiError
from sfarm.timeframes import MINUTE_MS, candle_open

_EIGHT = Decimal("0.00000001")
OPEN_STATES = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class AccountConfig:
    """An account of the emulator: its API key, its secret (never shown) and starting balances."""

    api_key: str
    secret: str = field(repr=False)
    balances: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderRequest:
    """A new order as the API decoded it (amounts already Decimal)."""

    market: SimMarket
    side: str
    type: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str = ""


@dataclass
class Order:
    order_id: int
    client_order_id: str
    market: SimMarket
    side: str
    type: str
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    executed_qty: Decimal = Decimal(0)
    quote_qty: Decimal = Decimal(0)
    status: str = "NEW"
    update_time: int = 0
    watch_from_ms: int = 0  # first minute whose candle may fill this resting order
    placed_high: int = 0  # extremes (ticks) of the placement minute when the order was placed
    placed_low: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES


@dataclass(frozen=True)
class Trade:
    trade_id: int
    order_id: int
    market: SimMarket
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass
class Account:
    config: AccountConfig
    free: dict[str, Decimal]
    locked: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    update_time: int = 0


def _reject(msg: str, code: int = -2010) -> ApiError:
    return ApiError(400, code, msg)


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return value > 0 and value % step == 0


class Ledger:
    """Every account of one emulator; all methods are thread-safe."""

    def __init__(self, accounts: Sequence[AccountConfig], candles: CandleSource, *,
                 fee_rate: Decimal = Decimal("0.001")) -> None:
        self.candles = candles
        self.fee_rate = fee_rate
        self._lock = threading.RLock()
        self._accounts = {
            c.api_key: Account(c, {k: Decimal(v) for k, v in c.balances.items()}) for c in accounts
        }
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(1)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def account(self, api_key: str) -> Account | None:
        return self._accounts.get(api_key)

    # ---- money movements -----------------------------------------------------------------------

    def _move(self, account: Account, asset: str, free: Decimal = Decimal(0),
              locked: Decimal = Decimal(0)) -> None:
        account.free[asset] = account.free.get(asset, Decimal(0)) + free
        account.locked[asset] = account.locked.get(asset, Decimal(0)) + locked

    def _fill(self, account: Account, order: Order, price: Decimal, now_ms: int, *,
              maker: bool, from_locked: bool) -> Trade:
        market, qty = order.market, order.orig_qty
        cost = (qty * price).quantize(_EIGHT, rounding=ROUND_DOWN)
        if order.side == "BUY":
            commission, asset = (qty * self.fee_rate).quantize(_EIGHT), market.base
            if from_locked:
                self._move(account, market.quote, free=order.price * qty - cost,
                           locked=-order.price * qty)
            else:
                self._move(account, market.quote, free=-cost)
            self._move(account, market.base, free=qty - commission)
        else:
            commission, asset = (cost * self.fee_rate).quantize(_EIGHT), market.quote
            if from_locked:
                self._move(account, market.base, locked=-qty)
            else:
                self._move(account, market.base, free=-qty)
            self._move(account, market.quote, free=cost - commission)
        order.executed_qty, order.quote_qty = qty, cost
        order.status, order.update_time = "FILLED", now_ms
        trade = Trade(next(self._trade_ids), order.order_id, market, order.side, price, qty, cost,
                      commission, asset, now_ms, maker)
        account.trades.append(trade)
        account.update_time = now_ms
        return trade

    # ---- orders --------------------------------------------------------------------------------

    def _validate(self, account: Account, request: OrderRequest, price_now: Decimal) -> Decimal:
        """Check filters, duplicates and funds; return the order quantity."""
        market = request.market
        if request.client_order_id and any(
            o.is_open and o.client_order_id == request.client_order_id
            for o in account.orders.values()
        ):
            raise _reject("Duplicate order sent.")
        if request.type == "MARKET":
            if request.quantity is None and request.quote_quantity is None:
                raise _reject("Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                              "empty/null!", -1102)
            if request.quantity is not None and request.quote_quantity is not None:
                raise _reject("Parameter 'quoteOrderQty' sent when not required.", -1106)
            if request.quantity is not None:
                qty = request.quantity
            else:  # spend (or receive) quoteOrderQty: the amount it buys now, whole lots
                assert request.quote_quantity is not None
                qty = (request.quote_quantity / price_now).quantize(market.lot, ROUND_DOWN)
            reference = price_now
        else:
            if request.price is None:
                raise _reject("Mandatory parameter 'price' was not sent, was empty/null, or "
                              "malformed.", -1102)
            if request.quantity is None:
                raise _reject("Mandatory parameter 'quantity' was not sent, was empty/null, or "
                              "malformed.", -1102)
            if not _is_multiple(request.price, market.tick):
                raise _reject("Filter failure: PRICE_FILTER", -1013)
            qty, reference = request.quantity, request.price
        if not _is_multiple(qty, market.lot):
            raise _reject("Filter failure: LOT_SIZE", -1013)
        if qty * reference < min_notional(market):
            raise _reject("Filter failure: NOTIONAL", -1013)
        if sum(1 for o in account.orders.values() if o.is_open and o.market == market) >= \
                MAX_NUM_ORDERS:
            raise _reject("Filter failure: MAX_NUM_ORDERS", -1013)
        needed = (market.quote, qty * reference) if request.side == "BUY" else (market.base, qty)
        if account.free.get(needed[0], Decimal(0)) < needed[1]:
            raise _reject("Account has insufficient balance for requested action.")
        return qty

    def place(self, account: Account, request: OrderRequest,
              now_ms: int) -> tuple[Order, list[Trade]]:
        """Create an order; returns it and the fills it got at once."""
        with self._lock:
            self.settle(account, now_ms)
            market = request.market
            price_ticks = self.candles.last_price(market, now_ms)
            price_now = market.price(price_ticks)
            qty = self._validate(account, request, price_now)
            limit_price = request.price if request.price is not None else Decimal(0)
            marketable = request.type == "MARKET" or (
                limit_price >= price_now if request.side == "BUY" else limit_price <= price_now)
            if marketable and request.type == "LIMIT_MAKER":
                raise _reject("Order would immediately match and take.")
            order_id = next(self._order_ids)
            order = Order(
                order_id=order_id,
                client_order_id=request.client_order_id or f"sim-{order_id}",
                market=market, side=request.side, type=request.type,
                time_in_force=request.time_in_force if request.type == "LIMIT" else None,
                price=limit_price, orig_qty=qty,
                orig_quote_qty=request.quote_quantity or Decimal(0),
                time=now_ms, update_time=now_ms,
            )
            account.orders[order_id] = order
            if marketable:
                return order, [self._fill(account, order, price_now, now_ms, maker=False,
                                          from_locked=False)]
            if order.time_in_force in ("IOC", "FOK"):
                order.status = "EXPIRED"
                return order, []
            if order.side == "BUY":
                self._move(account, market.quote, free=-qty * order.price, locked=qty * order.price)
            else:
                self._move(account, market.base, free=-qty, locked=qty)
            minute = candle_open(now_ms, "1m")
            placed = self.candles.minutes(market, minute, minute + MINUTE_MS, now_ms)
            order.watch_from_ms = minute
            order.placed_high = int(placed.high[-1]) if len(placed) else price_ticks
            order.placed_low = int(placed.low[-1]) if len(placed) else price_ticks
            account.update_time = now_ms
            return order, []

    def settle(self, account: Account, now_ms: int) -> None:
        """Fill the account's resting orders that the price walk has crossed by `now_ms`."""
        with self._lock:
            for order in list(account.orders.values()):
                if order.is_open:
                    self._settle_order(account, order, now_ms)

    def _settle_order(self, account: Account, order: Order, now_ms: int) -> None:
        market = order.market
        limit = int(order.price / market.tick)
        minutes = self.candles.minutes(market, order.watch_from_ms, now_ms + 1, now_ms)
        placement = minutes.ts == candle_open(order.time, "1m")
        if order.side == "BUY":
            crossed = (minutes.low <= limit) & (~placement | (order.placed_low > limit))
        else:
            crossed = (minutes.high >= limit) & (~placement | (order.placed_high < limit))
        hits = np.flatnonzero(crossed)
        if len(hits):
            when = max(int(minutes.ts[hits[0]]), order.time)
            self._fill(account, order, order.price, when, maker=True, from_locked=True)
        else:
            order.watch_from_ms = max(order.watch_from_ms, candle_open(now_ms, "1m"))

    def find(self, account: Account, market: SimMarket, order_id: int | None,
             client_order_id: str | None) -> Order:
        """An order by id or client id (the newest with that client id), or -2013."""
        with self._lock:
            if order_id is not None:
                order = account.orders.get(order_id)
                if order is not None and order.market == market and (
                        client_order_id is None or order.client_order_id == client_order_id):
                    return order
            else:
                for order in reversed(account.orders.values()):
                    if order.market == market and order.client_order_id == client_order_id:
                        return order
        raise ApiError(400, -2013, "Order does not exist.")

    def cancel(self, account: Account, market: SimMarket, order_id: int | None,
               client_order_id: str | None, now_ms: int) -> Order:
        """Cancel an open order and release its funds, or -2011."""
        with self._lock:
            self.settle(account, now_ms)
            try:
                order = self.find(account, market, order_id, client_order_id)
            except ApiError:
                raise ApiError(400, -2011, "Unknown order sent.") from None
            if not order.is_open:
                raise ApiError(400, -2011, "Unknown order sent.")
            self._release(account, order)
            order.status, order.update_time = "CANCELED", now_ms
            account.update_time = now_ms
            return order

    def _release(self, account: Account, order: Order) -> None:
        remaining = order.orig_qty - order.executed_qty
        if order.side == "BUY":
            amount = remaining * order.price
            self._move(account, order.market.quote, free=amount, locked=-amount)
        else:
            self._move(account, order.market.base, free=remaining, locked=-remaining)

    def open_orders(self, account: Account, market: SimMarket | None) -> list[Order]:
        with self._lock:
            return [o for o in account.orders.values()
                    if o.is_open and (market is None or o.market == market)]
