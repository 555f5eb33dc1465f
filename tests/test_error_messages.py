"""Errors quote what was wrong (issue 15, item 7): every kind of bad value, wherever it is given
(the inventory through `sfarm validate`, a command-line option, a dataset id), appears quoted in
the message, and a market written without its slash gets its canonical form suggested.

The broken inventories of tests/inventories/broken/ check the same through the corpus
(test_inventory_corpus.py); here each kind is fed on its own, through the entry points a person
uses, and the value is looked for in what they see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sfarm.markets import BadMarket, check_market, suggest_market
from sfarm.timeframes import UnknownTimeframe, check_timeframe
from sfarm.timepoints import BadTimePoint, parse_time_point
from tests.fixtures.cli import Run, run_here

# A valid inventory of one local node; each case replaces one value with a bad one.
INVENTORY = """\
version = 1

[exchanges.binance]
ccxt = "binance"
url = "https://api.binance.com"

[tasks.mine]
kind = "mine"
exchange = "binance"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = "2024-01-01"

[tasks.studies]
kind = "indicators"
exchange = "binance"
markets = ["BTC/USDT"]
timeframes = ["1h"]
indicators = ["rsi(14)"]
inputs = ["candles/binance/BTC-USDT/1h"]

[tasks.trader]
kind = "trade"
mode = "paper"
exchange = "binance"
market = "BTC/USDT"
timeframe = "1h"
strategy = "strategy.toml"
cash = 1000.0

