"""What a node shows of its data (sfarm.runtime.views), through the node protocol's handler on a
real store: a dataset's last rows (own or mirrored), a paper session's view, and their errors;
and the pure building of a session view."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.data.ids import session_id
from sfarm.inventory import NodeSpec
from sfarm.remote.agent import InProcessTransport, NodeAgent
from sfarm.runtime.views import build_session_view
from sfarm.trading.backtest import run_backtest_task
from sfarm.trading.engine import EngineState
from sfarm.trading.feed import FeedState
from sfarm.trading.paper import SessionConfig, replay
from sfarm.trading.session import RiskState, SessionState, load_session
from sfarm.trading.strategy import parse_strategy
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.paper import CANDLES, RSI, hourly_candles

MINED = "candles/sim/BTC-USDT/1m"
EQUITY_SCHEMA = {"ts": pl.Int64, "equity": pl.Float64}


def agent(root: Path) -> NodeAgent:
    spec = NodeSpec(network="test", name="lab", host="local", tasks=(), user=None, port=22,
                    base_dir="/unused", python="python3", transport="rsync",
                    identity_file=None, proxy_jump=None)
    return NodeAgent(spec, InProcessTransport(spec, root))


def test_tail_is_the_stores_last_rows_reading_only_the_last_partitions(tmp_path: Path) -> None:
    # Three days of 1m candles: the tail of 120 lies in the last day's file alone.
    data.append(tmp_path, MINED, make_candles(T0, 3 * 1440))
    stored = data.read(tmp_path, MINED)
    older = [partition.file for partition in data.load_manifest(tmp_path, MINED).partitions[:-1]]
    for name in older:  # were they opened, the read would fail
        (tmp_path / "data" / MINED / name).unlink()
    tail = agent(tmp_path).tail(MINED, 120)
    assert tail.error is None and tail.id == MINED
    expected = stored.tail(120)
    assert tail.ts == expected["ts"].to_list()
    assert list(tail.columns) == ["open", "high", "low", "close", "volume"]
    for name, values in tail.columns.items():
        assert values == expected[name].to_list()


def test_tail_of_a_mirror_of_missing_nan_and_text_columns(tmp_path: Path) -> None:
    frame = pl.DataFrame({"ts": [T0, T0 + 60_000, T0 + 120_000],
                          "rsi_14": [None, math.nan, 55.5]},
                         schema={"ts": pl.Int64, "rsi_14": pl.Float64})
    rsi = "indicators/sim/BTC-USDT/1m/rsi_14"
    data.append(tmp_path / "peer", rsi, frame)
    (tmp_path / "mirror").mkdir()
    (tmp_path / "peer" / "data").rename(tmp_path / "mirror" / "quant")
    node = agent(tmp_path)
    tail = node.tail(rsi, 5)  # more than it has: all of it
    assert tail.error is None
    assert tail.ts == [T0, T0 + 60_000, T0 + 120_000]
    assert tail.columns == {"rsi_14": [None, None, 55.5]}  # NaN is no JSON number
    assert node.tail(rsi, 1, mirror_of="quant").ts == [T0 + 120_000]

    missing = node.tail("candles/sim/ETH-USDT/1m")
    assert missing.ts == [] and missing.columns == {}
    assert "no dataset candles/sim/ETH-USDT/1m" in (missing.error or "")
    assert "mirror/other" in (node.tail(rsi, mirror_of="other").error or "")
    assert "bad dataset id" in (node.tail("../etc/passwd").error or "")

    # Mirrored from two producers, owned by neither: which one to read is the caller's to say.
    data.append(tmp_path / "peer", rsi, frame)
    (tmp_path / "peer" / "data").rename(tmp_path / "mirror" / "other")
    assert "mirrored from other, quant" in (node.tail(rsi).error or "")
    assert node.tail(rsi, mirror_of="other").error is None


def test_a_tail_shows_numbers_only(tmp_path: Path) -> None:
    orders = session_id("paper", "orders")
    data.append(tmp_path, orders, pl.DataFrame(
        {"ts": [T0], "side": ["buy"], "amount": [0.5], "placed_at": [T0 + 3], "ok": [True]},
        schema={"ts": pl.Int64, "side": pl.String, "amount": pl.Float64, "placed_at": pl.Int64,
                "ok": pl.Boolean}))
    tail = agent(tmp_path).tail(orders)
    assert tail.ts == [T0] and tail.columns == {"amount": [0.5], "placed_at": [T0 + 3.0]}


def test_an_unreadable_partition_is_an_error_not_an_exception(tmp_path: Path) -> None:
    data.append(tmp_path, MINED, make_candles(T0, 100))
    last = data.load_manifest(tmp_path, MINED).partitions[-1].file
    (tmp_path / "data" / MINED / last).write_bytes(b"not parquet")
    tail = agent(tmp_path).tail(MINED, 10)
    assert tail.ts == [] and tail.error is not None and MINED in tail.error


def test_session_view_of_a_paper_session_matches_its_datasets(tmp_path: Path) -> None:
    node = agent(tmp_path)
    assert node.session("paper") is None  # not started
    data.append(tmp_path, CANDLES, hourly_candles(900, seed=4))
    since = int(data.read(tmp_path, CANDLES)["ts"][100])
    config = SessionConfig(task="paper", exchange="test", market="BTC/USDT", timeframe="1h",
                           cash=1000.0, since=since)
    replay(tmp_path, config, parse_strategy(RSI), rows_per_step=50)

    view = node.session("paper", points=60, trades=3)
    state = load_session(tmp_path, "paper")
    assert view is not None and state is not None
    equity = data.read(tmp_path, session_id("paper", "equity"))
    trades = data.read(tmp_path, session_id("paper", "trades"))
    assert trades.height > 3  # the strategy traded: the last three are a real cut
    assert (view.task, view.mode, view.strategy, view.cash) == ("paper", "paper", "rsi-revert",
                                                                 1000.0)
    assert view.equity == pytest.approx(equity["equity"][-1])
    assert view.pnl == pytest.approx(view.equity - 1000.0)
    assert view.return_pct == pytest.approx(view.pnl / 10.0)
    assert view.position == state.engine.position
    assert view.last_ts == state.last_ts == equity["ts"][-1]
    assert len(view.equity_ts) <= 60 and view.equity_ts[0] == equity["ts"][0]
    assert view.equity_ts[-1] == equity["ts"][-1]
    by_ts = dict(zip(equity["ts"].to_list(), equity["equity"].to_list(), strict=True))
    assert [by_ts[ts] for ts in view.equity_ts] == view.equity_values
    assert min(view.equity_values) == equity["equity"].min()  # the worst point survives
    assert view.trade_count == trades.height
    assert [trade.model_dump(exclude={"fees", "reason"}) for trade in view.trades] == \
        trades.tail(3).drop("ts", "fees", "reason").to_dicts()
    assert [trade.reason for trade in view.trades] == trades.tail(3)["reason"].to_list()
    none = node.session("paper", trades=0)
    assert none is not None and none.trades == [] and none.trade_count == trades.height


def test_session_view_of_a_backtest_task_is_its_run(tmp_path: Path) -> None:
    data.append(tmp_path, CANDLES, hourly_candles(700, seed=5))
    result = run_backtest_task(tmp_path, "bt", parse_strategy(RSI), exchange="test",
                               market="BTC/USDT", timeframe="1h", cash=500.0)
    view = agent(tmp_path).session("bt", points=40, trades=4)
    assert view is not None and result.run.trades.height > 4
    assert (view.mode, view.strategy, view.cash) == ("backtest", "rsi-revert", 500.0)
    assert view.equity == pytest.approx(result.metrics.final_equity)
    assert view.return_pct == pytest.approx(result.metrics.total_return * 100)
    assert view.position == pytest.approx(result.run.state.position)
    assert view.last_ts == int(result.ts[-1]) == view.equity_ts[-1]
    assert view.trade_count == result.run.trades.height and len(view.equity_ts) <= 40
    assert [trade.exit_ts for trade in view.trades] == \
        result.run.trades.tail(4)["exit_ts"].to_list()


def test_a_task_name_that_is_no_dataset_path_is_refused(tmp_path: Path) -> None:
    from sfarm.runtime.envelope import NodeError

    with pytest.raises(NodeError, match="bad dataset id"):
        agent(tmp_path).session("../x")


def state(position: float = 0.0, entry_price: float = math.nan, last_ts: int = -1,
          halted: str | None = None) -> SessionState:
    engine = EngineState(cash=800.0, position=position, entry_price=entry_price, last_ts=last_ts)
    risk = RiskState(peak=1_100.0, day=0, day_equity=1_000.0, last_equity=1_050.0,
                     halted=halted)
    return SessionState(mode="paper", strategy="s", cash=1_000.0, engine=engine,
                        feed=FeedState(last_ts=last_ts, sources={}), risk=risk)


def test_build_session_view_from_state_and_frames() -> None:
    equity = pl.DataFrame({"ts": list(range(0, 1_000_000, 1_000)),
                           "equity": [1_000.0 + (i % 97) for i in range(1_000)]},
                          schema=EQUITY_SCHEMA)
    trades = pl.DataFrame([{"ts": 5, "side": "long", "entry_ts": 1, "exit_ts": 4,
                            "entry_price": 10.0, "exit_price": 11.0, "size": 2.0, "pnl": 1.9}])
    view = build_session_view("t", state(position=2.5, entry_price=20.0, last_ts=999_000,
                                         halted="max_drawdown"), equity, trades, 7, 10)
    assert (view.equity, view.pnl, view.return_pct) == (1_050.0, 50.0, 5.0)
    assert (view.position, view.entry_price, view.halted, view.last_ts) == (
        2.5, 20.0, "max_drawdown", 999_000)
    assert len(view.equity_ts) <= 10 and view.equity_ts[0] == 0 and view.equity_ts[-1] == 999_000
    assert view.trade_count == 7 and len(view.trades) == 1
    assert view.trades[0].pnl == 1.9 and view.trades[0].fees is None

    flat = build_session_view("t", state(), pl.DataFrame(schema=EQUITY_SCHEMA), pl.DataFrame(),
                              0, 10)
    assert (flat.entry_price, flat.last_ts, flat.equity_ts, flat.trades) == (None, None, [], [])
