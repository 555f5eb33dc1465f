"""The `trade` task as a worker engine (`sfarm.runtime.engines`): paper and backtest modes on a
node root, waiting for inputs, reporting session datasets and equity on the board."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sfarm import data
from sfarm.context import TaskContext
from sfarm.data.ids import session_id
from sfarm.errors import RunError
from sfarm.inventory import load_inventory
from sfarm.inventory.model import TradeTask
from sfarm.runtime.engines import engine_for
from sfarm.runtime.layout import NodeRoot
from sfarm.runtime.worker import task_context
from sfarm.trading.backtest import backtest, session_frames
from sfarm.trading.strategy import parse_strategy
from tests.fixtures.paper import CANDLES, RSI, hourly_candles
from tests.fixtures.waiting import wait_for

INVENTORY = """
version = 1

[farm]
name = "t"

[exchanges.test]
ccxt = "binance"

[tasks.mine]  # produces the candles; the tests append them instead of running it
kind = "mine"
exchange = "test"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = "2023-01-01"

[tasks.session]
kind = "trade"
mode = "{mode}"
exchange = "test"
market = "BTC/USDT"
timeframe = "1h"
strategy = "strategies/rsi.toml"
cash = 1000.0
{extra}

[networks.t.nodes.lab]
host = "local"
tasks = ["mine", "session"]
"""


def node_root(tmp_path: Path, mode: str, extra: str = "") -> NodeRoot:
    (tmp_path / "strategies").mkdir()
    (tmp_path / "strategies" / "rsi.toml").write_text(RSI)
    (tmp_path / "inventory.toml").write_text(INVENTORY.format(mode=mode, extra=extra))
    return NodeRoot(tmp_path)


def start_worker(root: NodeRoot) -> tuple[TaskContext[Any], threading.Thread]:
    inventory = load_inventory(root.inventory)
    context = task_context(root, "session", inventory.model.tasks["session"])
    engine = engine_for(inventory, "session")
    thread = threading.Thread(target=engine, args=(context,), daemon=True)
    thread.start()
    return context, thread


@pytest.fixture
def stopper() -> Iterator[Callable[[TaskContext[Any], threading.Thread], None]]:
    started: list[tuple[TaskContext[Any], threading.Thread]] = []

    def register(context: TaskContext[Any], thread: threading.Thread) -> None:
        started.append((context, thread))

    yield register
    for context, thread in started:
        context.stop.set()
        thread.join(10)
        assert not thread.is_alive()


def test_paper_worker_waits_for_candles_then_reports_its_session(tmp_path: Path,
                                                                 stopper: Callable) -> None:
    root = node_root(tmp_path, "paper")
    context, thread = start_worker(root)
    stopper(context, thread)
    board = context.board
    wait_for(lambda: board.waiting_for == CANDLES)
    source = hourly_candles(300, seed=21)
    data.append(root.path, CANDLES, source[:260])
    # rows on the board right after the first candle: what `make demo` waits for
    wait_for(lambda: {session_id("session", "equity"), session_id("session", "state")}
             <= set(board.outputs))
    assert all(o.rows > 0 for o in board.outputs.values())
    assert board.trade is not None and board.trade.equity > 0
    assert board.outputs[session_id("session", "equity")].last_ts == source["ts"][259]
    data.append(root.path, CANDLES, source)
    wait_for(lambda: board.outputs[session_id("session", "equity")].last_ts == source["ts"][-1])
    assert board.outputs[session_id("session", "equity")].rows == 41
    # The loop says what it waits for on its next pass, after the one that wrote these rows.
    wait_for(lambda: board.waiting_for == "new candles")


def test_backtest_worker_runs_since_until_once(tmp_path: Path, stopper: Callable) -> None:
    source = hourly_candles(500, seed=22)
    since, until = int(source["ts"][150]), int(source["ts"][450])
    root = node_root(tmp_path, "backtest", f'since = "{_iso(since)}"\nuntil = "{_iso(until)}"')
    data.append(root.path, CANDLES, source)
    context, thread = start_worker(root)
    stopper(context, thread)
    board = context.board
    wait_for(lambda: board.counters.get("runs") == 1)
    expected = backtest(root.path, parse_strategy(RSI), exchange="test", market="BTC/USDT",
                        timeframe="1h", start=since, end=until, cash=1000.0)
    trades, equity = session_frames(expected)
    assert data.read(root.path, session_id("session", "equity")).equals(equity)
    assert data.read(root.path, session_id("session", "trades")).equals(trades)
    assert board.trade is not None
    assert board.trade.equity == pytest.approx(expected.metrics.final_equity)
    manifest = data.load_manifest(root.path, session_id("session", "equity"))
    assert manifest is not None
    assert manifest.extra["backtest"]["metrics"]["trades"] == expected.run.trades.height
    time.sleep(1.5)
    assert board.counters.get("runs") == 1  # done: until is covered


def test_backtest_worker_extends_its_run_as_candles_arrive(tmp_path: Path,
                                                           stopper: Callable) -> None:
    source = hourly_candles(400, seed=23)
    since = int(source["ts"][100])
    root = node_root(tmp_path, "backtest", f'since = "{_iso(since)}"')
    data.append(root.path, CANDLES, source[:300])
    context, thread = start_worker(root)
    stopper(context, thread)
    board = context.board
    wait_for(lambda: board.counters.get("runs") == 1)
    data.append(root.path, CANDLES, source)
    wait_for(lambda: board.counters.get("runs") == 2)
    expected = backtest(root.path, parse_strategy(RSI), exchange="test", market="BTC/USDT",
                        timeframe="1h", start=since, cash=1000.0)
    trades, equity = session_frames(expected)
    assert data.read(root.path, session_id("session", "equity")).equals(equity)
    assert data.read(root.path, session_id("session", "trades")).equals(trades)


def _iso(ms: int) -> str:
    return pl.from_epoch(pl.Series([ms]), time_unit="ms").dt.strftime("%Y-%m-%dT%H:%M")[0]


def test_backtest_worker_refuses_to_mix_two_strategies(tmp_path: Path) -> None:
    from sfarm.trading.feed import Feed
    from sfarm.trading.task import backtest_step, session_config

    source = hourly_candles(300, seed=24)
    root = node_root(tmp_path, "backtest")
    data.append(root.path, CANDLES, source[:250])
    task = load_inventory(root.inventory).model.tasks["session"]
    assert isinstance(task, TradeTask)
    config = session_config("session", task)
    strategy = parse_strategy(RSI)
    feed = Feed(root.path, strategy, exchange="test", market="BTC/USDT", timeframe="1h")
    assert backtest_step(root.path, "session", feed, config, strategy) is not None
    data.append(root.path, CANDLES, source)
    edited = parse_strategy(RSI.replace("stop_loss = 0.05", "stop_loss = 0.06"))
    with pytest.raises(RunError, match="another version of strategy"):
        backtest_step(root.path, "session", feed, config, edited)
    assert backtest_step(root.path, "session", feed, config, strategy) is not None