[networks.prod.nodes.box]
host = "10.0.0.11"
port = 22
tasks = ["mine", "studies", "trader"]
"""

STRATEGY = """\
[strategy]
name = "always-in"
entry_long = "close > 0"
exit_long = "close < 0"
"""

# kind: (the valid text it replaces, the bad text, what the message must say)
INVENTORY_CASES = {
    "wrong type": ("port = 22", 'port = "2x2"', "got a string ('2x2')"),
    "unknown enum": ('mode = "paper"', 'mode = "papr"', "got a string ('papr')"),
    "market without slash": ('market = "BTC/USDT"', 'market = "SOLUSDT"',
                             "got 'SOLUSDT'; did you mean 'SOL/USDT'?"),
    "market in lower case": ('markets = ["BTC/USDT"]\ntimeframes = ["1h"]\nsince',
                             'markets = ["sol/usdt"]\ntimeframes = ["1h"]\nsince',
                             "got 'sol/usdt'; did you mean 'SOL/USDT'?"),
    "market quoted in bitcoin": ('market = "BTC/USDT"', 'market = "ETHBTC"',
                                 "got 'ETHBTC'; did you mean 'ETH/BTC'?"),
    "timeframe": ('timeframe = "1h"', 'timeframe = "2m"', "unknown timeframe '2m'"),
    "timeframe near miss": ('timeframe = "1h"', 'timeframe = "1H"',
                            "unknown timeframe '1H'; expected one of 1m 3m"),
    "since": ('since = "2024-01-01"', 'since = "3x"', "'3x' is not a date"),
    "since as a number": ('since = "2024-01-01"', "since = 3", "got 3"),
    "indicator spec": ('indicators = ["rsi(14)"]', 'indicators = ["rsi(abc)"]',
                       "'rsi(abc)': rsi period must be a number, got 'abc'"),
    "dataset id": ('inputs = ["candles/binance/BTC-USDT/1h"]',
                   'inputs = ["candles/binance/BTC-USDT"]',
                   "bad dataset id 'candles/binance/BTC-USDT'"),
    "negative cash": ("cash = 1000.0", "cash = -5", "expected greater than 0, got a number (-5)"),
    "zero cash": ("cash = 1000.0", "cash = 0", "expected greater than 0, got a number (0)"),
    "cash as a string": ("cash = 1000.0", 'cash = "1000"', "got a string ('1000')"),
    "port out of range": ("port = 22", "port = 70000", "got a number (70000)"),
    "empty host": ('host = "10.0.0.11"', 'host = ""', "got a string ('')"),
    "unknown exchange": ('exchange = "binance"\nmarket', 'exchange = "binanse"\nmarket',
                         "unknown exchange 'binanse'"),
    "unknown ccxt id": ('ccxt = "binance"', 'ccxt = "binanse"',
                        "'binanse' is not an exchange id ccxt knows"),
    "bad url": ('url = "https://api.binance.com"', 'url = "ftp://api.binance.com"',
                "got 'ftp://api.binance.com'"),
    "strategy suffix": ('strategy = "strategy.toml"', 'strategy = "strategy.py"',
                        "got a string ('strategy.py')"),
}


def _validate(tmp_path: Path, old: str, new: str, strategy: str = STRATEGY) -> Run:
    assert old in INVENTORY, old
    (tmp_path / "strategy.toml").write_text(strategy, encoding="utf-8")
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(INVENTORY.replace(old, new, 1), encoding="utf-8")
    return run_here("validate", "-i", str(inventory))


def test_the_base_inventory_is_valid(tmp_path: Path) -> None:
    run = _validate(tmp_path, "port = 22", "port = 22")
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("kind", list(INVENTORY_CASES))
def test_sfarm_validate_quotes_the_bad_value(tmp_path: Path, kind: str) -> None:
    old, new, says = INVENTORY_CASES[kind]
    run = _validate(tmp_path, old, new)
    assert run.returncode == 2, run.stderr
    assert "invalid inventory, 1 problem:" in run.stderr
    assert says in run.stderr


def test_a_strategy_value_is_quoted_through_the_inventory(tmp_path: Path) -> None:
    run = _validate(tmp_path, "port = 22", "port = 22", STRATEGY + "size = 0\n")
    assert run.returncode == 2
    assert "strategy.size: expected greater than 0 (got 0)" in run.stderr


def test_a_strategy_value_of_the_wrong_type_is_refused_through_the_inventory(
        tmp_path: Path) -> None:
    run = _validate(tmp_path, "port = 22", "port = 22", STRATEGY + 'size = "1.0"\n')
    assert run.returncode == 2
    assert "strategy.size: expected a valid number (got '1.0')" in run.stderr


def test_a_credentials_value_is_never_repeated(tmp_path: Path) -> None:
    """`credentials` names an environment prefix; a value that is refused there may well be
    the API key itself, and messages are printed and logged."""
    secret = "fakeTestValue0042notReal"
    run = _validate(tmp_path, 'url = "https://api.binance.com"',
                    f'url = "https://api.binance.com"\ncredentials = "{secret}"')
    assert run.returncode == 2
    assert "credentials names an environment prefix" in run.stderr
    assert secret not in run.stderr


# --- the checks themselves ------------------------------------------------------------------------


@pytest.mark.parametrize("written, meant", [
    ("SOLUSDT", "SOL/USDT"), ("solusdt", "SOL/USDT"), ("ETHBTC", "ETH/BTC"),
    ("BTCFDUSD", "BTC/FDUSD"), ("ETHBUSD", "ETH/BUSD"), ("BTCEUR", "BTC/EUR"),
    ("1000PEPEUSDC", "1000PEPE/USDC"), ("BTC-USDT", "BTC/USDT"), ("btc_usdt", "BTC/USDT"),
    ("sol/usdt", "SOL/USDT"), ("btc/usdt:usdt", "BTC/USDT:USDT"),
])
def test_a_near_miss_market_gets_its_canonical_form(written: str, meant: str) -> None:
    assert suggest_market(written) == meant
    with pytest.raises(BadMarket) as raised:
        check_market(written)
    assert str(raised.value) == ("expected a market such as BTC/USDT (BASE/QUOTE, upper case), "
                                 f"got {written!r}; did you mean {meant!r}?")


@pytest.mark.parametrize("written", ["SOLXYZ", "USDT", "BTC/", "/USDT", "", "BTC//USDT"])
def test_a_market_with_no_clear_meaning_is_quoted_without_a_guess(written: str) -> None:
    assert suggest_market(written) is None
    with pytest.raises(BadMarket, match="got " + re.escape(repr(written)) + "$"):
        check_market(written)


@pytest.mark.parametrize("market", ["BTC/USDT", "1000PEPE/USDC", "BTC/USDT:USDT", "ETH/BTC"])
def test_unified_symbols_pass(market: str) -> None:
    assert check_market(market) == market


def test_timeframe_errors_quote_and_suggest() -> None:
    assert check_timeframe("4h") == "4h"
    with pytest.raises(UnknownTimeframe, match=r"^unknown timeframe '1H'; expected one of 1m .* "
                                               r"1w; did you mean '1h'\?$"):
        check_timeframe("1H")
    with pytest.raises(UnknownTimeframe, match=r"^unknown timeframe '1M'; expected one of .*1w$"):
        check_timeframe("1M")  # a month in ccxt, not a minute: no suggestion


def test_a_time_point_of_the_wrong_type_is_quoted() -> None:
    with pytest.raises(BadTimePoint, match=r"got 3$"):
        parse_time_point(3)


# --- command-line options -------------------------------------------------------------------------


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """typer draws option errors in a box as wide as the terminal: one line per message."""
    monkeypatch.setenv("COLUMNS", "200")


def _strategy_file(tmp_path: Path) -> str:
    path = tmp_path / "strategy.toml"
    path.write_text(STRATEGY, encoding="utf-8")
    return str(path)


def test_mine_refuses_a_market_without_slash_before_any_request(tmp_path: Path) -> None:
    # The url is a closed port: were the exchange asked first, the error would be about it.
    run = run_here("mine", "--exchange", "binance", "--market", "BTC/USDT", "--market",
                   "SOLUSDT", "--timeframe", "1h", "--since", "1d", "--root", str(tmp_path),
                   "--url", "http://127.0.0.1:9", "--retries", "1")
    assert run.returncode == 2, run.stderr
    assert "--market: expected a market such as BTC/USDT (BASE/QUOTE, upper case), got " \
           "'SOLUSDT'; did you mean 'SOL/USDT'?" in run.stderr
    assert not (tmp_path / "data").exists()


def test_mine_quotes_a_bad_timeframe_and_url(tmp_path: Path) -> None:
    base = ("mine", "--exchange", "binance", "--market", "BTC/USDT", "--since", "1d",
            "--root", str(tmp_path))
    run = run_here(*base, "--timeframe", "2m")
    assert run.returncode == 2
    assert "--timeframe: unknown timeframe '2m'; expected one of 1m" in run.stderr
    run = run_here(*base, "--timeframe", "1h", "--url", "ftp://127.0.0.1")
    assert run.returncode == 2
    assert "--url: expected a base URL such as http://127.0.0.1:8900 (scheme and host), got " \
           "'ftp://127.0.0.1'" in run.stderr


@pytest.mark.parametrize("option, value, says", [
    ("--market", "SOLUSDT", "--market: expected a market such as BTC/USDT (BASE/QUOTE, upper "
                            "case), got 'SOLUSDT'; did you mean 'SOL/USDT'?"),
    ("--timeframe", "1H", "--timeframe: unknown timeframe '1H'"),
    ("--cash", "0", "--cash must be greater than 0, got 0"),
    ("--from", "3x", "--from: '3x' is not a date"),
])
def test_backtest_quotes_a_bad_option_value(tmp_path: Path, option: str, value: str,
                                            says: str) -> None:
    options = {"--exchange": "binance", "--market": "BTC/USDT", "--timeframe": "1h",
               "--root": str(tmp_path), option: value}
    run = run_here("backtest", _strategy_file(tmp_path),
                   *(part for pair in options.items() for part in pair))
    assert run.returncode == 2, run.stderr
    assert says in run.stderr


@pytest.mark.parametrize("argv, says", [
    (("backtest", "STRATEGY", "--exchange", "binance", "--market", "BTC/USDT", "--timeframe",
      "1h", "--cash", "lots"),
     "Invalid value for '--cash': expected a valid number, unable to parse string as a number "
     "(got 'lots')"),
    (("mine", "--exchange", "binance", "--market", "BTC/USDT", "--timeframe", "1h", "--since",
      "1d", "--retries", "0"),
     "Invalid value for '--retries': expected greater than or equal to 1 (got '0')"),
    (("data", "show", "candles/binance/BTC-USDT/1h", "--tail", "-3"),
     "Invalid value for '--tail': expected greater than or equal to 0 (got '-3')"),
])
def test_option_values_typer_refuses_are_quoted(tmp_path: Path, wide: None,
                                                argv: tuple[str, ...], says: str) -> None:
    argv = tuple(_strategy_file(tmp_path) if part == "STRATEGY" else part for part in argv)
    run = run_here(*argv, "--root", str(tmp_path))
    assert run.returncode == 2, run.stderr
    assert says in run.stderr


def test_report_says_its_trades_bound_before_asking_a_node(wide: None) -> None:
    # It was the node's "bad SessionRequest: trades: Input should be less than or equal to 1000".
    run = run_here("report", "rsi-paper", "--trades", "5000")
    assert run.returncode == 2, run.stderr
    assert "Invalid value for '--trades': expected less than or equal to 1000 (got '5000')" \
        in run.stderr


@pytest.mark.parametrize("dataset_id, says", [
    ("candles/binance", "bad dataset id 'candles/binance'"),
    ("candles/../etc/passwd", "bad dataset id 'candles/../etc/passwd'"),
    ("candles/binance/BTC-USDT/2m", "dataset 'candles/binance/BTC-USDT/2m': unknown timeframe "
                                    "'2m'"),
])
def test_dataset_ids_are_quoted(tmp_path: Path, dataset_id: str, says: str) -> None:
    run = run_here("data", "show", dataset_id, "--root", str(tmp_path))
    assert run.returncode == 2, run.stderr
    assert says in run.stderr


def test_the_emulator_quotes_a_start_before_its_history() -> None:
    run = run_here("sim", "serve", "--port", "0", "--start", "2010-01-01")
    assert run.returncode == 2, run.stderr
    assert "--start '2010-01-01': the emulator's history begins on 2015-01-01" in run.stderr
