"""Paper sessions on a real store: replay equals the backtest, restarts resume exactly (SIGKILL
included), the live edge, waiting for inputs, the kill switch."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm import data
from sfarm.data.ids import indicator_id, session_id
from sfarm.data.layout import format_ts
from sfarm.indicators.task import catch_up, plan_jobs
from sfarm.trading.backtest import backtest, session_frames
from sfarm.trading.feed import Feed, WaitingFor
from sfarm.trading.paper import PaperSession, SessionConfig, replay
from sfarm.trading.session import RiskLimits, load_session, trade_rows
from sfarm.trading.strategy import parse_strategy
from tests.fixtures.paper import CANDLES, RSI, hourly_candles
from tests.fixtures.processes import start_python

CROSS_LAG = """\
[strategy]
name = "cross"
indicators = ["sma(5)", "ema(12)"]
entry_long = "sma_5 > ema_12 AND LAG(sma_5) OVER (ORDER BY ts) <= LAG(ema_12) OVER (ORDER BY ts)"
exit_long = "sma_5 < ema_12"
entry_short = "sma_5 < ema_12 AND LAG(close, 2) OVER (ORDER BY ts) > close"
exit_short = "sma_5 > ema_12"
size = 0.5
fee = 0.001
"""


def config(task: str = "paper", *, since: int | None = None, cash: float = 1000.0,
           limits: RiskLimits | None = None) -> SessionConfig:
    return SessionConfig(task=task, exchange="test", market="BTC/USDT", timeframe="1h",
                         cash=cash, since=since, limits=limits or RiskLimits())


def session_parts(root: Path, task: str) -> dict[str, pl.DataFrame]:
    return {part: data.read(root, session_id(task, part)) if data.load_manifest(
        root, session_id(task, part)) else pl.DataFrame()
        for part in ("orders", "trades", "equity", "state")}


def assert_same_as_backtest(root: Path, task: str, text: str, since: int) -> None:
    strategy = parse_strategy(text)
    expected = backtest(root, strategy, exchange="test", market="BTC/USDT", timeframe="1h",
                        start=since, cash=1000.0)
    trades_expected, equity_expected = session_frames(expected)
    parts = session_parts(root, task)
    assert expected.run.trades.height >= 4
    assert parts["trades"].equals(trades_expected)  # same trades, bit for bit
    assert parts["equity"].equals(equity_expected)
    state = load_session(root, task)
    assert state is not None
    assert state.engine == expected.run.state


@pytest.mark.parametrize(("text", "rows_per_step"), [(RSI, 7), (CROSS_LAG, 4)])
def test_replay_over_history_is_the_backtest(tmp_path: Path, text: str,
                                              rows_per_step: int) -> None:
    source = hourly_candles(380)
    data.append(tmp_path, CANDLES, source)
    since = int(source["ts"][200])
    session = replay(tmp_path, config(since=since), parse_strategy(text),
                     rows_per_step=rows_per_step)
    assert set(session.state.feed.sources.values()) == {"computed"}
    assert_same_as_backtest(tmp_path, "paper", text, since)


def test_replay_with_indicator_datasets_reads_them(tmp_path: Path) -> None:
    source = hourly_candles(600, seed=2)
    data.append(tmp_path, CANDLES, source)
    catch_up(tmp_path, plan_jobs("test", ["BTC/USDT"], ["1h"], ["rsi(14)", "sma(50)"]))
    since = int(source["ts"][300])
    session = replay(tmp_path, config(since=since), parse_strategy(RSI), rows_per_step=60)
    assert set(session.state.feed.sources.values()) == {"dataset"}
    assert_same_as_backtest(tmp_path, "paper", RSI, since)


def test_indicators_a_task_produces_are_waited_for_not_computed(tmp_path: Path) -> None:
    """When the network's plan has an indicators task produce them, a session waits for the
    datasets (status shows which) instead of computing the same indicators itself."""
    source = hourly_candles(600, seed=2)
    data.append(tmp_path, CANDLES, source)
    since = int(source["ts"][300])
    rsi, sma = (indicator_id("test", "BTC/USDT", "1h", key) for key in ("rsi_14", "sma_50"))
    planned = replace(config(since=since), produced=frozenset({rsi, sma}))
    with pytest.raises(WaitingFor) as waiting:
        PaperSession.open(tmp_path, planned, parse_strategy(RSI))
    assert str(waiting.value) == rsi
    assert load_session(tmp_path, "paper") is None  # nothing started on computed values

    catch_up(tmp_path, plan_jobs("test", ["BTC/USDT"], ["1h"], ["rsi(14)", "sma(50)"]))
    session = PaperSession.open(tmp_path, planned, parse_strategy(RSI))
    assert set(session.state.feed.sources.values()) == {"dataset"}
    # Not planned: computed here, as before.
    elsewhere = tmp_path / "alone"
    data.append(elsewhere, CANDLES, source)
    alone = PaperSession.open(elsewhere, config(since=since), parse_strategy(RSI))
    assert set(alone.state.feed.sources.values()) == {"computed"}


def test_step_sizes_and_restarts_do_not_change_a_row(tmp_path: Path) -> None:
    source = hourly_candles(260, seed=3)
    strategy = parse_strategy(RSI)
    since = int(source["ts"][120])
    roots = [tmp_path / "one", tmp_path / "chunks"]
    for root in roots:
        data.append(root, CANDLES, source)
    replay(roots[0], config(since=since), strategy, rows_per_step=140)
    for rows in (1, 5, 2, 50, 3, 100):  # a new session object each time: a restart
        PaperSession.open(roots[1], config(since=since), strategy).step(rows)
    replay(roots[1], config(since=since), strategy, rows_per_step=17)
    one, chunks = session_parts(roots[0], "paper"), session_parts(roots[1], "paper")
    for part in ("orders", "trades", "equity"):
        assert one[part].equals(chunks[part]), part
    assert load_session(roots[0], "paper") == load_session(roots[1], "paper")


def test_orders_are_the_fills_of_the_trades(tmp_path: Path) -> None:
    source = hourly_candles(400, seed=4)
    data.append(tmp_path, CANDLES, source)
    session = replay(tmp_path, config(since=int(source["ts"][100])), parse_strategy(RSI),
                     rows_per_step=300)
    parts = session_parts(tmp_path, "paper")
    orders, trades = parts["orders"], parts["trades"]
    open_entries = 1 if session.state.engine.position else 0
    assert orders.height == 2 * trades.height + open_entries
    assert orders["client_id"].n_unique() == orders.height
    exits = orders.filter(pl.col("action") == "exit")
    assert exits["price"].to_list() == trades["exit_price"].to_list()
    assert exits["reason"].to_list() == trades["reason"].to_list()
    entries = orders.filter(pl.col("action") == "entry")
    assert entries["ts"].to_list()[:trades.height] == (trades["entry_ts"] + 1).to_list()


def test_each_signal_and_fill_is_logged_and_a_catch_up_is_summed_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = hourly_candles(400, seed=4)
    data.append(tmp_path, CANDLES, source)
    with caplog.at_level(logging.INFO, logger="sfarm.trading"):
        session = replay(tmp_path, config(since=int(source["ts"][100])), parse_strategy(RSI),
                         rows_per_step=1)
    parts = session_parts(tmp_path, "paper")
    orders, trades = parts["orders"], parts["trades"]
    lines = [record.getMessage() for record in caplog.records]
    closed = [line for line in lines if "filled: closed" in line]
    assert len(closed) == trades.height > 3
    last = trades.row(-1, named=True)
    assert closed[-1] == (f"paper: filled: closed {last['side']} {last['size']:.8g} at "
                          f"{last['exit_price']:.8g} on {format_ts(last['exit_ts'])} "
                          f"({last['reason']}), pnl {last['pnl']:+.2f}")
    entries = orders.filter(pl.col("action") == "entry")
    opened = [line for line in lines if "filled: buy" in line or "filled: sell" in line]
    assert len(opened) == entries.height
    assert f"the open of {format_ts(int(entries['ts'][0]) - 1)} (signal)" in opened[0]
    # Every entry follows a logged signal on the candle before it.
    signals = [line for line in lines if "signal on the candle of" in line]
    assert len([line for line in signals if "enter long" in line]) >= entries.height
    assert session.state.last_ts == source["ts"][-1]

    caplog.clear()
    data.append(tmp_path / "again", CANDLES, source)
    with caplog.at_level(logging.INFO, logger="sfarm.trading"):
        replay(tmp_path / "again", config(since=int(source["ts"][100])), parse_strategy(RSI),
               rows_per_step=1_000)
    summary = [record.getMessage() for record in caplog.records if "caught up" in
               record.getMessage()]
    assert summary == [f"paper: caught up: {orders.height} fills, {trades.height} trades "
                       f"closed, pnl {trades['pnl'].sum():+.2f} (see sfarm report paper)"]


def test_live_edge_starts_at_the_newest_candle_and_follows_appends(tmp_path: Path) -> None:
    source = hourly_candles(230, seed=5)
    data.append(tmp_path, CANDLES, source[:200])
    session = PaperSession.open(tmp_path, config(), parse_strategy(RSI))
    assert session.step() == 1  # the newest candle, indicators warmed up on the history
    equity = data.read(tmp_path, session_id("paper", "equity"))
    assert equity["ts"].to_list() == [source["ts"][199]]
    assert session.step() == 0
    for end in (201, 205, 230):
        data.append(tmp_path, CANDLES, source[:end])
        while session.step(1):
            pass
        assert session.state.last_ts == source["ts"][end - 1]
    equity = data.read(tmp_path, session_id("paper", "equity"))
    assert equity["ts"].to_list() == source["ts"][199:].to_list()


def test_waits_for_candles_then_for_a_lagging_indicator_dataset(tmp_path: Path) -> None:
    strategy = parse_strategy(RSI)
    with pytest.raises(WaitingFor, match=CANDLES):
        PaperSession.open(tmp_path, config(), strategy)
    source = hourly_candles(300, seed=6)
    data.append(tmp_path, CANDLES, source[:250])
    jobs = plan_jobs("test", ["BTC/USDT"], ["1h"], ["rsi(14)", "sma(50)"])
    catch_up(tmp_path, jobs)
    session = PaperSession.open(tmp_path, config(since=int(source["ts"][200])), strategy)
    assert session.step(1000) == 50
    data.append(tmp_path, CANDLES, source)  # candles arrive before their indicators
    with pytest.raises(WaitingFor, match="indicators/test/BTC-USDT/1h/"):
        session.step()
    catch_up(tmp_path, jobs)
    assert session.step(1000) == 50
    assert_same_as_backtest(tmp_path, "paper", RSI, int(source["ts"][200]))


def test_a_changed_strategy_does_not_continue_the_session(tmp_path: Path) -> None:
    data.append(tmp_path, CANDLES, hourly_candles(120, seed=7))
    PaperSession.open(tmp_path, config(), parse_strategy(RSI)).step()
    with pytest.raises(Exception, match="was started as paper with indicators"):
        PaperSession.open(tmp_path, config(), parse_strategy(CROSS_LAG))


def test_kill_switch_halts_at_the_breach_and_stays_halted(tmp_path: Path) -> None:
    source = hourly_candles(400, seed=8)
    data.append(tmp_path, CANDLES, source)
    limits = RiskLimits(max_drawdown=0.03)
    session = replay(tmp_path, config(since=int(source["ts"][100]), limits=limits),
                     parse_strategy(RSI), rows_per_step=100)
    assert session.halted and session.halted.startswith("max_drawdown")
    state = session.state
    assert state.last_ts < source["ts"][-1]  # stopped at the breach
    equity = data.read(tmp_path, session_id("paper", "equity"))
    assert equity["ts"][-1] == state.last_ts
    assert equity["equity"][-1] <= equity["equity"].max() * 0.97
    assert equity["equity"][:-1].min() > equity["equity"][:-1].cum_max().min() * 0.0
    assert state.engine.pending_entry == 0 and not state.engine.pending_exit
    reopened = PaperSession.open(tmp_path, config(since=int(source["ts"][100]), limits=limits),
                                 parse_strategy(RSI))
    assert reopened.halted == session.halted
    assert reopened.step() == 0
    assert data.read(tmp_path, session_id("paper", "state"))["halted"][-1]


def test_feed_signals_match_a_backtest_frame(tmp_path: Path) -> None:
    source = hourly_candles(200, seed=9)
    data.append(tmp_path, CANDLES, source)
    strategy = parse_strategy(CROSS_LAG)
    feed = Feed(tmp_path, strategy, exchange="test", market="BTC/USDT", timeframe="1h")
    state = feed.start(int(source["ts"][150]))
    assert state.tail.height == 2  # LAG(close, 2)
    step = feed.next(state, max_rows=1000)
    assert step.frame.height == 50 and step.signals.height == 50


DRIVER = """
import sys, time
from pathlib import Path
from sfarm.trading.paper import PaperSession, SessionConfig
from sfarm.trading.strategy import parse_strategy
root, target, rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
config = SessionConfig(task="paper", exchange="test", market="BTC/USDT", timeframe="1h",
                       cash=1000.0, since=int(sys.argv[4]))
