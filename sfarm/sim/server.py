"""The emulator's HTTP server: stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, faults at the door.

`Emulator(config)` binds at construction (port 0 picks a free port, see `.url`); run it with
`serve_forever()` in the foreground or `start()` in a background thread, stop it with `close()`.
Faults are applied here, before the Binance handlers see a request, so the handlers stay pure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sfarm.sim.api import BinanceSpotApi
from sfarm.sim.candles import DEFAULT_START_MS, CandleSource
from sfarm.sim.defaults import DEFAULT_API_KEY, DEFAULT_BALANCES, DEFAULT_SECRET
from sfarm.sim.faults import FaultDice, FaultPlan
from sfarm.sim.ledger import AccountConfig, Ledger
from sfarm.sim.protocol import Reply, Request
from sfarm.sim.trading import TradingApi

log = logging.getLogger("sfarm.sim")

# Binance's own requests are a few KiB at most: a larger body is refused before it is read.
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that defines an emulator run. Same config and seed: same candles and faults."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 0
    start_ms: int = DEFAULT_START_MS
    faults: FaultPlan = field(default_factory=FaultPlan)
    accounts: tuple[AccountConfig, ...] = (
        AccountConfig(DEFAULT_API_KEY, DEFAULT_SECRET, DEFAULT_BALANCES),
    )
    fee_rate: Decimal = Decimal("0.001")


_RATE_LIMIT_MSG = ("Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                   "Please use the websocket for live updates to avoid bans.")
_INTERNAL = {"code": -1000, "msg": "An unknown error occured while processing the request."}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # 5xx codes without a standard name
        return "Server Error"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as ccxt's requests session expects
    server: _Server
    timeout = 60  # an idle keep-alive connection is closed after a minute
    disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:  # the stdlib's naming
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def _body_length(self) -> int | Reply:
        """The request body's declared length, or the refusal of a body not read: too large,
        chunked (no length to check first) or a malformed length. A refused body is never read,
        so the connection closes after the reply."""
        declared = (self.headers.get("Content-Length") or "0").strip()
        if self.headers.get("Transfer-Encoding"):
            status, msg = 411, "A request body needs a Content-Length."
        elif not declared.isdigit():
            status, msg = 400, "Content-Length is not a number."
        elif int(declared) > MAX_BODY_BYTES:
            status, msg = 413, f"Request body too large: the limit is {MAX_BODY_BYTES} bytes."
        else:
            return int(declared)
        return Reply(status, {"code": -1000, "msg": msg}, headers={"Connection": "close"})

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        length = self._body_length()
        if isinstance(length, Reply):
            return self._send(length)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if body and "json" not in (self.headers.get("Content-Type") or ""):
            params.update(parse_qsl(body, keep_blank_values=True))
        route = emulator.api.route(self.command, parts.path)
        decision = emulator.dice.decide(self.command, parts.path, params,
                                        signed=route.signed if route else False)
        if decision.delay_s and emulator.stopping.wait(decision.delay_s):
            return self._drop()
        if decision.drop:
            return self._drop()
        if decision.rate_limit:
            retry_after = f"{emulator.config.faults.retry_after_s:g}"
            return self._send(Reply(429, {"code": -1003, "msg": _RATE_LIMIT_MSG},
                                    headers={"Retry-After": retry_after}))
        if decision.server_error:
            status = emulator.config.faults.server_status
            # what a gateway in front of the API sends: HTML, no Binance code
            page = f"<html><body><h1>{status} {_phrase(status)}</h1></body></html>"
            return self._send(Reply(status, raw=page.encode(), content_type="text/html"))
        request = Request(self.command, parts.path, parts.query, body, dict(self.headers.items()),
                          params, short_page=decision.short_page)
        try:
            reply = emulator.api.handle(request, emulator.now_ms())
        except Exception:  # a bug must answer like Binance's -1000, not kill the connection
            log.exception("emulator handler failed for %s %s", self.command, parts.path)
            reply = Reply(500, _INTERNAL)
        self._send(reply)

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, reply: Reply) -> None:
        payload = reply.raw if reply.raw is not None else json.dumps(
            reply.body, separators=(",", ":")).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to do


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Emulator:
    """A running Binance spot emulator bound to `config.host`:`config.port`."""

    def __init__(self, config: EmulatorConfig | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.candles = CandleSource(self.config.seed, self.config.start_ms,
                                    self.config.faults.maintenance)
        self.ledger = Ledger(self.config.accounts, self.candles, fee_rate=self.config.fee_rate)
        self.api = BinanceSpotApi(self.candles, self.config.faults.bad_candles)
        self.api.add_routes(TradingApi(self.ledger).routes())
        self.dice = FaultDice(self.config.faults, self.config.seed)
        self.stopping = threading.Event()
        self._server = _Server((self.config.host, self.config.port), self)
        self._thread: threading.Thread | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> Emulator:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self.serve_forever, name="sfarm-sim", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, end open connections and release the port."""
        self.stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
