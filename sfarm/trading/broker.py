"""Orders of a live session on one spot market, through ccxt: idempotent by client order id.

Only ccxt's unified API is used (`clientOrderId` on create, fetch and cancel, and
`create_market_buy_order_with_cost`), which each exchange's ccxt class maps to its own
parameters; the exchanges whose mapping sfarm has tested are sfarm.exchanges.live_support's.

Every order carries a client order id derived from what it is for (task, candle, action, see
`sfarm.trading.client_ids`). Before placing one the broker asks the exchange for
that id: an order found was placed before a restart and is adopted, never placed twice (an
exchange rejects a duplicate id only while the first order is open, and a market order never
is). A placement whose answer was lost (timeout, dropped connection) is looked up the same way
before it is tried again; "Duplicate order sent" also means "already placed".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from sfarm.exchanges import RetryPolicy, call_with_retries, translate
from sfarm.exchanges.errors import ExchangeCallError, ExchangeTemporaryError, is_temporary

log = logging.getLogger("sfarm.trading.live")

PLACE_ATTEMPTS = 5
DEFAULT_POLICY = RetryPolicy(max_attempts=4, base_delay=0.2)


@dataclass(frozen=True)
class OrderFill:
    """An order as the session needs it; amounts filled so far, the fee in both currencies."""

    client_id: str
    order_id: str
    side: str  # buy | sell
    status: str  # ccxt's: open, closed, canceled, expired, rejected
    amount: float  # base filled
    price: float  # average fill price (the limit price for an unfilled limit order)
    cost: float  # quote filled
    fee_base: float  # fee taken from the base received (buys on Binance)
    fee_quote: float  # fee taken from the quote received, plus fee_base at `price`
    timestamp: int | None  # last fill or update (ms)
    remaining: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def filled(self) -> bool:
        return self.amount > 0


@dataclass(frozen=True)
class Balance:
    base_free: float
    base_total: float
    quote_free: float
    quote_total: float


class Broker:
    """One market of one exchange (ccxt, credentials already set)."""

    def __init__(self, exchange: ccxt.Exchange, market: str, *,
                 policy: RetryPolicy = DEFAULT_POLICY,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.exchange = exchange
        self.market = market
        self.policy = policy
        self.sleep = sleep
        self.base, self.quote = market.split(":")[0].split("/")

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call_with_retries(fn, *args, policy=self.policy, sleep=self.sleep, **kwargs)
        except ExchangeCallError as error:
            # "Timestamp outside of the recvWindow": this machine's clock drifted from the
            # exchange's. Measure the difference again (ccxt signs with it) and retry once.
            if error.kind != "InvalidNonce" or not self.exchange.has.get("fetchTime"):
                raise
            self.sync_time()
            return call_with_retries(fn, *args, policy=self.policy, sleep=self.sleep, **kwargs)

    def sync_time(self) -> None:
        """Sign requests with the exchange's clock (ccxt's time difference)."""
        if hasattr(self.exchange, "load_time_difference"):
            call_with_retries(self.exchange.load_time_difference, policy=self.policy,
                              sleep=self.sleep)

    def load(self) -> None:
        self.sync_time()
        self._call(self.exchange.load_markets)

    # -- reading ----------------------------------------------------------------------------

    def price(self) -> float:
        ticker = self._call(self.exchange.fetch_ticker, self.market)
        return float(ticker["last"])

    def balance(self) -> Balance:
        balance = self._call(self.exchange.fetch_balance)

        def amount(kind: str, asset: str) -> float:
            return float(balance.get(kind, {}).get(asset) or 0.0)

        return Balance(amount("free", self.base), amount("total", self.base),
                       amount("free", self.quote), amount("total", self.quote))

    def find(self, client_id: str) -> OrderFill | None:
        """The order with this client id, or None when the exchange has none."""
        try:
            order = self._call(self.exchange.fetch_order, None, self.market,
                               {"clientOrderId": client_id})
        except ExchangeCallError as error:
            if error.kind == "OrderNotFound":
                return None
            raise
        return self._fill(order)

    def orders_since(self, since_ms: int, prefix: str) -> list[OrderFill]:
        """This session's orders (client id starting with `prefix`) placed from `since_ms`."""
        orders = self._call(self.exchange.fetch_orders, self.market, since_ms, 1000)
        return [self._fill(o) for o in orders if str(o.get("clientOrderId") or "")
                .startswith(prefix)]

    def open_orders(self, prefix: str) -> list[OrderFill]:
        orders = self._call(self.exchange.fetch_open_orders, self.market)
        return [self._fill(o, with_fees=False) for o in orders
                if str(o.get("clientOrderId") or "").startswith(prefix)]

    # -- placing ----------------------------------------------------------------------------

    def buy_with_quote(self, client_id: str, quote_amount: float) -> OrderFill:
        """A market buy spending `quote_amount` (the exchange computes the base amount)."""
        cost = float(self.exchange.cost_to_precision(self.market, quote_amount))
        return self._place(client_id, lambda: self.exchange.create_market_buy_order_with_cost(
            self.market, cost, {"clientOrderId": client_id}))

    def sell(self, client_id: str, amount: float) -> OrderFill:
        """A market sell of `amount` base (rounded down to the market's lot)."""
        units = self.amount(amount)
        return self._place(client_id, lambda: self.exchange.create_order(
            self.market, "market", "sell", units, None, {"clientOrderId": client_id}))

    def sell_limit(self, client_id: str, amount: float, price: float) -> OrderFill:
        """A resting (GTC) limit sell: a take-profit order the exchange keeps."""
        units = self.amount(amount)
        limit = float(self.exchange.price_to_precision(self.market, price))
        return self._place(client_id, lambda: self.exchange.create_order(
            self.market, "limit", "sell", units, limit,
            {"clientOrderId": client_id, "timeInForce": "GTC"}))

    def cancel(self, client_id: str) -> OrderFill | None:
        """Cancel an open order; returns the order as it ended (it may have filled first)."""
        try:
            self._call(self.exchange.cancel_order, None, self.market,
                       {"clientOrderId": client_id})
        except ExchangeCallError as error:
            # already filled, canceled or never placed: `find` says which
            if error.kind not in ("OrderNotFound", "OperationRejected"):
                raise
        return self.find(client_id)

    def amount(self, amount: float) -> float:
        """`amount` rounded down to the market's lot (0 when less than one lot)."""
        try:
            return float(self.exchange.amount_to_precision(self.market, amount))
        except ccxt.InvalidOrder:  # ccxt refuses to round to zero
            return 0.0

    def min_amount(self) -> float:
        return self._limit("amount")

    def min_cost(self) -> float:
        """The smallest order value in quote the market accepts (its NOTIONAL filter)."""
        return self._limit("cost")

    def _limit(self, kind: str) -> float:
        limits = self.exchange.market(self.market).get("limits", {})
        return float((limits.get(kind) or {}).get("min") or 0.0)

    def _place(self, client_id: str, create: Callable[[], Any]) -> OrderFill:
        existing = self.find(client_id)
        if existing is not None:
            log.info("order %s was already placed (%s): adopting it", client_id, existing.status)
            return existing
        for attempt in range(1, PLACE_ATTEMPTS + 1):
            try:
                return self._fill(create())
            except ccxt.InvalidOrder as error:
                if "Duplicate order" not in str(error):
                    raise translate(error, action=f"order {client_id}") from error
            except ccxt.BaseError as error:
                if not is_temporary(error):
                    raise translate(error, action=f"order {client_id}") from error
                if attempt == PLACE_ATTEMPTS:
                    raise translate(error, action=f"order {client_id}") from error
                log.warning("order %s: %s; checking whether it landed", client_id,
                            type(error).__name__)
                self.sleep(self.policy.backoff(attempt))
            found = self.find(client_id)  # did the lost or rejected attempt land?
            if found is not None:
                return found
        raise ExchangeTemporaryError(f"order {client_id}: not placed after "
                                     f"{PLACE_ATTEMPTS} attempts")

    # -- parsing ------------------------------------------------------------------------------

    def _fill(self, order: dict[str, Any], *, with_fees: bool = True) -> OrderFill:
        filled = float(order.get("filled") or 0.0)
        cost = float(order.get("cost") or 0.0)
        average = order.get("average") or order.get("price") or 0.0
        price = float(average) if average else (cost / filled if filled else 0.0)
        fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
        if with_fees and filled and not fees:
            trades = self._call(self.exchange.fetch_my_trades, self.market, None, None,
                                {"orderId": order["id"]})
            fees = [trade["fee"] for trade in trades if trade.get("fee")]
        fee_base = sum(float(f.get("cost") or 0.0) for f in fees if f.get("currency") == self.base)
        fee_other = sum(float(f.get("cost") or 0.0) for f in fees
                        if f.get("currency") == self.quote)
        return OrderFill(
            client_id=str(order.get("clientOrderId") or ""), order_id=str(order["id"]),
            side=str(order.get("side")), status=str(order.get("status")), amount=filled,
            price=price, cost=cost, fee_base=fee_base, fee_quote=fee_other + fee_base * price,
            timestamp=order.get("lastTradeTimestamp") or order.get("lastUpdateTimestamp")
            or order.get("timestamp"),
            remaining=float(order.get("remaining") or 0.0))
