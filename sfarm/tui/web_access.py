"""Who may use `sfarm web`: the checks every HTTP and websocket request passes before any
handler runs (so a refused request never starts an app process), and the headers that keep the
page to its own origin.

- The Host header must be a host name or address (it is echoed into the page's URLs); on a
  loopback-only server with no token it must name this machine, so a web page whose name
  resolves to 127.0.0.1 (DNS rebinding) cannot reach the dashboard.
- A websocket's Origin, which browsers always send, must be the page's own: another site the
  operator visits cannot open a session (websockets are not bound by CORS).
- With a token, each request carries it (`?token=` once, then the cookie that answer sets) and
  it is compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

TOKEN_PARAMETER = "token"
# A name or an IPv4 address, or a bracketed IPv6 address, and an optional port: nothing that
# could break out of the attribute it is written into.
_HOST_HEADER = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
                          r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine
    only: `localhost` or a loopback address."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host of a Host header, without its port (IPv6 keeps no brackets)."""
    if host_header.startswith("["):
        return host_header[1:host_header.index("]")]
    return host_header.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Access:
    """What the server accepts: its token (None: none needed), whether browsers reach it over
    https (TLS here or at a proxy in front), and the public URL they use, when one is given."""

    token: str | None = field(repr=False)
    secure: bool
    public_url: URL | None = None

    @staticmethod
    def cookie_name(request: web.Request) -> str:
        """`sfarm_web_PORT`, PORT the one the server listens on: cookies ignore ports, so one
        name per port keeps two servers on one machine apart."""
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        return f"sfarm_web_{sockname[1] if sockname else 0}"

    def page_origin(self, request: web.Request) -> URL:
        """The origin the browser used for this request (the public URL's when given)."""
        if self.public_url is not None:
            return self.public_url.origin()
        return URL(f"{'https' if self.secure else 'http'}://{request.host}")

    def refusal(self, request: web.Request) -> web.HTTPException | None:
        """Why `request` is refused (an HTTP error to answer with), None when it may go on."""
        if not _HOST_HEADER.fullmatch(request.host):
            return web.HTTPBadRequest(text="bad Host header\n")
        if self.token is None and not self._names_this_machine(request.host):
            return web.HTTPForbidden(
                text="this dashboard answers only to 127.0.0.1 and localhost\n")
        origin = request.headers.get("Origin")
        if origin is not None and request.path == "/ws" and not self._same_origin(request, origin):
            return web.HTTPForbidden(text="websocket from another origin\n")
        if self.token is None:
            return None
        given = request.query.get(TOKEN_PARAMETER) or request.cookies.get(self.cookie_name(request))
        if not given:
            return web.HTTPUnauthorized(
                text="this dashboard needs its token: open the URL `sfarm web` printed at "
                     "start (…/?token=…)\n")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return web.HTTPForbidden(text="wrong token\n")
        return None

    def remember(self, request: web.Request, response: web.StreamResponse) -> None:
        """Give a browser that came with `?token=` the cookie its later requests (static files,
        the websocket) carry."""
        if (self.token is not None and TOKEN_PARAMETER in request.query
                and not response.prepared):
            response.set_cookie(self.cookie_name(request), self.token, path="/", httponly=True,
                                secure=True, samesite="Strict")

    def _names_this_machine(self, host_header: str) -> bool:
        if is_loopback(host_name(host_header)):
            return True
        return self.public_url is not None and self.public_url.host == host_name(host_header)

    def _same_origin(self, request: web.Request, origin: str) -> bool:
        try:
            origin_url = URL(origin)
        except ValueError:
            return False
        return origin_url.origin() == self.page_origin(request).origin()


def access_middleware(access: Access) -> Middleware:
    """The aiohttp middleware that answers a refused request itself (no handler runs)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = access.refusal(request)
        if refusal is not None:
            return refusal
        response = await handler(request)
        access.remember(request, response)
        return response

    return guard


def security_headers(access: Access, request: web.Request) -> dict[str, str]:
    """Headers of every answer: the page loads and connects to its own origin only, is never
    framed (it controls the farm: no clickjacking) and leaks no URL (the token) as referrer."""
    websocket = ""
    if _HOST_HEADER.fullmatch(request.host):  # a refused request may carry any Host
        origin = access.page_origin(request)
        websocket = f" {origin.with_scheme('wss' if origin.scheme == 'https' else 'ws')}"
    headers = {
        "Content-Security-Policy": (
            "default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; "
            f"connect-src 'self'{websocket}; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'"),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }
    if not request.path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"
    return headers
