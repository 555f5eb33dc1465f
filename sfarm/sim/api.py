"""Binance's spot REST dialect: the route table and the public market-data endpoints.

Handlers take a decoded `Request` and the emulator's current time and return a JSON-able value or
a `Reply`; they never touch sockets, so they are tested without HTTP. Signed endpoints live in
`sfarm.sim.trading` and are added to the table when the emulator has accounts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sfarm.sim.candles import Candles, CandleSource
from sfarm.sim.exchange_info import exchange_info
from sfarm.sim.faults import spoil_klines
from sfarm.sim.markets import MARKETS, MARKETS_BY_ID, SimMarket
from sfarm.sim.protocol import ApiError, Reply, Request, fmt8, int_param, mandatory
from sfarm.timeframes import DAY_MS, MINUTE_MS, TIMEFRAME_MS, candle_open

Handler = Callable[[Request, int], Any]
MAX_KLINES = 1000


@dataclass(frozen=True)
class Route:
    handler: Handler
    signed: bool = False  # needs X-MBX-APIKEY and a signature; exempt from faults by default


def market_param(params: Mapping[str, str]) -> SimMarket:
    """The market named by `symbol`, or Binance's -1121."""
    market = MARKETS_BY_ID.get(mandatory(params, "symbol").upper())
    if market is None:
        raise ApiError(400, -1121, "Invalid symbol.")
    return market


def _symbols_param(params: Mapping[str, str]) -> list[SimMarket] | None:
    """`symbol=X` or `symbols=["X","Y"]`, or None for every market."""
    if params.get("symbol"):
        return [market_param(params)]
    raw = params.get("symbols")
    if not raw:
        return None
    try:
        ids = json.loads(raw)
    except ValueError:
        raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
    if not isinstance(ids, list):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.")
    markets = [MARKETS_BY_ID.get(str(i).upper()) for i in ids]
    if any(m is None for m in markets):
        raise ApiError(400, -1121, "Invalid symbol.")
    return [m for m in markets if m is not None]


