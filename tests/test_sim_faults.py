"""Fault injection: the grammar, deterministic dice, and what ccxt sees for every fault."""

from __future__ import annotations

import json
import time

import ccxt
import pytest

from sfarm.errors import UsageError
from sfarm.sim.faults import FaultDice, FaultPlan, parse_faults, parse_time_ms
from sfarm.timeframes import MINUTE_MS
from tests.fixtures.http import http_get
from tests.fixtures.waiting import wait_for

EXAMPLE = ("rate_limit=0.1,server_error=0.05,slow=0.05:2.0,drop=0.02,short_page=0.2,"
           "maintenance=2024-03-01T00:00/2024-03-01T06:00")
MARCH_2024 = 1_709_251_200_000
KLINES = "/api/v3/klines"


def test_the_documented_example_parses_and_round_trips() -> None:
    plan = parse_faults(EXAMPLE)
    assert plan == FaultPlan(rate_limit=0.1, server_error=0.05, slow=0.05, slow_seconds=2.0,
                             drop=0.02, short_page=0.2,
                             maintenance=((MARCH_2024, MARCH_2024 + 6 * 3_600_000),))
    assert parse_faults(plan.describe()) == plan
    assert parse_faults("") == FaultPlan() and parse_faults(None).describe() == ""
    assert parse_faults("rate_limit=1:0.5,server_error=1:502,scope=all") == FaultPlan(
        rate_limit=1.0, retry_after_s=0.5, server_error=1.0, server_status=502, scope="all")
    assert parse_time_ms("2024-03-01T01:00+01:00") == MARCH_2024


@pytest.mark.parametrize("spec, message", [
    ("flood=1", "unknown fault 'flood'"),
    ("drop=2", "between 0 and 1"),
    ("drop", "expected key=value"),
    ("slow=0.5", "slow needs P:SECONDS"),
    ("server_error=0.1:404", "500..599"),
    ("maintenance=2024-03-02/2024-03-01", "END must be after START"),
    ("maintenance=yesterday/today", "ISO times"),
    ("scope=private", "public or all"),
])
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_faults(spec)
    assert "rate_limit=" in (caught.value.hint or "")


def test_dice_are_deterministic_per_seed_and_reroll_repeated_requests() -> None:
    plan = parse_faults("rate_limit=0.5,drop=0.3,short_page=0.5")
    params = {"symbol": "BTCUSDT", "interval": "1m", "timestamp": "1"}

    def rolls(seed: int) -> list[object]:
        dice = FaultDice(plan, seed)
        return [dice.decide("GET", KLINES, {**params, "startTime": str(i % 5)}, signed=False)
                for i in range(40)]

    assert rolls(1) == rolls(1)
    assert rolls(1) != rolls(2)
    repeated = [d.rate_limit for d in rolls(1)[::5]]  # the same request, asked again and again
    assert True in repeated and False in repeated
    signed = FaultDice(plan, 1).decide("POST", "/api/v3/order", params, signed=True)
    assert not (signed.rate_limit or signed.drop)
    everything = FaultDice(parse_faults("drop=1,scope=all"), 1)
    assert everything.decide("POST", "/api/v3/order", params, signed=True).drop


def test_rate_limit_is_429_with_retry_after_and_binance_body(emulator_factory) -> None:
    running = emulator_factory("rate_limit=1:7")
    status, headers, body = http_get(f"{running.url}{KLINES}?symbol=BTCUSDT&interval=1m")
    assert status == 429 and headers["Retry-After"] == "7"
    assert json.loads(body)["code"] == -1003
    exchange = running.exchange()
    with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
        exchange.load_markets()
    assert exchange.last_response_headers["Retry-After"] == "7"


def test_server_errors_are_exchange_not_available(emulator_factory) -> None:
    running = emulator_factory("server_error=1")
    assert http_get(f"{running.url}/api/v3/time")[0] == 503
    with pytest.raises(ccxt.ExchangeNotAvailable):
        running.exchange().fetch_time()
    with pytest.raises(ccxt.RequestTimeout):  # a gateway timeout is one for ccxt too
        emulator_factory("server_error=1:504").exchange().fetch_time()


def test_dropped_connections_are_network_errors(emulator_factory) -> None:
    running = emulator_factory("drop=1")
    with pytest.raises(ccxt.NetworkError):
        running.exchange().fetch_time()


def test_slow_replies_time_out_with_a_short_ccxt_timeout(emulator_factory) -> None:
    running = emulator_factory("slow=1:1.0")
    answered = running.before_answer(lambda request: None)
    exchange = running.exchange()
    exchange.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        exchange.fetch_time()
    # Not dropped: the emulator answers it once its second is over, to a client that has gone.
    wait_for(lambda: [r.path for r in answered] == ["/api/v3/time"], what="the late answer")
    exchange.timeout = 30_000  # patient clients get the normal answer, late
    started = time.monotonic()
    assert exchange.fetch_time() > 0
    assert time.monotonic() - started >= 1.0  # a lower bound: no load can make it fail


def test_short_pages_return_fewer_rows_although_more_exist(emulator_factory) -> None:
    running = emulator_factory("short_page=1", seed=3)
    exchange = running.exchange()
    since, seen = MARCH_2024, []
    for _ in range(5):
        page = exchange.fetch_ohlcv("BTC/USDT", "1m", since=since, limit=100)
        assert 1 <= len(page) < 100
        seen += page
        since = page[-1][0] + MINUTE_MS
    assert [r[0] for r in seen] == [MARCH_2024 + i * MINUTE_MS for i in range(len(seen))]


def test_maintenance_gap_has_no_candles_ever_and_pages_continue_after(emulator_factory) -> None:
    running = emulator_factory("maintenance=2024-03-01T00:00/2024-03-01T06:00")
    exchange = running.exchange()
    before = MARCH_2024 - 30 * MINUTE_MS
    rows = exchange.fetch_ohlcv("BTC/USDT", "1m", since=before, limit=100)
    assert [r[0] for r in rows[:30]] == [before + i * MINUTE_MS for i in range(30)]
    assert rows[30][0] == MARCH_2024 + 6 * 3_600_000
    assert exchange.fetch_ohlcv("BTC/USDT", "1m", since=MARCH_2024, params={
        "until": MARCH_2024 + 6 * 3_600_000 - 1}) == []
    hours = exchange.fetch_ohlcv("BTC/USDT", "1h", since=MARCH_2024 - 3_600_000, limit=3)
    assert [r[0] for r in hours] == [MARCH_2024 - 3_600_000, MARCH_2024 + 6 * 3_600_000,
                                     MARCH_2024 + 7 * 3_600_000]


def test_faults_spare_signed_endpoints_unless_scope_all(emulator_factory) -> None:
    # raw endpoint calls: fetch_balance would first load markets, a public (faulted) request
    running = emulator_factory("rate_limit=1,drop=1")
    exchange = running.exchange(signed=True)
    balances = {b["asset"]: b["free"] for b in exchange.privateGetAccount()["balances"]}
    assert balances["USDT"] == "100000.00000000"
    with pytest.raises(ccxt.NetworkError):
        exchange.publicGetTime()
    everything = emulator_factory("drop=1,scope=all").exchange(signed=True)
    with pytest.raises(ccxt.NetworkError):
        everything.privateGetAccount()
