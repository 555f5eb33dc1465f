"""`sfarm sim serve` as a real process: prints its URL, serves ccxt, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sfarm.exchanges import make_exchange
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
    assert result.returncode == 1 and "cannot listen" in result.stderr
