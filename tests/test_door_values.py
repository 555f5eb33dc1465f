"""Bad values at the door (issue 16, item 7): impossible candles are refused by `data import`,
refused and reported by the miner (real ccxt against the emulator's `bad_candles` fault) and
flagged by `verify`; strategy values are typed strictly; a condition constant over the candles
run gives a warning; `mine --since` after `--until` or in the future is a usage error."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from sfarm import data
from sfarm.context import TaskContext
from sfarm.data.checks import bad_candle_expr, candle_faults
from sfarm.errors import UsageError
from sfarm.exchanges import RetryPolicy
from sfarm.inventory.model import Exchange, MineTask
from sfarm.mining import MineProgress, MineRequest, MinerSettings, mine
from sfarm.mining.run import run_mine, run_mine_task
from sfarm.sim.faults import parse_faults, spoil_klines
from sfarm.timepoints import parse_time_point
from sfarm.trading.strategy import parse_strategy
from tests.fixtures.cli import run, sfarm_process
from tests.fixtures.data_helpers import T0, make_candles

M = 60_000
BTC_1M = "candles/binance/BTC-USDT/1m"
HEADER = "ts,open,high,low,close,volume\n"


def ms(text: str) -> int:
    return parse_time_point(text).resolve()


def rows_text(frame: pl.DataFrame) -> str:
    return "".join(",".join(str(v) for v in row) + "\n" for row in frame.iter_rows())


# ---- one definition of a bad candle ----------------------------------------------------------

@pytest.mark.parametrize("change, what", [
    ({"close": 0.0, "low": 0.0}, "a price of zero or below"),
    ({"open": -1.0, "low": -2.0}, "a price of zero or below"),
    ({"high": float("inf")}, "infinity in open, high, low, close or volume"),
    ({"volume": float("-inf")}, "infinity in open, high, low, close or volume"),
    ({"close": float("nan")}, "NaN in open, high, low, close or volume"),
    ({"volume": -3.0}, "negative volume"),
    ({"high": 0.5, "low": 2.0}, "low above open or close"),
])
def test_the_rules_name_each_impossible_candle_once(change: dict[str, float], what: str) -> None:
    candles = make_candles(T0, 5).with_columns(open=1.0, high=2.0, low=0.5, close=1.5)
    broken = candles.with_columns(**{column: pl.when(pl.col("ts") == T0 + 2 * M).then(
        pl.lit(value)).otherwise(pl.col(column)) for column, value in change.items()})
    faults = candle_faults(broken)
    assert (what, 1, T0 + 2 * M) in faults
    # NaN or infinity alone are named: comparing them says nothing more.
    assert len(faults) == (2 if change.keys() == {"high", "low"} else 1), faults
    assert broken.select(bad_candle_expr()).to_series().to_list() == [False, False, True,
                                                                      False, False]


# ---- data import ------------------------------------------------------------------------------

def test_import_refuses_impossible_prices_with_lines_and_writes_nothing(tmp_path: Path,
                                                                        capsys) -> None:
    good = rows_text(make_candles(T0, 2))
    text = (HEADER + good                                    # lines 2-3
            + f"{T0 + 2 * M},1,2,0.5,0,3\n"                  # 4: close 0
            + f"{T0 + 3 * M},-1,2,-2,1,3\n"                  # 5: negative open and low
            + f"{T0 + 4 * M},1,inf,0.5,1,3\n"                # 6: infinite high
            + f"{T0 + 5 * M},1,2,0.5,NaN,3\n"                # 7: NaN close
            + f"{T0 + 6 * M},1,2,0.5,1,-3\n"                 # 8: negative volume
            + f"{T0 + 7 * M},1,0.5,2,1,3\n")                 # 9: high below low
    path = tmp_path / "dump.csv"
    path.write_text(text)
    code, out, err = run(capsys, "data", "import", str(path), "--id", BTC_1M,
                         "--root", str(tmp_path))
    assert code == 2 and out == ""
    assert f"{path}: 6 bad rows, nothing imported" in err
    for expected in ["line 4: a price of zero or below",
                     "line 5: a price of zero or below",
                     "line 6: infinity in open, high, low, close or volume",
                     "line 7: NaN in open, high, low, close or volume",
                     "line 8: negative volume",
                     "line 9: low above open or close"]:
        assert expected in err, err
    assert "Traceback" not in err
    assert data.load_manifest(tmp_path, BTC_1M) is None


# ---- verify ----------------------------------------------------------------------------------

def test_verify_flags_stored_impossible_candles(tmp_path: Path) -> None:
    candles = make_candles(T0, 10)
    broken = candles.with_columns(
        **{column: pl.when(pl.col("ts") == T0 + 3 * M).then(0.0).otherwise(pl.col(column))
           for column in ("close", "low")},
        high=pl.when(pl.col("ts") == T0 + 5 * M).then(float("inf")).otherwise(pl.col("high")))
    data.append(tmp_path, BTC_1M, broken)  # append stores what it is given; verify judges
    report = data.verify(tmp_path, BTC_1M)
    assert report.problems == [
        "partition 2024-01-01.g1.parquet: 1 candles with infinity in open, high, low, close or "
        "volume, first at 2024-01-01 00:05",
        "partition 2024-01-01.g1.parquet: 1 candles with a price of zero or below, first at "
        "2024-01-01 00:03",
    ]


# ---- the emulator's fault and the miner -------------------------------------------------------

SINCE, UNTIL = "2024-03-01", "2024-03-01T03:00"
WINDOW = ("2024-03-01T01:00", "2024-03-01T01:10")  # ten 1m candles, one 1h candle
FAULT = f"bad_candles={WINDOW[0]}/{WINDOW[1]}"


def test_bad_candles_fault_parses_round_trips_and_spoils_only_its_window() -> None:
    plan = parse_faults(FAULT + ",short_page=0.1")
    assert plan.bad_candles == ((ms(WINDOW[0]), ms(WINDOW[1])),)
    assert parse_faults(plan.describe()) == plan
    with pytest.raises(UsageError, match="END must be after START"):
        parse_faults("bad_candles=2024-03-02/2024-03-01")
    rows = [[ms(WINDOW[0]) + (i - 2) * M, "1.0", "2.0", "0.5", "1.5", "10.0", 0] for i in range(14)]
    spoiled = spoil_klines(rows, plan.bad_candles)
    assert [row != original for row, original in zip(spoiled, rows, strict=True)] == \
        [False] * 2 + [True] * 10 + [False] * 2
    assert spoil_klines(rows, plan.bad_candles) == spoiled  # the same damage every time


def test_miner_refuses_bad_candles_and_reports_the_exchange_problem(emulator, emulator_factory,
                                                                    tmp_path) -> None:
    request = MineRequest("binance", ("BTC/USDT",), ("1m", "1h"), ms(SINCE), ms(UNTIL))
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    mine(clean, request, Exchange(ccxt="binance", url=emulator.url))
    result = mine(faulty, request, Exchange(ccxt="binance", url=emulator_factory(FAULT).url))
    assert not result.failures
    first, end = ms(WINDOW[0]), ms(WINDOW[1])
    by_tf = {status.timeframe: status for status in result.datasets}
    assert (by_tf["1m"].bad_candles, by_tf["1h"].bad_candles) == (10, 1)
    for status in result.datasets:
        problem = status.exchange_problem or ""
        assert problem.startswith(f"{status.dataset_id}: binance served "
                                  f"{status.bad_candles} candles with impossible values")
        assert "first at 2024-03-01 01:00" in problem and "not stored" in problem
        # Everything else is stored as a clean run stores it; the bad slots stay empty.
        step = 60 * M if status.timeframe == "1h" else M
        want = data.read(clean, status.dataset_id).filter(
            (pl.col("ts") < first) | (pl.col("ts") >= max(end, first + step)))
        assert data.read(faulty, status.dataset_id).equals(want)
        assert status.exchange_gaps == []  # the exchange has candles there: not its gap
        report = data.verify(faulty, status.dataset_id)
        assert [p for p in report.problems if p.startswith("gap:")] and \
            "from 2024-03-01 01:00" in report.problems[0]


def test_a_mine_task_puts_the_exchange_problem_in_its_heartbeat(emulator_factory,
                                                               tmp_path) -> None:
    url = emulator_factory(FAULT).url
    task = MineTask(kind="mine", exchange="binance", markets=["BTC/USDT"], timeframes=["1m"],
                    since=SINCE, until=UNTIL)
    context = TaskContext(tmp_path, "mine-btc", task)
    run_mine(context, Exchange(ccxt="binance", url=url))  # returns: `until` is reached
    beat = context.board.heartbeat("mine-btc", "mine", time.time(), 5.0)
    assert beat.last_error is not None
    assert beat.last_error.startswith(f"{BTC_1M}: binance served 10 candles with impossible "
                                      "values")
    assert beat.counters["bad_candles"] == 10



def test_a_following_miner_counts_each_refused_candle_once(emulator_factory, tmp_path) -> None:
    """A live miner asks for its holes again from time to time (holes_recheck_s), and a broken
    feed serves the same broken candles each time: refused each time, counted once."""
    now = int(time.time() * 1000) // M * M
    url = emulator_factory(f"bad_candles={now - 30 * M}/{now - 20 * M}").url
    task = MineTask(kind="mine", exchange="binance", markets=["BTC/USDT"], timeframes=["1m"],
                    since="1h")
    stop, phases = threading.Event(), ["start"]

    def on_progress(status: MineProgress) -> None:
        if status.phase != phases[-1]:
            phases.append(status.phase)
        if phases.count("live") > 3:  # back to backfill (the holes) and live again, 3 times
            stop.set()

    settings = MinerSettings(retry=RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.1),
                             close_delay_ms=100, poll_ms=200, holes_recheck_s=0.2)
    deadline = threading.Timer(90, stop.set)  # the rechecks never came: fail, do not hang
    deadline.start()
    try:
        result = run_mine_task(tmp_path, "mine-btc", task, Exchange(ccxt="binance", url=url),
                               stop_event=stop, on_progress=on_progress, settings=settings)
    finally:
        deadline.cancel()
    assert phases.count("live") > 3, phases
    (status,) = result.datasets
    assert status.bad_candles == 10, phases
    assert (status.exchange_problem or "").startswith(
        f"{BTC_1M}: binance served 10 candles with impossible values")

def mine_args(url: str, root: Path, *extra: str) -> list[str]:
    return ["mine", "--exchange", "binance", "--url", url, "--root", str(root),
            "--market", "BTC/USDT", "--timeframe", "1m", *extra]


def test_mine_summary_and_json_say_how_many_and_which_exchange(emulator_factory, tmp_path,
                                                               capsys) -> None:
    url = emulator_factory(FAULT).url
    code, out, err = run(capsys, *mine_args(url, tmp_path / "a", "--since", SINCE,
                                            "--until", UNTIL))
    assert code == 0, err
    assert "(10 refused)" in out
    assert f"warning: {BTC_1M}: binance served 10 candles with impossible values" in err
    code, out, err = run(capsys, *mine_args(url, tmp_path / "b", "--since", SINCE,
                                            "--until", UNTIL, "--json"))
    assert code == 0, err
    [dataset] = json.loads(out)["datasets"]
    assert dataset["bad_candles"] == 10 and dataset["rows_added"] == 170
    assert "binance served 10 candles" in dataset["exchange_problem"]


# ---- mine --since / --until ---------------------------------------------------------------------

@pytest.mark.parametrize("since, until, message", [
    ("2024-03-02", "2024-03-01", "--since 2024-03-02 00:00 is not before --until 2024-03-01 "
                                 "00:00: nothing to mine"),
    ("2024-03-01", "2024-03-01", "is not before --until"),
    ("2999-01-01", None, "--since 2999-01-01 00:00 is in the future"),
])
def test_mine_range_that_holds_nothing_is_a_usage_error(tmp_path, capsys, since: str,
                                                        until: str | None, message: str) -> None:
    # No exchange is asked: the URL leads nowhere.
    extra = ["--since", since, *(["--until", until] if until else [])]
    code, out, err = run(capsys, *mine_args("http://127.0.0.1:9", tmp_path, *extra))
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "data").exists()


# ---- strict strategy values -------------------------------------------------------------------

STRATEGY = """[strategy]
name = "strict"
entry_long = "close > open"
exit_long = "close < open"
size = 1.0
fee = 0.001
"""


@pytest.mark.parametrize("replace, expected", [
    (("size = 1.0", 'size = "1.0"'), ":5: strategy.size: expected a valid number (got '1.0')"),
    (("fee = 0.001", 'fee = "0.001"'), ":6: strategy.fee: expected a valid number"),
    (("size = 1.0", "size = true"), ":5: strategy.size: expected a valid number (got true)"),
    (('name = "strict"', "name = 7"), ":2: strategy.name: expected a valid string (got 7)"),
    (("size = 1.0", "size_quote = inf"), ":5: strategy.size_quote: expected a finite number"),
])
def test_strategy_values_are_typed_strictly(tmp_path: Path, replace: tuple[str, str],
                                            expected: str) -> None:
    path = tmp_path / "strategy.toml"
    with pytest.raises(UsageError) as caught:
        parse_strategy(STRATEGY.replace(*replace), source=path)
    assert f"{path}{expected}" in caught.value.message


def test_an_integer_where_a_float_is_expected_is_fine() -> None:
    strategy = parse_strategy(STRATEGY.replace("size = 1.0", "size = 1"))
    assert strategy.size == 1.0 and isinstance(strategy.size, float)


# ---- constant conditions ----------------------------------------------------------------------

def test_a_constant_condition_is_a_warning(emulator, tmp_path, capsys) -> None:
    mine(tmp_path, MineRequest("binance", ("BTC/USDT",), ("1m",), ms(SINCE), ms(UNTIL)),
         Exchange(ccxt="binance", url=emulator.url))
    constant = tmp_path / "constant.toml"
    constant.write_text(STRATEGY.replace("close > open", "close > 0")
                        .replace("close < open", "volume < 0"))
    args = ["backtest", "--exchange", "binance", "--market", "BTC/USDT", "--timeframe", "1m",
            "--root", str(tmp_path)]
    code, out, err = run(capsys, *args, str(constant), "--json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert warnings == [
        f"{constant}:3: strategy.entry_long: `close > 0` is true on every one of the 180 "
        "candles run: it does not depend on the data (a typo, or a threshold out of range?)",
        f"{constant}:4: strategy.exit_long: `volume < 0` is false on every one of the 180 "
        "candles run: it never fires (a threshold out of range, or a typo?)",
    ]
    assert err.splitlines() == [f"warning: {warning}" for warning in warnings]  # stderr too
    code, out, err = run(capsys, *args, str(constant))  # and for people
    assert code == 0 and "`close > 0` is true on every one" in err
    # A condition that depends on the data: no warning.
    varying = tmp_path / "varying.toml"
    varying.write_text(STRATEGY)
    code, out, err = run(capsys, *args, str(varying), "--json")
    assert code == 0 and json.loads(out)["warnings"] == [] and "warning" not in err


def test_a_strategy_that_never_warmed_up_says_so(emulator, tmp_path, capsys) -> None:
    """sma(500) on 180 candles has no value: one warning that says why, not a constant
    condition's guess at a typo; a constant condition that does not read it is still named."""
    mine(tmp_path, MineRequest("binance", ("BTC/USDT",), ("1m",), ms(SINCE), ms(UNTIL)),
         Exchange(ccxt="binance", url=emulator.url))
    cold = tmp_path / "cold.toml"
    cold.write_text(STRATEGY.replace('name = "strict"', 'name = "strict"\nindicators = '
                                     '["sma(500)", "rsi(14)"]')
                    .replace("close > open", "close > sma_500 AND rsi_14 < 70")
                    .replace("close < open", "volume < 0"))
    code, out, err = run(capsys, "backtest", "--exchange", "binance", "--market", "BTC/USDT",
                         "--timeframe", "1m", "--root", str(tmp_path), str(cold), "--json")
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert warnings[0] == (
        "sma(500) has no value on any of the 180 candles run: it needs 500 candles for its first "
        "value and had 180, so the strategy never warmed up and conditions that read it never "
        "fire (run over more candles: an earlier --from)")
    assert len(warnings) == 2 and "`volume < 0` is false on every one" in warnings[1]
    assert json.loads(out)["trades"] == 0


def test_as_real_processes_bad_values_are_one_message_and_exit_2(tmp_path: Path) -> None:
    """What a script sees: exit 2, the message on stderr, nothing on stdout, no traceback."""
    path = tmp_path / "zero.csv"
    path.write_text(HEADER + rows_text(make_candles(T0, 2)) + f"{T0 + 2 * M},1,2,0,0,3\n")
    imported = sfarm_process("data", "import", str(path), "--id", BTC_1M,
                             "--root", str(tmp_path))
    future = sfarm_process(*mine_args("http://127.0.0.1:9", tmp_path, "--since", "2999-01-01"))
    for result in (imported, future):
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "line 4: a price of zero or below" in imported.stderr
    assert "is in the future" in future.stderr and len(future.stderr.splitlines()) == 1
    assert not (tmp_path / "data").exists()
