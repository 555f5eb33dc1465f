"""Secrets never reach a message, a log, a heartbeat or the terminal (issue 15, item 4):
sfarm.redact masks registered credentials wherever they appear and the values of secret-looking
URL parameters, headers and JSON fields, as ccxt's errors quote them."""

from __future__ import annotations

import io
import logging

import ccxt
from hypothesis import given
from hypothesis import strategies as st

from sfarm.context import ProgressBoard
from sfarm.exchanges import translate
from sfarm.exchanges.credentials import Credentials
from sfarm.exchanges.factory import make_exchange
from sfarm.redact import MASK, RedactingFormatter, redact

CCXT_ERROR = ('binance GET https://api.binance.com/api/v3/order?symbol=BTCUSDT&orderId=1'
              '&timestamp=1764000000000&recvWindow=10000&signature=9f86d081884c7d659a2feaa0c55ad0'
              '15a3bf4f1b2b0b822cd15d6c15b0f00a08 503 Service Unavailable')


def test_what_ccxt_puts_in_its_errors_is_masked() -> None:
    text = redact(CCXT_ERROR)
    assert "signature=***" in text and "9f86d081" not in text
    assert "timestamp=1764000000000" in text and "symbol=BTCUSDT" in text  # not secrets
    assert redact("headers {'X-MBX-APIKEY': 'vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco'}"
                  ) == "headers {'X-MBX-APIKEY': '***'}"
    assert redact('{"apiKey": "abc123xyz", "secret": "s3cr3t-value", "code": -2015}') == (
        '{"apiKey": "***", "secret": "***", "code": -2015}')
    assert redact("Authorization: Bearer eyJhbGciOi") == "Authorization: ***"


def test_a_translated_ccxt_error_is_masked() -> None:
    error = translate(ccxt.ExchangeNotAvailable(CCXT_ERROR), action="fetch order")
    assert "signature=***" in error.message and "9f86d081" not in error.message


def test_registered_credentials_are_masked_everywhere() -> None:
    credentials = Credentials("test-only-key-0042", "test-only-secret/not-real", "pass-phrase")
    make_exchange("binance", url="http://127.0.0.1:9", credentials=credentials)  # registers
    said = f"failed with key {credentials.api_key} and {credentials.secret}; {credentials.password}"
    assert redact(said) == f"failed with key {MASK} and {MASK}; {MASK}"
    board = ProgressBoard()
    board.error(f"AuthenticationError: {credentials.secret} refused")
    assert board.last_error == f"AuthenticationError: {MASK} refused"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(message)s"))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"secret {credentials.secret} in a traceback")
        except RuntimeError:
            logger.exception("key %s", credentials.api_key)
    finally:
        logger.removeHandler(handler)
    assert credentials.secret not in stream.getvalue()
    assert credentials.api_key not in stream.getvalue() and "key ***" in stream.getvalue()


@given(st.text(min_size=4, max_size=40).filter(lambda s: s.strip() == s and "*" not in s),
       st.text(max_size=60), st.text(max_size=60))
def test_a_known_secret_never_survives(secret: str, before: str, after: str) -> None:
    assert secret not in redact(before + secret + after, secrets=[secret])