session = PaperSession.open(root, config, parse_strategy(sys.stdin.read()))
session.step(1)  # imports and compiled code loaded: the kills below land mid-run
print("ready", flush=True)
while session.state.last_ts < target:
    if not session.step(rows):
        time.sleep(0.005)
"""


def start_driver(root: Path, target: int, since: int, rows: int = 3) -> subprocess.Popen[str]:
    return start_python(DRIVER, str(root), str(target), str(rows), str(since), stdin_text=RSI)


def check_consistent(root: Path) -> int:
    """After a kill: the committed state agrees with its own rows, every dataset verifies, and
    no dataset is behind the state. Returns the last committed candle."""
    state = load_session(root, "paper")
    assert state is not None
    for part in ("orders", "trades", "equity", "state"):
        dataset = session_id("paper", part)
        if data.load_manifest(root, dataset) is not None:
            assert data.verify(root, dataset).ok, part
    if state.last_ts >= 0:
        assert data.read(root, session_id("paper", "state"))["ts"][-1] == state.last_ts
        equity = data.load_manifest(root, session_id("paper", "equity"))
        assert equity is not None and equity.last_ts is not None
        assert equity.last_ts >= state.last_ts
    return state.last_ts


@pytest.mark.slow
def test_sigkill_at_any_moment_resumes_exactly(tmp_path: Path) -> None:
    """Kill a paper session's process at random moments while candles keep arriving; each restart
    resumes from its last commit and the end result is the uninterrupted run's, row for row."""
    source = hourly_candles(420, seed=10)
    since, target = int(source["ts"][120]), int(source["ts"][-1])
    root, reference = tmp_path / "killed", tmp_path / "reference"
    data.append(reference, CANDLES, source)
    replay(reference, config(since=since), parse_strategy(RSI), rows_per_step=100)
    available = 260
    data.append(root, CANDLES, source[:available])
    rng = np.random.default_rng(11)
    kills, progress = 0, []
    while kills < 8:
        process = start_driver(root, target, since)
        time.sleep(float(rng.uniform(0.02, 0.5)))
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        progress.append(check_consistent(root))
        if available < source.height:  # the miner appends while the session is down
            available = min(source.height, available + 20)
            data.append(root, CANDLES, source[:available])
    assert kills >= 6
    assert len(set(progress)) >= 4  # the kills landed at different points of the run
    data.append(root, CANDLES, source)
    final = start_driver(root, target, since)
    assert final.wait(60) == 0
    check_consistent(root)
    killed, expected = session_parts(root, "paper"), session_parts(reference, "paper")
    for part in ("orders", "trades", "equity"):
        assert killed[part].equals(expected[part]), part
    assert load_session(root, "paper") == load_session(reference, "paper")
    # one state row per commit, each the equity of its candle
    states = killed["state"].join(killed["equity"], on="ts", suffix="_row")
    assert states.height == killed["state"].height
    assert (states["equity"] == states["equity_row"]).all()


