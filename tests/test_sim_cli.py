"""`sfarm sim serve` as a real process: prints its URL, serves ccxt, stops cleanly on SIGTERM;
serves the account of --account-file alone when given one; refuses a body over its cap unread."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ccxt
import pytest

from sfarm.exchanges import Credentials, make_exchange
from sfarm.sim import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fixtures.cli import sfarm_process

URL = re.compile(r"http://127\.0\.0\.1:(\d+)")


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen([sys.executable, "-m", "sfarm", "sim", "serve", *args],
                               stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = URL.search(line)
        assert match, line
        yield process, match.group(0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_prints_its_url_serves_ccxt_and_exits_0_on_sigterm() -> None:
    with serving("--port", "0", "--seed", "5", "--faults", "short_page=0.5") as (process, url):
        exchange = make_exchange("binance", url=url)
        assert "BTC/USDT" in exchange.load_markets()
        assert len(exchange.fetch_ohlcv("BTC/USDT", "1h", since=1_704_067_200_000, limit=3)) >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None and process.stdout.read() == ""


def test_sigint_stops_it_too() -> None:
    with serving("--port", "0") as (process, _url):
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_bad_faults_are_a_usage_error() -> None:
    result = sfarm_process("sim", "serve", "--faults", "flood=1", timeout=30)
    assert result.returncode == 2
    assert "unknown fault 'flood'" in result.stderr and "Traceback" not in result.stderr


def test_busy_port_is_a_run_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sfarm_process("sim", "serve", "--port", str(port), timeout=30)
    assert result.returncode == 1
    assert f"error: port 127.0.0.1:{port} is in use by another process" in result.stderr


def test_an_account_file_is_the_only_account_served(tmp_path: Path) -> None:
    account = tmp_path / "account.toml"
    account.write_text('api_key = "file-key-0123"\nsecret = "file-secret-0123"\n')
    account.chmod(0o600)
    with serving("--port", "0", "--account-file", str(account)) as (_process, url):
        own = make_exchange("binance", url=url,
                            credentials=Credentials("file-key-0123", "file-secret-0123"))
        assert own.fetch_balance()["total"]["USDT"] == 100000
        well_known = make_exchange("binance", url=url,
                                   credentials=Credentials(DEFAULT_API_KEY, DEFAULT_SECRET))
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            well_known.fetch_balance()


def test_an_account_file_others_can_read_is_refused(tmp_path: Path) -> None:
    account = tmp_path / "account.toml"
    account.write_text('api_key = "k"\nsecret = "s"\n')
    account.chmod(0o644)
    result = sfarm_process("sim", "serve", "--port", "0", "--account-file", str(account),
                           timeout=30)
    assert result.returncode == 2 and "mode 0644" in result.stderr


def _declare_body(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str,
                                                                                       dict]:
    """Send a request's headers and no body at all: the reply must come without it."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, reply.getheader("Connection") or "", json.loads(reply.read())
    finally:
        connection.close()


def test_an_oversize_body_gets_413_before_it_is_sent_on_every_endpoint() -> None:
    """A declared 100 MiB body is refused from its headers (the client never sends it: were
    the server reading it, no reply would come within the client's timeout); a body of no
    declared length is refused too. The emulator still serves afterwards."""
    oversize = {"Content-Type": "application/x-www-form-urlencoded",
                "Content-Length": str(100 * 1024 * 1024)}
    with serving("--port", "0") as (_process, url):
        for method, path in [("POST", "/api/v3/order"), ("GET", "/api/v3/klines"),
                             ("DELETE", "/api/v3/openOrders"), ("PUT", "/no/such/endpoint")]:
            status, connection, body = _declare_body(url, method, path, oversize)
            assert (status, connection.lower()) == (413, "close"), (method, path)
            assert "65536 bytes" in body["msg"]  # the documented cap, 64 KiB
        status, _connection, _body = _declare_body(url, "POST", "/api/v3/order",
                                                   {"Transfer-Encoding": "chunked"})
        assert status == 411
        assert "BTC/USDT" in make_exchange("binance", url=url).load_markets()
