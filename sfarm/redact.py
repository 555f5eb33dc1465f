"""Secrets out of every text a person or a file will see: error messages, logs, heartbeats,
`status`, the terminal.

ccxt puts whole request URLs into its errors (a signed request's `signature=`, sometimes an
API key), and an exception from anywhere may quote a credential. `redact` masks what looks
like one (the values of secret-named URL parameters, headers and JSON fields) and every value
registered with `register_secret` (credentials register themselves when they are loaded, so
they are masked wherever they appear, whatever their shape). Pure but for that registry.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words

_SECRET_NAMES = (r"signature|sign|api[_-]?key|apikey|secret|secret[_-]?key|token|"
                 r"access[_-]?token|password|passphrase|passwd")
# name=value in a query string or a form body
_PARAMETER = re.compile(rf"(?i)\b({_SECRET_NAMES})=([^&\s\"'<>]+)")
# Name: value in headers (X-MBX-APIKEY, Authorization, OK-ACCESS-KEY...)
_HEADER = re.compile(r"(?i)\b(x-mbx-apikey|x-api-key|api-key|authorization|ok-access-key|"
                     r"ok-access-sign|ok-access-passphrase|kc-api-key|kc-api-sign)"
                     r"(['\"]?\s*[:=]\s*['\"]?)([^'\",\s}]+(?: [^'\",\s}]+)?)")
# "name": "value" in JSON
_JSON = re.compile(rf"(?i)(\"(?:{_SECRET_NAMES})\"\s*:\s*\")([^\"]*)(\")")

_registered: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask `value` wherever it appears from now on in this process."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            _registered.add(value)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every secret (by default: those registered) and every secret-looking value
    masked."""
    if secrets is None:
        with _lock:
            secrets = set(_registered)
    for secret in sorted(secrets, key=len, reverse=True):  # a longer one first
        text = text.replace(secret, MASK)
    text = _PARAMETER.sub(lambda match: f"{match.group(1)}={MASK}", text)
    text = _HEADER.sub(lambda match: f"{match.group(1)}{match.group(2)}{MASK}", text)
    return _JSON.sub(lambda match: f"{match.group(1)}{MASK}{match.group(3)}", text)


class RedactingFormatter(logging.Formatter):
    """A log formatter whose lines (message and traceback) pass through `redact`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingFilter(logging.Filter):
    """A log filter that passes every record's message through `redact` (for loggers whose
    records reach handlers sfarm does not format, such as ccxt's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
