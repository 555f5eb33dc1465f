"""The server of `sfarm web`: textual-serve's Server, serving one process of a terminal app
(the dashboard, `sfarm tui`) to each browser tab, with what a page that controls a farm needs:

- every request passes sfarm.tui.web_access first (token, Host, Origin), so a refused browser
  never starts an app process;
- the page's URLs (its websocket, its static files) are built from the address the browser
  used, not from the address the server is bound to (0.0.0.0 is no address to connect to);
- the page loads nothing from outside: sfarm's copy of textual-serve's template loads the
  Roboto Mono font textual-serve ships instead of Google's;
- one listener only, TLS when given a certificate, and on SIGINT/SIGTERM every app process is
  ended and reaped before the server returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from asyncio.subprocess import Process
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp_jinja2
import jinja2
import textual_serve
from aiohttp import WSCloseCode, web
from rich.console import Console
from rich.logging import RichHandler
from textual_serve.server import Server, to_int
from yarl import URL

from sfarm.errors import RunError
from sfarm.tui.web_access import Access, access_middleware, is_loopback, security_headers
from sfarm.tui.web_secrets import TlsFiles
from sfarm.tui.web_session import AppSession, end_process

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(textual_serve.__file__).parent / "static"  # textual.js, xterm.css, the fonts
SHUTDOWN_S = 15.0  # what open sessions get to end (web_session: 5 + 2 + 3 s at most)

log = logging.getLogger("sfarm.web")


@dataclass(frozen=True)
class WebSettings:
    """What `sfarm web` serves and how.

    Attributes:
        command: the argument list of the app each browser tab runs (`sfarm tui ...`).
        host, port: the one address to listen on (port 0: any free port).
        public_url: the URL browsers use when it is not this server's own (a proxy in front).
        tls: certificate and key to serve https with (None: plain http).
        token: what every request must carry (None: nothing; only for loopback servers).
        title: the page's title.
    """

    command: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8765
    public_url: str | None = None
    tls: TlsFiles | None = None
    token: str | None = field(default=None, repr=False)
    title: str = "sfarm"

    @property
    def secure(self) -> bool:
        """Whether browsers reach the server over https."""
        if self.public_url is not None:
            return URL(self.public_url).scheme == "https"
        return self.tls is not None

    @property
    def loopback_only(self) -> bool:
        """Whether only this machine can reach the server (listening on a loopback address,
        and no public URL elsewhere)."""
        public_host = URL(self.public_url).host if self.public_url is not None else None
        return is_loopback(self.host) and (public_host is None or is_loopback(public_host))


class DashboardServer(Server):
    """textual-serve's Server with sfarm's access checks, page, sessions and shutdown."""

    def __init__(self, settings: WebSettings, console: Console) -> None:
        super().__init__(" ".join(settings.command), host=settings.host, port=settings.port,
                         title=settings.title, public_url=settings.public_url,
                         statics_path=STATIC, templates_path=TEMPLATES)
        self.settings = settings
        self.console = console
        self.access = Access(token=settings.token, secure=settings.secure,
                             public_url=URL(settings.public_url) if settings.public_url else None)
        self._websockets: set[web.WebSocketResponse] = set()
        self._processes: set[Process] = set()

    def initialize_logging(self) -> None:
        # textual-serve's own handler shows each frame's local variables in tracebacks: never
        # print what a request carried (the token) there.
        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[
            RichHandler(console=self.console, show_path=False, show_time=False)])

    async def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[access_middleware(self.access)])
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
        app.add_routes([
            web.get("/", self._page, name="index"),
            web.get("/ws", self._session, name="websocket"),
            web.get("/download/{key}", self.handle_download, name="download"),
            web.static("/static", STATIC, name="static"),
        ])
        app.on_response_prepare.append(self._add_headers)
        app.on_shutdown.append(self._close_websockets)
        app.on_cleanup.append(self._end_processes)
        return app

    def serve_until_signalled(self, on_listening: Callable[[int], None]) -> None:
        """Listen, call `on_listening(port)` once bound, serve until SIGINT or SIGTERM, then
        end every session and return. RunError when the address cannot be listened on."""
        self.initialize_logging()
        asyncio.run(self._serve(on_listening))

    async def _serve(self, on_listening: Callable[[int], None]) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        runner = web.AppRunner(await self._make_app(), access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            tls = self.settings.tls.context() if self.settings.tls is not None else None
            site = web.TCPSite(runner, self.settings.host, self.settings.port, ssl_context=tls)
            try:
                await site.start()
            except OSError as error:
                raise RunError(f"cannot listen on {self.settings.host}:{self.settings.port}: "
                               f"{error.strerror or error}",
                               hint="choose another --port, or stop what listens there") from None
            on_listening(_bound_port(runner))
            await stop.wait()
        finally:
            await runner.cleanup()

    async def _page(self, request: web.Request) -> web.StreamResponse:
        """The page: its URLs are the origin the browser used (or the public URL's)."""
        origin = str(self.access.page_origin(request)).rstrip("/")
        base = (self.settings.public_url or origin).rstrip("/")
        websocket = ("wss" if base.startswith("https:") else "ws") + base[base.index(":"):]
        context = {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{websocket}/ws",
            "config": {"static": {"url": f"{base}/static/"}},
            "application": {"name": self.title},
        }
        return aiohttp_jinja2.render_template("app_index.html", request, context)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        """A browser tab's websocket: one app process relayed to it while it is open."""
        websocket = web.WebSocketResponse(heartbeat=15)
        if not websocket.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="a websocket, for the page's terminal\n")
        session: AppSession | None = None
        try:
            await websocket.prepare(request)
            self._websockets.add(websocket)

            async def close() -> None:
                await websocket.close()

            session = AppSession(self.settings.command, self._processes,
                                 write_bytes=websocket.send_bytes,
                                 write_str=websocket.send_str, close=close,
                                 download_manager=self.download_manager)
            await session.start(to_int(request.query.get("width", "80"), 80),
                                to_int(request.query.get("height", "24"), 24))
            await self._process_messages(websocket, session)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # a broken session is logged; the server goes on
            log.error("session ended with an error: %s", error)
        finally:
            self._websockets.discard(websocket)
            if session is not None:
                await session.stop()
        return websocket

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(security_headers(self.access, request))

    async def _close_websockets(self, app: web.Application) -> None:
        # Closing a websocket ends its session's message loop: the session then asks its app
        # to quit and ends its process.
        await asyncio.gather(*(websocket.close(code=WSCloseCode.GOING_AWAY,
                                               message=b"sfarm web is stopping")
                               for websocket in list(self._websockets)),
                             return_exceptions=True)

    async def _end_processes(self, app: web.Application) -> None:
        # Whatever a session could not end in time (the server was stopping) ends here.
        await asyncio.gather(*(end_process(process) for process in list(self._processes)),
                             return_exceptions=True)


def _bound_port(runner: web.AppRunner) -> int:
    addresses: Sequence[tuple[str, int]] = runner.addresses
    return int(addresses[0][1])
