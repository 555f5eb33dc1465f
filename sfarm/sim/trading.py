"""Binance's signed spot endpoints: account, orders, trades, coin list, over a `Ledger`.

Every handler authenticates, lets the ledger settle resting orders up to now, then answers in
Binance's JSON shapes (numbers as 8-decimal strings) so ccxt's parsers read them unmodified.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sfarm.sim.api import Route, market_param
from sfarm.sim.auth import authenticate
from sfarm.sim.exchange_info import ORDER_TYPES, coin_list
from sfarm.sim.ledger import Account, Ledger, Order, OrderRequest, Trade
from sfarm.sim.markets import assets
from sfarm.sim.protocol import ApiError, Request, decimal_param, fmt8, int_param, mandatory

_TIME_IN_FORCE = ("GTC", "IOC", "FOK")


def order_json(order: Order) -> dict[str, Any]:
    """GET /api/v3/order's shape."""
    return {
        "symbol": order.market.market_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": fmt8(order.price),
        "origQty": fmt8(order.orig_qty),
        "executedQty": fmt8(order.executed_qty),
        "cummulativeQuoteQty": fmt8(order.quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": order.is_open or order.status == "FILLED",
        "workingTime": order.time,
        "origQuoteOrderQty": fmt8(order.orig_quote_qty),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def trade_json(trade: Trade) -> dict[str, Any]:
    """GET /api/v3/myTrades' shape."""
    return {
        "symbol": trade.market.market_id,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": fmt8(trade.price),
        "qty": fmt8(trade.qty),
        "quoteQty": fmt8(trade.quote_qty),
        "commission": fmt8(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time,
        "isBuyer": trade.side == "BUY",
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def _fill_json(trade: Trade) -> dict[str, Any]:
    return {"price": fmt8(trade.price), "qty": fmt8(trade.qty),
            "commission": fmt8(trade.commission), "commissionAsset": trade.commission_asset,
            "tradeId": trade.trade_id}


def _window(items: list[Any], params: Mapping[str, str],
            time_of: Callable[[Any], int]) -> list[Any]:
    start = int_param(params, "startTime")
    end = int_param(params, "endTime")
    limit = min(int_param(params, "limit", 500) or 500, 1000)
    chosen = [i for i in items if (start is None or time_of(i) >= start)
              and (end is None or time_of(i) <= end)]
    return chosen[:limit] if start is not None else chosen[-limit:]


class TradingApi:
    """The signed endpoints; `routes()` plugs them into `BinanceSpotApi`."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def routes(self) -> dict[tuple[str, str], Route]:
        signed = {
            ("GET", "/api/v3/account"): self.account,
            ("POST", "/api/v3/order"): self.new_order,
            ("POST", "/api/v3/order/test"): self.test_order,
            ("GET", "/api/v3/order"): self.get_order,
            ("DELETE", "/api/v3/order"): self.cancel_order,
            ("GET", "/api/v3/openOrders"): self.open_orders,
            ("DELETE", "/api/v3/openOrders"): self.cancel_all,
            ("GET", "/api/v3/allOrders"): self.all_orders,
            ("GET", "/api/v3/myTrades"): self.my_trades,
            ("GET", "/sapi/v1/capital/config/getall"): self.coins,
            # ccxt asks for margin pairs when it has keys; the emulator has no margin markets.
            ("GET", "/sapi/v1/margin/allPairs"): self.no_margin_pairs,
            ("GET", "/sapi/v1/margin/isolated/allPairs"): self.no_margin_pairs,
        }
        return {key: Route(handler, signed=True) for key, handler in signed.items()}

    def _auth(self, request: Request, now_ms: int) -> Account:
        def secret_for(api_key: str) -> str | None:
            account = self.ledger.account(api_key)
            return account.config.secret if account else None

        account = self.ledger.account(authenticate(request, secret_for, now_ms))
        assert account is not None
        self.ledger.settle(account, now_ms)
        return account

    def account(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        with self.ledger.lock:
            names = sorted(set(assets()) | set(account.free) | set(account.locked))
            balances = [{"asset": a, "free": fmt8(account.free.get(a, Decimal(0))),
                         "locked": fmt8(account.locked.get(a, Decimal(0)))} for a in names]
        if request.params.get("omitZeroBalances") == "true":
            balances = [b for b in balances if Decimal(b["free"]) or Decimal(b["locked"])]
        fee = fmt8(self.ledger.fee_rate)
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": fee, "taker": fee, "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": account.update_time, "accountType": "SPOT", "balances": balances,
            "permissions": ["SPOT"], "uid": 1,
        }

    def _order_request(self, params: Mapping[str, str]) -> OrderRequest:
        market = market_param(params)
        side = mandatory(params, "side").upper()
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        order_type = mandatory(params, "type").upper()
        if order_type not in ORDER_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        time_in_force = params.get("timeInForce") or None
        if order_type == "LIMIT":
            time_in_force = mandatory(params, "timeInForce").upper()
            if time_in_force not in _TIME_IN_FORCE:
                raise ApiError(400, -1115, "Invalid timeInForce.")
        elif time_in_force:
            raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        return OrderRequest(
            market=market, side=side, type=order_type,
            quantity=decimal_param(params, "quantity"),
            quote_quantity=decimal_param(params, "quoteOrderQty"),
            price=decimal_param(params, "price"),
            time_in_force=time_in_force,
            client_order_id=params.get("newClientOrderId", ""),
        )

    def new_order(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        order, fills = self.ledger.place(account, self._order_request(request.params), now_ms)
        response_type = (request.params.get("newOrderRespType") or "FULL").upper()
        ack = {"symbol": order.market.market_id, "orderId": order.order_id, "orderListId": -1,
               "clientOrderId": order.client_order_id, "transactTime": now_ms}
        if response_type == "ACK":
            return ack
        result = order_json(order)
        for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking"):
            result.pop(key)
        result["transactTime"] = now_ms
        if response_type == "FULL":
            result["fills"] = [_fill_json(t) for t in fills]
        return result

    def test_order(self, request: Request, now_ms: int) -> Any:
        self._auth(request, now_ms)
        self._order_request(request.params)
        return {}

    def _ids(self, params: Mapping[str, str]) -> tuple[int | None, str | None]:
        order_id = int_param(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise ApiError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                           "both were empty/null!")
        return order_id, client_id

    def get_order(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params)
        return order_json(self.ledger.find(account, market, *self._ids(request.params)))

    def _cancel_json(self, order: Order, params: Mapping[str, str], now_ms: int) -> dict[str, Any]:
        result = order_json(order)
        for key in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime",
                    "origQuoteOrderQty"):
            result.pop(key)
        result["origClientOrderId"] = order.client_order_id
        result["clientOrderId"] = params.get("newClientOrderId") or f"cancel-{order.order_id}"
        result["transactTime"] = now_ms
        return result

    def cancel_order(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params)
        order = self.ledger.cancel(account, market, *self._ids(request.params), now_ms)
        return self._cancel_json(order, request.params, now_ms)

    def cancel_all(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params)
        with self.ledger.lock:
            orders = self.ledger.open_orders(account, market)
            if not orders:
                raise ApiError(400, -2011, "Unknown order sent.")
            return [self._cancel_json(self.ledger.cancel(account, market, o.order_id, None, now_ms),
                                      request.params, now_ms) for o in orders]

    def open_orders(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params) if request.params.get("symbol") else None
        return [order_json(o) for o in self.ledger.open_orders(account, market)]

    def all_orders(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params)
        first_id = int_param(request.params, "orderId")
        with self.ledger.lock:
            orders = [o for o in account.orders.values() if o.market == market
                      and (first_id is None or o.order_id >= first_id)]
            return [order_json(o) for o in _window(orders, request.params, lambda o: o.time)]

    def my_trades(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        market = market_param(request.params)
        order_id = int_param(request.params, "orderId")
        from_id = int_param(request.params, "fromId")
        with self.ledger.lock:
            trades = [t for t in account.trades if t.market == market
                      and (order_id is None or t.order_id == order_id)
                      and (from_id is None or t.trade_id >= from_id)]
            return [trade_json(t) for t in _window(trades, request.params, lambda t: t.time)]

    def no_margin_pairs(self, request: Request, now_ms: int) -> Any:
        self._auth(request, now_ms)
        return []

    def coins(self, request: Request, now_ms: int) -> Any:
        account = self._auth(request, now_ms)
        with self.ledger.lock:
            return coin_list(dict(account.free), dict(account.locked))