def fixed8(units: list[int], decimals: int) -> list[str]:
    """Non-negative integers in units of 10**-decimals as Binance's 8-decimal strings (truncated).

    Plain integer formatting: about ten times faster than Decimal for a 1000-row klines page.
    """
    if decimals > 8:
        units, decimals = [u // 10 ** (decimals - 8) for u in units], 8
    if decimals == 0:
        return [f"{u}.00000000" for u in units]
    scale, pad = 10**decimals, "0" * (8 - decimals)
    return [f"{u // scale}.{u % scale:0{decimals}d}{pad}" for u in units]


def kline_rows(market: SimMarket, candles: Candles, step_ms: int) -> list[list[Any]]:
    """Binance's kline arrays: open time, OHLCV strings, close time, quote volume, trades, ..."""
    pd, ad = market.price_decimals, market.amount_decimals
    ts, o, h, low, c, v = (col.tolist() for col in candles.columns())
    # quote volume ~ volume x mean of OHLC: exact integers in units of 10**-(pd + ad + 2)
    price_sum = [a + b + d + e for a, b, d, e in zip(o, h, low, c, strict=True)]
    taker = [x // 2 for x in v]
    trades = (candles.volume / 10.0**ad / market.minute_volume * 50 * step_ms / MINUTE_MS).astype(
        int) + (candles.volume > 0)
    columns = (
        fixed8(o, pd), fixed8(h, pd), fixed8(low, pd), fixed8(c, pd), fixed8(v, ad),
        fixed8([x * p * 25 for x, p in zip(v, price_sum, strict=True)], pd + ad + 2),
        fixed8(taker, ad),
        fixed8([x * p * 25 for x, p in zip(taker, price_sum, strict=True)], pd + ad + 2),
    )
    return [
        [t, op, hi, lo, cl, vol, t + step_ms - 1, quote, n, taker_base, taker_quote, "0"]
        for t, op, hi, lo, cl, vol, quote, n, taker_base, taker_quote in zip(
            ts, *columns[:6], trades.tolist(), *columns[6:], strict=True)
    ]


class BinanceSpotApi:
    """Routes requests to handlers; public endpoints are defined here."""

    def __init__(self, candles: CandleSource,
                 bad_candles: tuple[tuple[int, int], ...] = ()) -> None:
        self.candles = candles
        self.bad_candles = bad_candles  # fault injection: klines served with impossible values
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "/api/v3/ping"): Route(lambda request, now: {}),
            ("GET", "/api/v3/time"): Route(lambda request, now: {"serverTime": now}),
            ("GET", "/api/v3/exchangeInfo"): Route(self.exchange_info),
            ("GET", "/api/v3/klines"): Route(self.klines),
            ("GET", "/api/v3/uiKlines"): Route(self.klines),
            ("GET", "/api/v3/ticker/24hr"): Route(self.ticker_24hr),
            ("GET", "/api/v3/ticker/price"): Route(self.ticker_price),
            ("GET", "/api/v3/ticker/bookTicker"): Route(self.book_ticker),
            ("GET", "/api/v3/avgPrice"): Route(self.avg_price),
            ("GET", "/api/v3/depth"): Route(self.depth),
            ("GET", "/sapi/v1/system/status"): Route(lambda r, n: {"status": 0, "msg": "normal"}),
            # The emulator is spot only; ccxt's default load_markets also asks the futures APIs.
            ("GET", "/fapi/v1/exchangeInfo"): Route(self.no_derivatives),
            ("GET", "/dapi/v1/exchangeInfo"): Route(self.no_derivatives),
        }

    def add_routes(self, routes: Mapping[tuple[str, str], Route]) -> None:
        self.routes.update(routes)

    def route(self, method: str, path: str) -> Route | None:
        return self.routes.get((method.upper(), path.rstrip("/") or "/"))

    def handle(self, request: Request, now_ms: int) -> Reply:
        """Answer one request; Binance errors become their JSON replies."""
        route = self.route(request.method, request.path)
        if route is None:
            return Reply(404, {"code": -1020, "msg": "This operation is not supported."})
        try:
            result = route.handler(request, now_ms)
        except ApiError as error:
            return error.reply()
        return result if isinstance(result, Reply) else Reply(200, result)

    # ---- public endpoints ----------------------------------------------------------------------

    def exchange_info(self, request: Request, now_ms: int) -> Any:
        chosen = _symbols_param(request.params)
        return exchange_info(now_ms, None if chosen is None else [m.market_id for m in chosen])

    def no_derivatives(self, request: Request, now_ms: int) -> Any:
        return {"timezone": "UTC", "serverTime": now_ms, "rateLimits": [], "exchangeFilters": [],
                "assets": [], "symbols": []}

    def klines(self, request: Request, now_ms: int) -> Any:
        params = request.params
        market = market_param(params)
        interval = mandatory(params, "interval")
        if interval not in TIMEFRAME_MS:
            raise ApiError(400, -1120, "Invalid interval.")
        since = int_param(params, "startTime")
        until = int_param(params, "endTime")
        limit = int_param(params, "limit", 500)
        assert limit is not None
        if limit < 1:
            raise ApiError(400, -1130, "Data sent for parameter 'limit' is not valid.")
        if since is not None and until is not None and since > until:
            raise ApiError(400, -1023, "Start time is greater than end time.")
        candles = self.candles.candles(market, interval, now_ms=now_ms, since_ms=since,
                                       until_ms=until, limit=min(limit, MAX_KLINES))
        if request.short_page is not None and len(candles) >= 2:
            keep = min(len(candles) - 1, max(1, int(len(candles) * request.short_page)))
            candles = candles.take(slice(0, keep))
        return spoil_klines(kline_rows(market, candles, TIMEFRAME_MS[interval]), self.bad_candles)

    def _day_window(self, market: SimMarket, now_ms: int) -> Candles:
        return self.candles.minutes(market, now_ms - DAY_MS, now_ms + 1, now_ms)

    def _ticker(self, market: SimMarket, now_ms: int) -> dict[str, Any]:
        window = self._day_window(market, now_ms)
        last = market.price(self.candles.last_price(market, now_ms))
        if len(window):
            first_open = market.price(int(window.open[0]))
            high, low = market.price(int(window.high.max())), market.price(int(window.low.min()))
            volume = market.amount(int(window.volume.sum()))
            quote = sum((market.amount(v) * market.price(c)
                         for v, c in zip(window.volume.tolist(), window.close.tolist(),
                                         strict=True)), Decimal(0))
        else:  # the whole day inside a maintenance gap
            first_open = high = low = last
            volume = quote = Decimal(0)
        change = last - first_open
        count = int(volume / market.lot / 20) if volume else 0
        return {
            "symbol": market.market_id,
            "priceChange": fmt8(change),
            "priceChangePercent": f"{change / first_open * 100:.3f}",
            "weightedAvgPrice": fmt8(quote / volume if volume else last),
            "prevClosePrice": fmt8(first_open),
            "lastPrice": fmt8(last),
            "lastQty": fmt8(market.lot * 10),
            "bidPrice": fmt8(last - market.tick),
            "bidQty": fmt8(market.lot * 1000),
            "askPrice": fmt8(last),
            "askQty": fmt8(market.lot * 1000),
            "openPrice": fmt8(first_open),
            "highPrice": fmt8(max(high, last)),
            "lowPrice": fmt8(min(low, last)),
            "volume": fmt8(volume),
            "quoteVolume": fmt8(quote),
            "openTime": now_ms - DAY_MS,
            "closeTime": now_ms,
            "firstId": 1,
            "lastId": count,
            "count": count,
        }

    def ticker_24hr(self, request: Request, now_ms: int) -> Any:
        chosen = _symbols_param(request.params)
        if request.params.get("symbol"):
            return self._ticker(market_param(request.params), now_ms)
        return [self._ticker(m, now_ms) for m in (chosen if chosen is not None else MARKETS)]

    def ticker_price(self, request: Request, now_ms: int) -> Any:
        def one(market: SimMarket) -> dict[str, str]:
            return {"symbol": market.market_id,
                    "price": fmt8(market.price(self.candles.last_price(market, now_ms)))}
        if request.params.get("symbol"):
            return one(market_param(request.params))
        chosen = _symbols_param(request.params)
        return [one(m) for m in (chosen if chosen is not None else MARKETS)]

    def book_ticker(self, request: Request, now_ms: int) -> Any:
        def one(market: SimMarket) -> dict[str, str]:
            last = self.candles.last_price(market, now_ms)
            return {"symbol": market.market_id,
                    "bidPrice": fmt8(market.price(last - 1)), "bidQty": fmt8(market.lot * 1000),
                    "askPrice": fmt8(market.price(last)), "askQty": fmt8(market.lot * 1000)}
        if request.params.get("symbol"):
            return one(market_param(request.params))
        chosen = _symbols_param(request.params)
        return [one(m) for m in (chosen if chosen is not None else MARKETS)]

    def avg_price(self, request: Request, now_ms: int) -> Any:
        market = market_param(request.params)
        minutes = self.candles.minutes(market, now_ms - 5 * MINUTE_MS, now_ms + 1, now_ms)
        closes = minutes.close.tolist() or [self.candles.last_price(market, now_ms)]
        return {"mins": 5, "price": fmt8(market.price(sum(closes)) / len(closes)),
                "closeTime": candle_open(now_ms, "1m")}

    def depth(self, request: Request, now_ms: int) -> Any:
        """A synthetic book: one level per tick on each side of the current price."""
        market = market_param(request.params)
        limit = min(int_param(request.params, "limit", 100) or 100, 5000)
        last = self.candles.last_price(market, now_ms)
        levels = range(min(limit, last - 1))
        size = [fmt8(market.lot * (1000 + 37 * (i % 11))) for i in range(limit)]
        return {
            "lastUpdateId": now_ms,
            "bids": [[fmt8(market.price(last - 1 - i)), size[i]] for i in levels],
            "asks": [[fmt8(market.price(last + i)), size[i]] for i in range(limit)],
        }
