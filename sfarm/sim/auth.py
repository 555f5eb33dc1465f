"""Binance's SIGNED request check: API key header, timestamp window and HMAC-SHA256 signature.

The signature covers the query string followed by the form body (Binance's "totalParams"), each
without its `signature` parameter. Errors are Binance's, with its HTTP statuses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from sfarm.sim.protocol import ApiError, Request, int_param, mandatory

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
FUTURE_TOLERANCE_MS = 1_000


def _without_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))


def signature_payload(request: Request) -> str:
    """The exact text Binance signs for this request."""
    return _without_signature(request.query) + _without_signature(request.body)


def sign(payload: str, secret: str) -> str:
    """HMAC-SHA256 hex digest, as Binance and ccxt compute it."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def authenticate(request: Request, secret_for: Callable[[str], str | None], now_ms: int) -> str:
    """Check a signed request; return its API key or raise Binance's error."""
    api_key = request.header("X-MBX-APIKEY")
    if not api_key:
        raise ApiError(401, -2014, "API-key format invalid.")
    secret = secret_for(api_key)
    if secret is None:
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    signature = mandatory(request.params, "signature")
    timestamp = int_param(request.params, "timestamp")
    if timestamp is None:
        mandatory(request.params, "timestamp")
    recv_window = int_param(request.params, "recvWindow", DEFAULT_RECV_WINDOW_MS)
    assert timestamp is not None and recv_window is not None
    if recv_window > MAX_RECV_WINDOW_MS:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    if timestamp >= now_ms + FUTURE_TOLERANCE_MS or now_ms - timestamp > recv_window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    if not hmac.compare_digest(sign(signature_payload(request), secret), signature.lower()):
        raise ApiError(400, -1022, "Signature for this request is not valid.")
    return api_key
