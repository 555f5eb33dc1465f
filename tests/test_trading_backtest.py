"""`sfarm backtest` end to end on a data root, indicator datasets, session datasets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sfarm.cli.console import print_json
from sfarm.data import append, read
from sfarm.indicators import compute
from sfarm.trading.backtest import (
    TRADE_LIST_INDENT,
    BacktestResult,
    backtest,
    run_backtest,
    run_backtest_task,
    session_frames,
    trades_json,
)
from sfarm.trading.strategy import parse_strategy
from tests.fixtures.cli import run
from tests.fixtures.series import walk_candles

DAY = 86_400_000
DATASET = "candles/test/BTC-USDT/1d"
STRATEGY = """\
[strategy]
name = "rsi-revert"
indicators = ["rsi(14)", "sma(50)"]
entry_long = "rsi_14 < 35 AND close > 0.8 * sma_50"
exit_long = "rsi_14 > 60"
stop_loss = 0.05
trailing_stop = 0.08
fee = 0.001
slippage = 0.0005
"""


def random_candles(n: int, seed: int = 1) -> pl.DataFrame:
    return walk_candles(n, seed, start=1_600_000_000_000 // DAY * DAY, step_ms=DAY, sigma=0.03,
                        wick=0.02)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    append(tmp_path, DATASET, random_candles(600))
    return tmp_path


@pytest.fixture
def strategy_file(tmp_path: Path) -> Path:
    path = tmp_path / "rsi.toml"
    path.write_text(STRATEGY, encoding="utf-8")
    return path


def cli_args(strategy_file: Path, root: Path, *more: str) -> list[str]:
    return ["backtest", str(strategy_file), "--exchange", "test", "--market", "BTC/USDT",
            "--timeframe", "1d", "--root", str(root), *more]


def test_json_report_matches_the_pure_backtest(root: Path, strategy_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *cli_args(strategy_file, root, "--json", "--cash", "5000"))
    assert code == 0
    report = json.loads(out)
    frame = compute(read(root, DATASET), ["rsi(14)", "sma(50)"])
    expected = run_backtest(frame, parse_strategy(STRATEGY), timeframe="1d", cash=5000.0)
    assert report["initial_equity"] == 5000.0
    assert report["final_equity"] == pytest.approx(expected.metrics.final_equity)
    assert report["trades"] == expected.run.trades.height == len(report["trade_list"]) > 3
    for key in ("return", "sharpe", "max_drawdown", "cagr", "sortino", "calmar", "win_rate",
                "profit_factor", "exposure", "avg_trade"):
        assert key in report
    first = report["trade_list"][0]
    assert set(first) >= {"side", "entry_ts", "exit_ts", "entry_price", "exit_price", "size",
                          "pnl"}
    assert isinstance(first["entry_ts"], int) and first["entry_ts"] % DAY == 0
    assert report["indicators"] == {"rsi(14)": "computed", "sma(50)": "computed"}


def test_json_document_parses_as_the_python_values_of_the_report(
        root: Path, strategy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` embeds the trade list encoded by polars: parsed, the document is the one
    orjson writes from `to_json()`'s plain values (the trades as dicts), key for key."""
    code, out, _ = run(capsys, *cli_args(strategy_file, root, "--json"))
    assert code == 0
    result = backtest(root, parse_strategy(STRATEGY), exchange="test", market="BTC/USDT",
                      timeframe="1d")
    print_json(result.to_json())
    assert json.loads(out) == json.loads(capsys.readouterr().out)
    assert len(json.loads(out)["trade_list"]) > 3
    assert "\n    {\"side\":" in out  # a trade a line, inside the indented document


def test_trades_json_matches_the_dicts_with_null_for_non_finite_numbers() -> None:
    trades = pl.DataFrame({"side": ["long", "short", "long"], "entry_ts": [1, 2, 3],
                           "pnl": [0.1 + 0.2, float("nan"), float("-inf")],
                           "size": [1e-300, 123456789.123456789, None],
                           "reason": ["signal", "stop", "\u00e9\"quoted\""]})
    text = trades_json(trades, TRADE_LIST_INDENT)
    expected = [{**row, "pnl": row["pnl"] if np.isfinite(row["pnl"]) else None}
                for row in trades.to_dicts()]
    assert json.loads(text) == expected
    assert json.loads(trades_json(trades.clear(), TRADE_LIST_INDENT)) == []