def test_trade_rows_are_the_backtest_rows(tmp_path: Path) -> None:
    source = hourly_candles(300, seed=12)
    data.append(tmp_path, CANDLES, source)
    result = backtest(tmp_path, parse_strategy(RSI), exchange="test", market="BTC/USDT",
                      timeframe="1h", cash=1000.0)
    assert trade_rows(result.run.trades).equals(session_frames(result)[0])


BREAKOUT_CLASS = '''
import polars as pl


class Breakout:
    indicators = ["sma(10)"]
    lookback = 25

    def signals(self, frame: pl.DataFrame) -> pl.DataFrame:
        prev_high = pl.col("high").rolling_max(20).shift(1)
        return frame.select(entry_long=pl.col("close") > prev_high,
                            exit_long=pl.col("close") < pl.col("sma_10"))
'''


def test_class_strategy_replay_is_the_backtest(tmp_path: Path) -> None:
    (tmp_path / "breakout.py").write_text(BREAKOUT_CLASS)
    path = tmp_path / "breakout.toml"
    path.write_text('[strategy]\nname = "breakout"\nclass = "breakout:Breakout"\n'
                    'indicators = ["sma(10)"]\nstop_loss = 0.04\nfee = 0.001\n')
    from sfarm.trading.strategy import load_strategy

    source = hourly_candles(400, seed=13)
    data.append(tmp_path, CANDLES, source)
    since = int(source["ts"][150])
    strategy = load_strategy(path)
    replay(tmp_path, config(since=since), strategy, rows_per_step=9)
    expected = backtest(tmp_path, strategy, exchange="test", market="BTC/USDT", timeframe="1h",
                        start=since, cash=1000.0)
    trades, equity = session_frames(expected)
    assert expected.run.trades.height >= 4
    parts = session_parts(tmp_path, "paper")
    assert parts["trades"].equals(trades) and parts["equity"].equals(equity)
