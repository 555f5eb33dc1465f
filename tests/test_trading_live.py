"""Live sessions against the exchange emulator's signed endpoints (never a real exchange):
entries, take profit and exits as real orders, restarts that place nothing twice, reconciliation,
the kill switch, credentials kept out of the logs, and the `--live` guard."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sfarm import data
from sfarm.context import TaskContext
from sfarm.data.ids import session_id
from sfarm.inventory.model import Exchange, TradeTask
from sfarm.sim import DEFAULT_START_MS
from sfarm.trading.broker import Broker, OrderFill
from sfarm.trading.client_ids import client_id_prefix
from sfarm.trading.live import LiveSession
from sfarm.trading.live_guard import arm, disarm
from sfarm.trading.paper import SessionConfig
from sfarm.trading.session import RiskLimits, load_session
from sfarm.trading.strategy import parse_strategy
from sfarm.trading.task import run_live_mode
from tests.fixtures.emulator import Clock, RunningEmulator
from tests.fixtures.waiting import wait_for

MINUTE = 60_000
CANDLES = "candles/sim/BTC-USDT/1m"
NOW = DEFAULT_START_MS + 2 * 86_400_000 + 20 * MINUTE + 15_000  # mid-minute, day 3
API_KEY, SECRET = "live-test-key-0123456789abcdef", "live-test-secret-fedcba9876543210"
ALWAYS = """\
[strategy]
name = "always-in"
entry_long = "close > 0"
exit_long = "ts >= {exit_ts}"
stop_loss = 0.2
take_profit = {take_profit}
fee = 0.001
"""


@dataclass
class Market:
    """The emulator, a store that receives its closed 1m candles, and the session's settings."""

    root: Path
    emulator: RunningEmulator
    clock: Clock
    limits: RiskLimits = field(default_factory=RiskLimits)
    cash: float = 1000.0

    def store_closed_candles(self) -> None:
        exchange = self.emulator.exchange()
        rows = exchange.fetch_ohlcv("BTC/USDT", "1m", self.clock.ms - 300 * MINUTE, 1000)
        closed = [row for row in rows if row[0] + MINUTE <= self.clock.ms]
        frame = pl.DataFrame(closed, schema=["ts", "open", "high", "low", "close", "volume"],
                             orient="row").with_columns(pl.col("ts").cast(pl.Int64))
        data.append(self.root, CANDLES, frame)

    def advance(self, minutes: int = 1) -> None:
        self.clock.ms += minutes * MINUTE
        self.store_closed_candles()

    def last_closed(self) -> int:
        return (self.clock.ms // MINUTE - 1) * MINUTE

    def broker(self) -> Broker:
        client = self.emulator.exchange(signed=True)
        client.enableRateLimit = False  # the emulator has no rate limit worth respecting here
        return Broker(client, "BTC/USDT", sleep=lambda s: None)

    def config(self) -> SessionConfig:
        return SessionConfig(task="live", exchange="sim", market="BTC/USDT", timeframe="1m",
                             cash=self.cash, limits=self.limits)

    def open(self, *, exit_ts: int = 2**62, take_profit: float = 0.05,
             on_order: Callable[[OrderFill], None] | None = None) -> LiveSession:
        text = ALWAYS.format(exit_ts=exit_ts, take_profit=take_profit)
        return LiveSession.open(self.root, self.config(), parse_strategy(text), self.broker(),
                                clock=self.clock, on_order=on_order)

    def task_context(self) -> TaskContext[TradeTask]:
        """What the worker gives a live `trade` task's engine."""
        task = TradeTask.model_validate({
            "kind": "trade", "live": True, "mode": "live", "exchange": "sim",
            "market": "BTC/USDT", "timeframe": "1m", "strategy": "always.toml",
            "cash": self.cash, "max_drawdown": 0.5})
        return TaskContext(self.root, "live", task, secrets_file=self.root / "secrets.toml")

    def orders(self) -> list[dict[str, Any]]:
        """Every order of the session's account on the emulator."""
        exchange = self.emulator.exchange(signed=True)
        exchange.enableRateLimit = False
        exchange.load_time_difference()
        orders = exchange.fetch_orders("BTC/USDT", 0, 1000)
        return [o for o in orders if o["clientOrderId"].startswith(client_id_prefix("live"))]


@pytest.fixture
def market(tmp_path: Path, emulator_factory: Callable[..., RunningEmulator]) -> Iterator[Market]:
    clock = Clock(NOW)
    running = emulator_factory(api_key=API_KEY, secret=SECRET, clock=clock,
                               balances={"USDT": Decimal(5000)})
    market = Market(tmp_path, running, clock)
    market.store_closed_candles()
    yield market


class Crash(Exception):
    """Stands for the process dying right after an order reached the exchange."""


def test_entry_becomes_a_market_order_and_its_fill_the_state(market: Market) -> None:
    session = market.open()
    assert session.step() == 1  # the newest closed candle: entry signal
    orders = market.orders()
    assert [(o["side"], o["type"], o["status"]) for o in orders] == [
        ("buy", "market", "closed"), ("sell", "limit", "open")]
    buy, target = orders
    assert buy["clientOrderId"].endswith(f"{market.last_closed() + MINUTE}-e")
    state = load_session(market.root, "live")
    assert state is not None
    fee_base = sum(f["cost"] for f in buy["fees"]) if buy["fees"] else buy["filled"] * 0.001
    assert state.engine.position == pytest.approx(buy["filled"] - fee_base, rel=1e-9)
    assert state.engine.cash == pytest.approx(1000.0 - buy["cost"], rel=1e-12)
    assert state.engine.entry_price == pytest.approx(buy["average"])
    assert target["price"] == pytest.approx(buy["average"] * 1.05, rel=1e-4)
    assert state.broker.target == target["clientOrderId"]
    equity = data.read(market.root, session_id("live", "equity"))
    assert equity["ts"].to_list() == [market.last_closed()]
    entry = data.read(market.root, session_id("live", "orders")).row(0, named=True)
    assert entry["client_id"] == buy["clientOrderId"] and entry["status"] == "closed"
    # a restart reconciles with nothing to change and places nothing
    market.open().step()
    assert len(market.orders()) == 2


@pytest.mark.parametrize("crash_on", ["buy", "sell"])
def test_a_restart_after_a_crash_places_no_order_twice(market: Market, crash_on: str) -> None:
    def crash(fill: OrderFill) -> None:
        if fill.side == crash_on:
            raise Crash(fill.client_id)

    with pytest.raises(Crash):
        market.open(on_order=crash).step()
    state = load_session(market.root, "live")
    assert state is not None and state.engine.position == 0  # nothing committed
    session = market.open()  # reconciles: adopts what the exchange has
    session.step()
    orders = market.orders()
    assert [(o["side"], o["status"]) for o in orders] == [("buy", "closed"), ("sell", "open")]
    assert len({o["clientOrderId"] for o in orders}) == 2
    state = load_session(market.root, "live")
    assert state is not None
    assert state.engine.position == pytest.approx(orders[0]["filled"] * 0.999, rel=1e-9)
    assert state.engine.cash == pytest.approx(1000.0 - orders[0]["cost"], rel=1e-12)
    assert state.broker.target == orders[1]["clientOrderId"]
    market.advance()
    market.open().step()
    assert len(market.orders()) == 2


def test_exit_signal_cancels_the_take_profit_and_sells(market: Market) -> None:
    exit_ts = market.last_closed() + 2 * MINUTE
    session = market.open(exit_ts=exit_ts)
    session.step()
    market.advance()
    assert session.step() == 1  # no exit yet
    market.advance()
    assert session.step() == 1  # the candle at exit_ts closed: sell at the next open
    orders = market.orders()
    assert [(o["side"], o["type"], o["status"]) for o in orders] == [
        ("buy", "market", "closed"), ("sell", "limit", "canceled"), ("sell", "market", "closed")]
    state = load_session(market.root, "live")
    assert state is not None and state.engine.position == 0
    trades = data.read(market.root, session_id("live", "trades"))
    assert trades.height == 1
    trade = trades.row(0, named=True)
    assert trade["reason"] == "signal" and trade["exit_ts"] == exit_ts + MINUTE
    assert state.engine.cash == pytest.approx(1000.0 + trade["pnl"], rel=1e-9)
    sell = orders[2]
    assert trade["exit_price"] == pytest.approx(sell["average"])
    rows = data.read(market.root, session_id("live", "orders"))
    assert rows["status"].to_list() == ["closed", "canceled", "closed"]
    market.advance()
    session.step()  # always-in strategy: the exit condition still holds, no new entry
    assert len(market.orders()) == 3


def test_kill_switch_cancels_open_orders_and_stays_halted(market: Market) -> None:
    market.limits = RiskLimits(max_daily_loss=0.0001)  # the entry's fee alone crosses it
    session = market.open()
    session.step()
    market.clock.ms += 5_000
    session.poll()
    assert session.halted and session.halted.startswith("max_daily_loss")
    statuses = [(o["type"], o["status"]) for o in market.orders()]
    assert statuses == [("market", "closed"), ("limit", "canceled")]
    reopened = market.open()
    assert reopened.halted == session.halted
    market.advance(3)
    assert reopened.step() == 0
    reopened.poll()
    assert len(market.orders()) == 2
    state = load_session(market.root, "live")
    assert state is not None and state.risk.halted and state.engine.position > 0
    assert data.read(market.root, session_id("live", "state"))["halted"][-1]


def test_reconciliation_adopts_the_balance_and_logs_it(market: Market,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    session = market.open()
    session.step()
    target = session.target
    exchange = market.emulator.exchange(signed=True)
    exchange.load_time_difference()
    exchange.load_markets()
    exchange.cancel_order(None, "BTC/USDT", {"origClientOrderId": target})
    held = load_session(market.root, "live").engine.position  # type: ignore[union-attr]
    exchange.create_order("BTC/USDT", "market", "sell", float(
        exchange.amount_to_precision("BTC/USDT", held / 2)))  # someone sells half by hand
    with caplog.at_level(logging.INFO, logger="sfarm.trading.live"):
        reopened = market.open()
    balance = exchange.fetch_balance()["total"]["BTC"]
    assert reopened.engine.position == pytest.approx(balance)
    assert "adopting the account's" in caplog.text
    assert f"take-profit order {target} is canceled" in caplog.text
    assert reopened.target and reopened.target.endswith("-t2")  # a new take profit, new id
    assert market.orders()[-1]["status"] == "open"


def test_credentials_never_reach_the_logs(market: Market, caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMLIVE_API_KEY", API_KEY)
    monkeypatch.setenv("SIMLIVE_SECRET", SECRET)
    from sfarm.trading.task import make_broker

    exchange = Exchange(ccxt="binance", url=market.emulator.url, credentials="SIMLIVE")
    broker = make_broker(exchange, "BTC/USDT", market.root / "secrets.toml")
    text = ALWAYS.format(exit_ts=2**62, take_profit=0.05)
    with caplog.at_level(logging.DEBUG):
        session = LiveSession.open(market.root, market.config(), parse_strategy(text), broker,
                                   clock=market.clock)
        session.step()
        session.poll()
    assert len(market.orders()) == 2
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "GET" in logged or "POST" in logged  # ccxt did log its requests
    assert API_KEY not in logged and SECRET not in logged


def test_worker_trades_only_while_armed(market: Market, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMLIVE_API_KEY", API_KEY)
    monkeypatch.setenv("SIMLIVE_SECRET", SECRET)
    exchange = Exchange(ccxt="binance", url=market.emulator.url, credentials="SIMLIVE")
    context = market.task_context()
    stop = context.stop
    text = ALWAYS.format(exit_ts=2**62, take_profit=0.05)
    worker = threading.Thread(target=run_live_mode, args=(
        context, market.config(), parse_strategy(text), exchange),
        kwargs={"poll_s": 0.02, "clock": market.clock})
    worker.start()
    try:
        wait_for(lambda: context.board.waiting_for == "sfarm start --live")
        time.sleep(0.2)
        assert market.orders() == []
        assert "not armed" in (context.board.last_error or "")
        arm(market.root, "live", os.getpid())
        wait_for(lambda: len(market.orders()) == 2)
        wait_for(lambda: context.board.trade is not None and context.board.trade.position > 0)
        assert {o.id for o in context.board.outputs.values()} >= {
            session_id("live", "equity"), session_id("live", "orders")}
        disarm(market.root, "live")
        wait_for(lambda: context.board.waiting_for == "sfarm start --live")
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


def test_worker_shows_the_kill_switch_as_halted(market: Market,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMLIVE_API_KEY", API_KEY)
    monkeypatch.setenv("SIMLIVE_SECRET", SECRET)
    market.limits = RiskLimits(max_drawdown=0.0001)
    arm(market.root, "live", os.getpid())
    context = market.task_context()
    stop, board = context.stop, context.board
    exchange = Exchange(ccxt="binance", url=market.emulator.url, credentials="SIMLIVE")
    text = ALWAYS.format(exit_ts=2**62, take_profit=0.05)
    worker = threading.Thread(target=run_live_mode, args=(
        context, market.config(), parse_strategy(text), exchange),
        kwargs={"poll_s": 0.02, "clock": market.clock})
    worker.start()
    try:
        wait_for(lambda: board.state == "halted")
    finally:
        stop.set()
        worker.join(10)
    assert "max_drawdown" in (board.last_error or "")
    assert [o["status"] for o in market.orders()] == ["closed", "canceled"]


def test_a_new_session_adopts_no_order_of_an_earlier_one(market: Market) -> None:
    market.open().step()
    shutil.rmtree(market.root / "data" / "sessions")  # the operator starts over
    market.clock.ms += 5_000
    session = market.open()
    assert session.engine.position == 0 and session.engine.cash == 1000.0
    assert session.target is None


def test_an_entry_below_the_market_minimum_is_skipped(market: Market,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    market.cash = 3.0  # the emulator's minimum order is 5 USDT
    with caplog.at_level(logging.WARNING, logger="sfarm.trading.live"):
        session = market.open()
        assert session.step() == 1
    assert "below the market's minimum" in caplog.text
    assert market.orders() == [] and session.engine.position == 0