def test_json_has_the_equity_curve_downsampled_and_equity_writes_it_whole(
        tmp_path: Path, strategy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    append(root, DATASET, random_candles(5_000))
    csv, parquet = tmp_path / "equity.csv", tmp_path / "equity.parquet"
    code, out, err = run(capsys, *cli_args(strategy_file, root, "--json", "--equity", str(csv)))
    assert code == 0 and "equity curve: 5,000 rows in" in err
    report = json.loads(out)
    whole = pl.read_csv(csv)
    assert whole.columns == ["ts", "equity", "position"] and whole.height == 5_000
    assert whole["equity"][-1] == pytest.approx(report["final_equity"])
    curve = report["equity_curve"]
    assert 1_000 < len(curve) <= 2_000
    assert curve[0] == [whole["ts"][0], pytest.approx(whole["equity"][0])]
    assert curve[-1] == [whole["ts"][-1], pytest.approx(whole["equity"][-1])]
    by_ts = dict(zip(whole["ts"].to_list(), whole["equity"].to_list(), strict=True))
    assert all(value == pytest.approx(by_ts[ts]) for ts, value in curve)  # points of the curve
    assert min(value for _, value in curve) == pytest.approx(whole["equity"].min())  # the trough

    code, _, _ = run(capsys, *cli_args(strategy_file, root, "--equity", str(parquet)))
    stored = pl.read_parquet(parquet)
    assert code == 0 and stored["ts"].to_list() == whole["ts"].to_list()
    assert stored["equity"].to_list() == pytest.approx(whole["equity"].to_list())

    code, _, err = run(capsys, *cli_args(strategy_file, root, "--equity",
                                         str(tmp_path / "nowhere" / "e.csv")))
    assert code == 2 and "--equity: no directory" in err


@pytest.fixture
def no_crash_logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a crash would be logged: here, not in the user's state directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.mark.parametrize("name", ["directory", "empty"])
def test_equity_naming_a_directory_is_refused_before_the_backtest(
        name: str, root: Path, strategy_file: Path, tmp_path: Path, no_crash_logs: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """`--equity ''` is `.`: both used to crash once the whole backtest had run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sfarm.trading.backtest.backtest",
                        lambda *args, **kwargs: pytest.fail("the backtest ran"))
    path = str(tmp_path) if name == "directory" else ""
    code, out, err = run(capsys, *cli_args(strategy_file, root, "--equity", path))
    shown = str(tmp_path) if name == "directory" else "."
    assert code == 2 and out == "" and "bug in sfarm" not in err
    assert f"--equity: {shown} is a directory" in err and not no_crash_logs.exists()


FULL = Path("/dev/full")  # every write to it fails: no space left on device


@pytest.mark.parametrize(("name", "reason"), [("full.csv", "No space left on device"),
                                              ("full.parquet", "No space left on device"),
                                              ("/proc/equity.csv", "No such file or directory")])
def test_equity_that_cannot_be_written_is_an_error_after_the_report(
        name: str, reason: str, root: Path, strategy_file: Path, tmp_path: Path,
        no_crash_logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not FULL.exists() or not Path("/proc").is_dir():
        pytest.skip("needs Linux's /dev/full and /proc")
    path = Path(name) if name.startswith("/") else tmp_path / name
    if path.parent == tmp_path:  # a name of either format, for a full disk
        path.symlink_to(FULL)
    code, out, err = run(capsys, *cli_args(strategy_file, root, "--equity", str(path)))
    assert code == 1 and "bug in sfarm" not in err and not no_crash_logs.exists()
    assert f"--equity: cannot write the equity curve to {path}: {reason}" in err
    assert "rsi-revert on" in out and "final equity" in out  # the report is not lost
    code, out, err = run(capsys, *cli_args(strategy_file, root, "--equity", str(path), "--json"))
    assert code == 1 and json.loads(out)["trades"] > 0 and "cannot write" in err


@pytest.mark.parametrize("name", ["e.PARQUET", "e.Parquet", ".parquet"])
def test_equity_ending_in_parquet_in_any_case_is_parquet(
        name: str, root: Path, strategy_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, *cli_args(strategy_file, root, "--equity", str(tmp_path / name)))
    stored = pl.read_parquet(tmp_path / name)
    assert code == 0 and stored.columns == ["ts", "equity", "position"] and stored.height == 600


def test_a_partition_turned_directory_fails_the_backtest_instead_of_skipping_it(
        root: Path, strategy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """polars read the directory as an empty dataset: the backtest ran on a year fewer."""
    directory = root / "data" / DATASET
    partition = sorted(directory.glob("*.parquet"))[1]
    partition.unlink()
    partition.mkdir()
    code, out, err = run(capsys, *cli_args(strategy_file, root))
    assert code == 1 and out == ""
    assert f"dataset {DATASET} is damaged: partition {partition.name} is a directory" in err
    assert "sfarm data verify --repair" in err


@pytest.mark.parametrize(("cash", "says"), [
    ("inf", "--cash must be a finite number, got inf"),
    ("nan", "--cash must be a finite number, got nan"),
    ("0", "--cash must be greater than 0, got 0"),
    ("-5", "--cash must be greater than 0, got -5"),
])
def test_cash_must_be_a_finite_number_above_zero(root: Path, strategy_file: Path, cash: str,
                                                 says: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # inf ran, with an equity of "-" and a trade of size inf (--help said x >= 0)
    code, out, err = run(capsys, *cli_args(strategy_file, root), "--cash", cash)
    assert code == 2 and out == ""
    assert says in err


def test_rich_report(root: Path, strategy_file: Path,
                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *cli_args(strategy_file, root))
    assert code == 0
    assert "rsi-revert" in out and "max drawdown" in out and "Sharpe" in out


def _report_lines(result: BacktestResult, *, width: int, terminal: bool) -> list[str]:
    from rich.console import Console

    from sfarm.cli.backtest import render

    sink = io.StringIO()
    render(result, Console(file=sink, width=width, force_terminal=terminal, color_system=None))
    return sink.getvalue().splitlines()


def _result(root: Path, strategy_file: Path) -> BacktestResult:
    return backtest(root, strategy_file, exchange="test", market="BTC/USDT", timeframe="1d")


def test_last_trades_are_one_line_each_in_a_file_whatever_the_width(
        root: Path, strategy_file: Path) -> None:
    result = _result(root, strategy_file)
    trades = result.run.trades
    assert trades.height > 10
    lines = _report_lines(result, width=40, terminal=False)
    assert ["trades", f"{trades.height:,}"] in [line.split() for line in lines]  # the summary
    title = lines.index(f"last trades (of {trades.height:,})")
    header, rows = lines[title + 1], lines[title + 2:title + 12]
    assert header.split() == ["side", "entry", "exit", "entry", "price", "exit", "price",
                              "size", "pnl", "reason"]
    for line, trade in zip(rows, trades.tail(10).iter_rows(named=True), strict=True):
        cells = line.split()  # side, entry day and time, exit day and time, prices, size, ...
        assert cells[0] == trade["side"] and cells[-1] == trade["reason"]
        assert cells[-2] == f"{trade['pnl']:,.2f}"
        assert cells[5:7] == [f"{trade['entry_price']:,.4f}", f"{trade['exit_price']:,.4f}"]
    assert {len(line) for line in [header, *rows]} == {len(header)} and len(header) > 40


def test_last_trades_fit_a_narrow_terminal_in_a_wrapping_table(root: Path,
                                                                strategy_file: Path) -> None:
    result = _result(root, strategy_file)
    wide = _report_lines(result, width=200, terminal=True)
    assert not any("│" in line for line in wide)  # the rows fit: aligned text
    narrow = _report_lines(result, width=80, terminal=True)
    assert all(len(line) <= 80 for line in narrow)
    sides = [line.split("│")[1].strip() for line in narrow if line.startswith("│")]
    assert [side for side in sides if side] == ["long"] * 10  # a row wraps onto two lines


def test_missing_candles_dataset_names_it_and_suggests(tmp_path: Path, strategy_file: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *cli_args(strategy_file, tmp_path / "empty"))
    assert code == 2
    assert DATASET in err and "sfarm mine" in err and "sfarm data import" in err


def test_bad_strategy_exits_2_with_file_and_line(root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(STRATEGY.replace('"rsi_14 > 60"', '"rsi_15 > 60"'), encoding="utf-8")
    code, _, err = run(capsys, *cli_args(bad, root))
    assert code == 2
    message = " ".join(err.split())
    assert "bad.toml:5: strategy.exit_long: unknown column 'rsi_15'" in message
    assert "did you mean 'rsi_14'?" in message


def test_range_runs_from_the_first_candle_with_indicators_warmed_up(root: Path) -> None:
    candles = read(root, DATASET)
    start = int(candles["ts"][300])
    end = int(candles["ts"][500])
    result = backtest(root, parse_strategy(STRATEGY), exchange="test", market="BTC/USDT",
                      timeframe="1d", start=start, end=end)
    assert result.ts[0] == start and result.ts[-1] == end - DAY and len(result.ts) == 200
    trades = result.run.trades
    assert trades.height and trades["entry_ts"].min() >= start  # type: ignore[operator]
    # The warm-up rows before --from were read: the first candle already has indicator values,
    # so the range behaves like the same candles of a full-history run after its first trade.
    full = backtest(root, parse_strategy(STRATEGY), exchange="test", market="BTC/USDT",
                    timeframe="1d")
    in_range = full.run.trades.filter(pl.col("entry_ts") >= start, pl.col("exit_ts") < end)
    assert in_range["entry_ts"].to_list()[-3:] == trades["entry_ts"].to_list()[-3:]


def test_indicator_datasets_are_used_when_they_cover_the_range(root: Path) -> None:
    candles = read(root, DATASET)
    indicators = compute(candles, ["rsi(14)"])
    append(root, "indicators/test/BTC-USDT/1d/rsi_14", indicators.select("ts", "rsi_14"))
    result = backtest(root, parse_strategy(STRATEGY), exchange="test", market="BTC/USDT",
                      timeframe="1d")
    assert result.indicator_sources == {"rsi(14)": "dataset", "sma(50)": "computed"}
    computed = run_backtest(compute(candles, ["rsi(14)", "sma(50)"]), parse_strategy(STRATEGY),
                            timeframe="1d")
    assert result.run.trades.equals(computed.run.trades)
    # A dataset that stops short of the candles is not used.
    append(root, "indicators/test/BTC-USDT/1d/sma_50",
           compute(candles.head(400), ["sma(50)"]).select("ts", "sma_50"))
    result = backtest(root, parse_strategy(STRATEGY), exchange="test", market="BTC/USDT",
                      timeframe="1d")
    assert result.indicator_sources["sma(50)"] == "computed"


def test_task_writes_trades_and_equity_sessions(root: Path, strategy_file: Path) -> None:
    result = run_backtest_task(root, "rsi-bt", strategy_file, exchange="test", market="BTC/USDT",
                               timeframe="1d")
    trades = read(root, "sessions/rsi-bt/trades")
    equity = read(root, "sessions/rsi-bt/equity")
    assert trades.height == result.run.trades.height
    assert trades["pnl"].to_list() == result.run.trades["pnl"].to_list()
    assert equity.height == 600 and equity["ts"].to_list() == result.ts.to_list()
    assert equity["equity"].to_list() == result.run.equity.tolist()
    assert trades.schema["ts"] == pl.Int64 and equity.schema["ts"] == pl.Int64


def test_session_trade_keys_stay_unique_when_two_exits_share_a_candle() -> None:
    # Long until candle 2's open (signal exit, reversed to short), and the short is stopped
    # inside candle 2: both trades exit in candle 2.
    frame = pl.DataFrame({
        "ts": np.arange(4, dtype=np.int64) * DAY,
        "open": [100.0, 100.0, 100.0, 100.0], "high": [101.0, 101.0, 110.0, 101.0],
        "low": [99.0, 99.0, 99.0, 99.0], "close": [100.0, 100.0, 100.0, 100.0],
        "volume": [1.0] * 4})
    strategy = parse_strategy('[strategy]\nname = "t"\nentry_long = "ts = 0"\n'
                              f'entry_short = "ts = {DAY}"\nstop_loss = 0.05\n')
    result = run_backtest(frame, strategy, timeframe="1d")
    assert result.run.trades["exit_ts"].to_list() == [2 * DAY, 2 * DAY]
    trades_rows, _ = session_frames(result)
    assert trades_rows["ts"].to_list() == [2 * DAY, 2 * DAY + 1]
    assert trades_rows["reason"].to_list() == ["signal", "stop_loss"]


def test_a_run_without_stops_reads_neither_high_nor_low(root: Path) -> None:
    from sfarm.trading.backtest import load_frame
    from sfarm.trading.engine import Candles, EngineParams, EngineState, run

    plain = parse_strategy(STRATEGY.replace("stop_loss = 0.05\ntrailing_stop = 0.08\n", ""))
    frame, _ = load_frame(root, plain, exchange="test", market="BTC/USDT", timeframe="1d")
    assert "high" not in frame.columns and "low" not in frame.columns
    with_stops, _ = load_frame(root, parse_strategy(STRATEGY), exchange="test",
                               market="BTC/USDT", timeframe="1d")
    assert {"high", "low"} <= set(with_stops.columns)
    # Same trades either way when the stops are off; stops without high/low are refused.
    assert run_backtest(frame, plain, timeframe="1d").run.trades.equals(
        run_backtest(with_stops, plain, timeframe="1d").run.trades)
    with pytest.raises(ValueError, match="high and low"):
        run(Candles.from_frame(frame), EngineParams(stop_loss=0.01), EngineState.initial(100.0))
