"""`sfarm mine` against the emulator: the JSON document, the summary, exit statuses, and a real
`sfarm mine` process killed with SIGKILL mid-run, then run again."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from sfarm import data
from sfarm.cli.mine_progress import ProgressView
from sfarm.inventory.model import Exchange
from sfarm.mining import MineRequest, mine
from sfarm.timeframes import HOUR_MS, MINUTE_MS
from sfarm.timepoints import parse_time_point
from tests.fixtures.cli import run
from tests.fixtures.waiting import wait_for

SFARM = Path(sys.executable).parent / "sfarm"
SINCE, UNTIL = "2024-03-01", "2024-03-03"
BTC_1M = "candles/binance/BTC-USDT/1m"


def mine_args(url: str, root: Path, *extra: str) -> list[str]:
    return ["mine", "--exchange", "binance", "--url", url, "--root", str(root),
            "--since", SINCE, "--until", UNTIL, *extra]


def test_json_document(emulator, tmp_path, capsys) -> None:
    code, out, err = run(capsys, *mine_args(emulator.url, tmp_path, "--market", "BTC/USDT",
                                            "--market", "ETH/USDT", "--timeframe", "1h",
                                            "--json"))
    assert code == 0, err
    document = json.loads(out)  # stdout holds the document and nothing else
    since = parse_time_point(SINCE).resolve()
    assert [d["id"] for d in document["datasets"]] == ["candles/binance/BTC-USDT/1h",
                                                       "candles/binance/ETH-USDT/1h"]
    for dataset in document["datasets"]:
        assert {"id", "rows_added", "rows", "first_ts", "last_ts", "exchange_gaps"} <= \
            set(dataset)
        assert (dataset["rows_added"], dataset["rows"]) == (48, 48)
        assert (dataset["first_ts"], dataset["last_ts"]) == (since, since + 47 * HOUR_MS)
        assert dataset["exchange_gaps"] == []
    # Again: nothing new, resumed from the manifest.
    code, out, _ = run(capsys, *mine_args(emulator.url, tmp_path, "--market", "BTC/USDT",
                                          "--timeframe", "1h", "--json"))
    assert code == 0 and json.loads(out)["datasets"][0]["rows_added"] == 0


def test_summary_table(emulator, tmp_path, capsys) -> None:
    code, out, _ = run(capsys, *mine_args(emulator.url, tmp_path, "--market", "ETH/BTC",
                                          "--timeframe", "4h"))
    assert code == 0
    assert "candles/binance/ETH-BTC/4h" in out and "rows added" in out
    assert "2024-03-02 20:00" in out  # the last 4h candle before --until


def test_unknown_market_fails_fast_with_suggestions(emulator, tmp_path, capsys) -> None:
    # Well-formed symbols the exchange does not list: refused once its markets are loaded.
    code, out, err = run(capsys, *mine_args(emulator.url, tmp_path, "--market", "BTC/USDX",
                                            "--market", "ETH/USDTT", "--timeframe", "1h"))
    assert code == 2 and out == ""
    assert "binance has no market 'BTC/USDX', 'ETH/USDTT'" in err
    assert "did you mean BTC/USDT" in err and "did you mean ETH/USDT" in err
    assert not (tmp_path / "data").exists()


def test_a_market_without_slash_is_refused_before_the_exchange_is_asked(tmp_path, capsys
                                                                        ) -> None:
    # No emulator: the url is a closed port, never reached (issue 15, item 7).
    code, out, err = run(capsys, *mine_args("http://127.0.0.1:9", tmp_path, "--market",
                                            "ETHUSDT", "--timeframe", "1h"))
    assert code == 2 and out == ""
    assert "got 'ETHUSDT'; did you mean 'ETH/USDT'?" in err
    assert not (tmp_path / "data").exists()


def test_unsupported_timeframe_fails_fast(emulator, tmp_path, capsys) -> None:
    # kraken has no 3m candles: known from ccxt before any request (the url is never asked).
    code, _, err = run(capsys, "mine", "--exchange", "kraken", "--url", emulator.url,
                       "--root", str(tmp_path), "--market", "BTC/USD", "--timeframe", "3m",
                       "--since", SINCE)
    assert code == 2
    assert "kraken does not offer the timeframe 3m" in err and "1m 5m 15m" in err


@pytest.mark.parametrize("argv,message", [
    (["--timeframe", "2m", "--since", SINCE], "--timeframe: unknown timeframe '2m'"),
    (["--timeframe", "1h", "--since", "yesterday"], "--since: 'yesterday' is not a date"),
    (["--timeframe", "1h", "--since", SINCE, "--url", "ftp://x"], "--url: expected a base URL"
                                                                  " such as http://127.0.0.1:8900 "
                                                                  "(scheme and host), got "
                                                                  "'ftp://x'"),
])
def test_bad_usage_exits_2(tmp_path, capsys, argv: list[str], message: str) -> None:
    code, _, err = run(capsys, "mine", "--exchange", "binance", "--market", "BTC/USDT",
                       "--root", str(tmp_path), *argv)
    assert code == 2 and message in err


def test_unknown_exchange_exits_2(tmp_path, capsys) -> None:
    code, _, err = run(capsys, "mine", "--exchange", "binanse", "--market", "BTC/USDT",
                       "--timeframe", "1h", "--since", SINCE, "--root", str(tmp_path))
    assert code == 2 and "did you mean binance" in err


def test_exchange_down_exits_1(emulator_factory, tmp_path, capsys) -> None:
    broken = emulator_factory("server_error=1")
    code, _, err = run(capsys, *mine_args(broken.url, tmp_path, "--market", "BTC/USDT",
                                          "--timeframe", "1h", "--retries", "2"))
    assert code == 1
    assert "ExchangeNotAvailable" in err and "gave up after 2 attempts" in err


def _rows(root: Path) -> int:
    try:
        manifest = data.load_manifest(root, BTC_1M)
    except (OSError, ValueError):
        return 0  # caught between two files of a commit: ask again
    return manifest.rows if manifest else 0


def _kill_when(process: subprocess.Popen[bytes], root: Path, rows: int) -> None:
    wait_for(lambda: process.poll() is not None or _rows(root) >= rows,
             what=f"{rows} rows stored", interval_s=0.01)
    assert process.poll() is None, "sfarm mine ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def test_sigkill_mid_run_then_rerun_has_no_gaps_or_duplicates(emulator, emulator_factory,
                                                              tmp_path, capsys) -> None:
    since = parse_time_point("2024-02-01").resolve()
    until = since + 10 * 1440 * MINUTE_MS  # 14,400 candles, 15 pages
    node = tmp_path / "node"
    argv = ["mine", "--exchange", "binance", "--market", "BTC/USDT", "--timeframe", "1m",
            "--since", "2024-02-01", "--until", "2024-02-11", "--root", str(node)]
    slow = emulator_factory("slow=1:0.15")  # every reply late: room to kill between pages
    process = subprocess.Popen([str(SFARM), *argv, "--url", slow.url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(process, node, 3_000)
    report = data.verify(node, BTC_1M)
    assert report.ok, report.problems
    assert report.rows < 14_400

    code, out, err = run(capsys, *argv, "--url", emulator.url, "--json")
    assert code == 0, err
    document = json.loads(out)["datasets"][0]
    assert (document["rows"], document["first_ts"], document["last_ts"]) == \
        (14_400, since, until - MINUTE_MS)
    assert document["rows_added"] == 14_400 - report.rows
    report = data.verify(node, BTC_1M)
    assert report.ok and report.gaps == [], report.problems
    reference_root = tmp_path / "reference"
    mine(reference_root, MineRequest("binance", ("BTC/USDT",), ("1m",), since, until),
         Exchange(ccxt="binance", url=emulator.url))
    assert data.read(node, BTC_1M).equals(data.read(reference_root, BTC_1M))


def test_dataset_failure_prints_the_document_and_exits_1(emulator_factory, tmp_path,
                                                         capsys) -> None:
    going = emulator_factory("slow=1:0.1")

    def close_after_first_page() -> None:
        try:
            wait_for(lambda: _rows(tmp_path) > 0, what="the first page", interval_s=0.01)
        finally:
            going.close()

    watcher = threading.Thread(target=close_after_first_page)
    watcher.start()
    code, out, err = run(capsys, *mine_args(going.url, tmp_path, "--market", "BTC/USDT",
                                            "--timeframe", "1m", "--retries", "2", "--json"))
    watcher.join()
    assert code == 1
    dataset = json.loads(out)["datasets"][0]  # the document still comes, on stdout only
    assert dataset["phase"] == "failed" and 0 < dataset["rows"] < 2880
    assert "1 of 1 datasets failed" in err and "run the same command again" in err


def test_progress_bars_on_a_terminal(emulator, tmp_path) -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True, width=100)
    view = ProgressView(terminal)
    request = MineRequest("binance", ("BTC/USDT",), ("1m", "1h"),
                          parse_time_point(SINCE).resolve(), parse_time_point(UNTIL).resolve())
    with view.progress:
        mine(tmp_path, request, Exchange(ccxt="binance", url=emulator.url),
             on_progress=view.update)
    screen = terminal.file.getvalue()  # type: ignore[attr-defined]
    assert "candles/binance/BTC-USDT/1m" in screen and "2,880/2,880" in screen
    assert "48/48" in screen and "/s" in screen
