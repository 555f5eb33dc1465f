"""No traceback, ever, on any input; `--json` is always one JSON document (issue 16, items 4
and 5).

Every command is run over a corpus of bad inputs (inventories, strategy files, CSVs, damaged
datasets, wrong flags, missing files and directories, nonsense values) in-process through the
command line's entry point, `sfarm.cli.main.main`, once as given and once with --json. Each run
must end with an exit status SPEC allows for it (0 all good, 1 run-time failure, 2 bad usage or
an invalid inventory), print no traceback and write no crash log (a crash log is how the edge
reports a bug: an input that reaches one is a crash to fix), and with --json print exactly one
JSON document on stdout. Hypothesis feeds option values and conditions. The edge itself (an
unexpected exception, Ctrl-C) is checked with a command made to fail, in-process and in a real
process, as are a few of the corpus's inputs.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfarm import data
from sfarm.cli import main as cli_main
from tests.fixtures.cli import run, sfarm_env, sfarm_process
from tests.fixtures.data_helpers import T0, make_candles
from tests.fixtures.processes import PROJECT

BROKEN_INVENTORIES = Path(__file__).parent / "inventories" / "broken"
H1 = "candles/sim/BTC-USDT/1h"
BACKTEST = ("--exchange", "sim", "--market", "BTC/USDT", "--timeframe", "1h")
GOOD_STRATEGY = """\
[strategy]
name = "probe"
indicators = ["rsi(14)"]
entry_long = "rsi_14 < 30"
exit_long = "rsi_14 > 55"
"""
INVENTORY = """\
version = 1

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:9"

[tasks.trader]
kind = "trade"
mode = "paper"
exchange = "sim"
market = "BTC/USDT"
timeframe = "1h"
strategy = "{strategy}"

[networks.lab.nodes.box]
host = "local"
base_dir = "{base}"
tasks = ["trader"]
"""

# --- the corpus ---------------------------------------------------------------------------------
# Conditions outside the language or beyond its bounds, and ones polars would refuse late.
BAD_CONDITIONS = {
    "string literal": "close > 'abc'",
    "abs of a comparison": "ABS(close > 1) > 0",
    "abs of true": "ABS(TRUE) > 0",
    "lag beyond int64": "LAG(close, 99999999999999999999) OVER (ORDER BY ts) > 0",
    "deep parentheses": "close > " + "(" * 500 + "1" + ")" * 500,
    "long not chain": "NOT " * 2000 + "close > 1",
    "thousands of terms": "close " + "+ 1 " * 3000 + "> 0",
    "number not condition": "close + 1",
    "unknown column": "clsoe > 1",
    "a nul": "\x00",
    "comment": "close > 1 -- rest",
    "subquery": "close IN (SELECT 1)",
    "non-ascii name": "é > 1",
}
# strategy keys set to bad values (each replaces the key in GOOD_STRATEGY or is added)
BAD_STRATEGY_VALUES = {
    "size negative": "size = -1.0", "size infinite": "size = inf", "size nan": "size = nan",
    "stop loss negative": "stop_loss = -0.1", "fee over 1": "fee = 2.0",
    "unknown key": "bogus = 1", "indicator not a spec": 'indicators = ["rsi(x)"]',
    "indicator period 0": 'indicators = ["rsi(0)"]', "indicators a string": 'indicators = "rsi"',
    "name an integer": "name = 5", "entry an array": 'entry_long = ["a"]',
    "class path": 'class = "../../etc:passwd"',
}
BAD_STRATEGY_FILES: dict[str, bytes] = {
    "empty": b"", "not toml": b"[[[", "no strategy table": b"[other]\na = 1\n",
    "not utf-8": b"\x00\xff\xfe", "strategy a number": b"strategy = 5\n",
    "nested arrays": b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
}
BAD_INVENTORY_FILES: dict[str, bytes | None] = {
    "empty": b"", "not utf-8": b"\xff\xfe\x00\x01", "a directory": None, "plain text": b"hello",
    "nested arrays": b"a = " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "huge version": b"version = 99999999999999999999999\n", "nul": b"version = 1\x00\n",
}
BAD_CSVS = {
    "empty": "", "header only": "ts,open,high,low,close,volume\n",
    "garbage": "hello world\n\x01\x02", "words": "ts,open,high,low,close,volume\n1,a,b,c,d,e\n",
    "negative prices": "ts,open,high,low,close,volume\n1704067200000,-1,-1,-1,-1,-1\n",
    "nan": "ts,open,high,low,close,volume\n1704067200000,nan,nan,nan,nan,nan\n",
    "infinite": "ts,open,high,low,close,volume\n1704067200000,inf,inf,inf,inf,inf\n",
    "ts beyond year 9999": "ts,open,high,low,close,volume\n99999999999999999999999,1,1,1,1,1\n",
    "ts far future": "ts,open,high,low,close,volume\n99999999999999999,1,1,1,1,1\n",
    "negative ts": "ts,open,high,low,close,volume\n-5,1,1,1,1,1\n",
    "off grid": "ts,open,high,low,close,volume\n1704067200123,1,1,1,1,1\n",
    "bad date": "date,open,high,low,close,volume\n2024-13-45,1,1,1,1,1\n",
    "short row": "ts,open,high,low,close,volume\n1704067200000,1,1\n",
    "semicolons": "ts;open;high;low;close;volume\n1704067200000;1;1;1;1;1\n",
    "duplicate columns": "ts,ts,open,high,low,close,volume\n1,1,1,1,1,1,1\n",
    "high below low": "ts,open,high,low,close,volume\n1704067200000,5,1,10,5,1\n",
    "huge volume": "ts,open,high,low,close,volume\n1704067200000,1,1,1,1,1e400\n",
}

# Times the store cannot keep (before 1970; from 9999 on, past the 4-digit years of partition
# keys) and epoch numbers beyond int64: bad rows, exit 2 (they used to crash the import, or,
# before 1970, a later backtest).
_DATED = "date,open,high,low,close,volume\n{},1,2,0.5,1.5,10\n"
OUT_OF_RANGE_CSVS = {
    "year 999": _DATED.format("0999-01-01"),
    "year 1": _DATED.format("0001-01-01T00:00:00"),
    "year 0 in UTC": _DATED.format("0001-01-01T00:00:00+01:00"),
    "year 0": _DATED.format("0000-01-01"),
    "year 9999": _DATED.format("9999-12-31T23:59:00"),
    "year 10000 in UTC": _DATED.format("9999-12-31T23:59:00-01:00"),
    "before 1970": _DATED.format("1969-12-31T23:59:00"),
    "year 1000": _DATED.format("1000-01-01"),
    "epoch beyond int64": "ts,open,high,low,close,volume\n1e30,1,2,0.5,1.5,10\n",
    "epoch infinite": "ts,open,high,low,close,volume\ninf,1,2,0.5,1.5,10\n",
}


def _partitions(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.suffix == ".parquet")


Damage = Callable[[Path], object]  # damages the dataset directory it is given


def _damage_manifest(content: bytes) -> Damage:
    return lambda directory: (directory / "_manifest.json").write_bytes(content)


def _manifest_with(**fields: object) -> Damage:
    def damage(directory: Path) -> None:
        manifest = json.loads((directory / "_manifest.json").read_text())
        (directory / "_manifest.json").write_text(json.dumps({**manifest, **fields}))
    return damage


def _directory_instead(name_of: Callable[[Path], Path]) -> Damage:
    def damage(directory: Path) -> None:
        path = name_of(directory)
        path.unlink()
        path.mkdir()
    return damage


def _first_partition_as(frame: pl.DataFrame) -> Damage:
    return lambda directory: frame.write_parquet(_partitions(directory)[0])


DAMAGES: dict[str, Damage] = {
    "truncated partition": lambda d: _partitions(d)[0].write_bytes(
        _partitions(d)[0].read_bytes()[:100]),
    "empty partition": lambda d: _partitions(d)[0].write_bytes(b""),
    "deleted partition": lambda d: _partitions(d)[0].unlink(),
    "partition a directory": _directory_instead(lambda d: _partitions(d)[0]),
    "foreign columns": _first_partition_as(pl.DataFrame({"a": [1]})),
    "string columns": _first_partition_as(pl.DataFrame(
        {name: ["x"] for name in ("ts", "open", "high", "low", "close", "volume")})),
    "manifest garbage": _damage_manifest(b"{garbage"),
    "manifest empty": _damage_manifest(b""),
    "manifest a list": _damage_manifest(b"[]"),
    "manifest not utf-8": _damage_manifest(b"\xff\xfe\x00"),
    "manifest wrong types": _manifest_with(rows="x", first_ts="y"),
    "manifest partitions garbage": _manifest_with(partitions="abc"),
    "manifest deleted": lambda d: (d / "_manifest.json").unlink(),
    "manifest a directory": _directory_instead(lambda d: d / "_manifest.json"),
}


@dataclass(frozen=True)
class World:
    """The files the corpus points at, made once."""

    base: Path
    root: Path

    def path(self, *parts: str) -> str:
        return str(self.base.joinpath(*parts))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("corpus")
    root = base / "root"
    data.append(root, H1, make_candles(T0, 400, "1h"))
    (base / "good.toml").write_text(GOOD_STRATEGY)
    for name, damage in DAMAGES.items():
        damaged = base / "damaged" / _slug(name)
        shutil.copytree(root, damaged)
        damage(data.dataset_dir(damaged, H1))
    strategies = base / "strategies"
    strategies.mkdir()
    for name, condition in BAD_CONDITIONS.items():
        (strategies / f"{_slug(name)}.toml").write_text(
            GOOD_STRATEGY.replace('"rsi_14 < 30"', json.dumps(condition)))
    for name, line in BAD_STRATEGY_VALUES.items():
        key = line.split("=")[0].strip()
        kept = [kept for kept in GOOD_STRATEGY.splitlines() if not kept.startswith(key + " ")]
        (strategies / f"{_slug(name)}.toml").write_text("\n".join([*kept, line]) + "\n")
    for name, raw in BAD_STRATEGY_FILES.items():
        (strategies / f"{_slug(name)}.toml").write_bytes(raw)
    inventories = base / "inventories"
    inventories.mkdir()
    for strategy in strategies.iterdir():  # each bad strategy, through an inventory
        (inventories / f"with-{strategy.name}").write_text(
            INVENTORY.format(strategy=strategy, base=base / "farm"))
    for name, content in BAD_INVENTORY_FILES.items():
        path = inventories / f"{_slug(name)}.toml"
        if content is None:
            path.mkdir()
        else:
            path.write_bytes(content)
    csvs = base / "csv"
    csvs.mkdir()
    for name, text in {**BAD_CSVS, **OUT_OF_RANGE_CSVS}.items():
        (csvs / f"{_slug(name)}.csv").write_text(text)
    (csvs / "not-utf-8.csv").write_bytes(b"\xff\xfe\x00\x01garbage")
    (base / "a-file").write_text("not a directory\n")
    return World(base, root)


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # "{w}" is the corpus directory, "{root}" a sound data root
    codes: frozenset[int]  # the exit statuses SPEC allows for it

    def args(self, world: World) -> list[str]:
        return [a.replace("{w}", str(world.base)).replace("{root}", str(world.root))
                for a in self.argv]


USAGE, FAILED, EITHER, ANY = (frozenset({2}), frozenset({1}), frozenset({1, 2}),
                              frozenset({0, 1, 2}))
FARM_COMMANDS = (("plan",), ("deploy", "--dry-run"), ("up", "--dry-run"), ("start",), ("stop",),
                 ("restart",), ("down",), ("status",), ("logs", "box"), ("tui",),
                 ("web", "--port", "0"), ("data", "pull", "box"))


def _corpus() -> Iterator[Case]:
    # tests/test_inventory_corpus.py checks each broken inventory's message: here the first of
    # each family (syntax-, type-, unknown-...) goes through validate --json
    families: dict[str, Path] = {}
    for path in sorted(BROKEN_INVENTORIES.glob("*.toml")):
        families.setdefault(path.stem.split("-")[0], path)
    for path in families.values():
        yield Case(f"validate broken/{path.stem}", ("validate", "-i", str(path)), USAGE)
    for name in [*BAD_INVENTORY_FILES, "missing"]:
        inventory = f"{{w}}/inventories/{_slug(name)}.toml"
        yield Case(f"validate inventory {name}", ("validate", "-i", inventory), USAGE)
        if name in ("not utf-8", "missing"):  # every farm command loads it the same way
            for command in FARM_COMMANDS:
                yield Case(f"{command[0]} inventory {name}", (*command, "-i", inventory), USAGE)
    for name in [*BAD_CONDITIONS, *BAD_STRATEGY_VALUES, *BAD_STRATEGY_FILES]:
        strategy = f"{{w}}/strategies/{_slug(name)}.toml"
        yield Case(f"validate strategy {name}",
                   ("validate", "-i", f"{{w}}/inventories/with-{_slug(name)}.toml"), USAGE)
        yield Case(f"backtest strategy {name}",
                   ("backtest", strategy, *BACKTEST, "--root", "{root}"), USAGE)
    for name in DAMAGES:
        damaged = f"{{w}}/damaged/{_slug(name)}"
        yield Case(f"data ls {name}", ("data", "ls", "--root", damaged), ANY)
        yield Case(f"data show {name}", ("data", "show", H1, "--root", damaged), EITHER)
        # verify lists datasets by their manifests: one without is not seen (exit 0)
        yield Case(f"data verify {name}", ("data", "verify", "--root", damaged), ANY)
        yield Case(f"backtest {name}", ("backtest", "{w}/good.toml", *BACKTEST, "--root",
                                        damaged), EITHER)
    for name in [*BAD_CSVS, "not utf-8"]:
        yield Case(f"data import {name}", ("data", "import", f"{{w}}/csv/{_slug(name)}.csv",
                                           "--id", "candles/sim/BTC-USDT/1m", "--root",
                                           "{w}/import-root"), ANY)
    for name in OUT_OF_RANGE_CSVS:
        yield Case(f"data import {name}", ("data", "import", f"{{w}}/csv/{_slug(name)}.csv",
                                           "--id", "candles/imp/BTC-USDT/1m", "--root",
                                           "{w}/import-root"), USAGE)
    yield from (Case(case_id, argv, codes) for case_id, argv, codes in _FLAGS_AND_VALUES)


_FLAGS_AND_VALUES: list[tuple[str, tuple[str, ...], frozenset[int]]] = [
    ("no command", (), USAGE),
    ("unknown command", ("nosuch",), USAGE),
    ("unknown option", ("validate", "--bogus"), USAGE),
    ("option without value", ("backtest", "{w}/good.toml", "--exchange"), USAGE),
    ("missing arguments", ("backtest",), USAGE),
    ("data without subcommand", ("data",), USAGE),
    ("strategy missing", ("backtest", "{w}/nosuch.toml", *BACKTEST, "--root", "{root}"), USAGE),
    ("strategy a directory", ("backtest", "{w}", *BACKTEST, "--root", "{root}"), USAGE),
    ("root missing", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{w}/nosuch"), USAGE),
    ("root a file", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{w}/a-file"), EITHER),
    ("market without slash", ("backtest", "{w}/good.toml", "--exchange", "sim", "--market",
                              "BTCUSDT", "--timeframe", "1h", "--root", "{root}"), USAGE),
    ("timeframe unknown", ("backtest", "{w}/good.toml", "--exchange", "sim", "--market",
                           "BTC/USDT", "--timeframe", "7x", "--root", "{root}"), USAGE),
    ("exchange with dots", ("backtest", "{w}/good.toml", "--exchange", "../..", "--market",
                            "BTC/USDT", "--timeframe", "1h", "--root", "{root}"), USAGE),
    ("cash not a number", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}",
                           "--cash", "lots"), USAGE),
    ("cash nan", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}", "--cash", "nan"),
     USAGE),
    ("from after to", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}", "--from",
                       "2024-02-01", "--to", "2024-01-01"), USAGE),
    ("from not a date", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}", "--from",
                         "2024-01-01T99:00"), USAGE),
    ("data show bad id", ("data", "show", "../../etc", "--root", "{root}"), USAGE),
    ("data show absent", ("data", "show", "candles/sim/ETH-USDT/1h", "--root", "{root}"), USAGE),
    ("data show huge tail", ("data", "show", H1, "--root", "{root}", "--tail",
                             "99999999999999999999"), ANY),
    ("data show negative tail", ("data", "show", H1, "--root", "{root}", "--tail", "-1"), USAGE),
    ("backtest equity a directory", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}",
                                     "--equity", "{w}"), USAGE),
    ("backtest equity empty", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}",
                               "--equity", ""), USAGE),
    ("backtest equity on a full disk", ("backtest", "{w}/good.toml", *BACKTEST, "--root",
                                        "{root}", "--equity", "/dev/full"), FAILED),
    ("backtest equity in /proc", ("backtest", "{w}/good.toml", *BACKTEST, "--root", "{root}",
                                  "--equity", "/proc/equity.parquet"), FAILED),
    ("data ls root a file", ("data", "ls", "--root", "{w}/a-file"), USAGE),
    ("data verify unknown id", ("data", "verify", "bogus", "--root", "{root}"), USAGE),
    ("data relayout unknown", ("data", "relayout", "candles/sim/ETH-USDT/1h", "--root",
                               "{root}"), EITHER),
    ("data import root a file", ("data", "import", "{w}/csv/header-only.csv", "--id",
                                 "candles/sim/BTC-USDT/1m", "--root", "{w}/a-file"), EITHER),
    ("data import missing file", ("data", "import", "{w}/nosuch.csv", "--id",
                                  "candles/sim/BTC-USDT/1m", "--root", "{w}/import-root"),
     USAGE),
    ("data import a directory", ("data", "import", "{w}", "--id", "candles/sim/BTC-USDT/1m",
                                 "--root", "{w}/import-root"), USAGE),
    ("data import bad id", ("data", "import", "{w}/csv/header-only.csv", "--id", "bogus",
                            "--root", "{w}/import-root"), USAGE),
    ("mine since not a date", ("mine", "--exchange", "binance", "--market", "BTC/USDT",
                               "--timeframe", "1h", "--since", "x", "--root", "{w}/mined"),
     USAGE),
    ("mine infinite timeout", ("mine", "--exchange", "binance", "--market", "BTC/USDT",
                               "--timeframe", "1h", "--since", "1d", "--root", "{w}/mined",
                               "--timeout", "inf"), USAGE),
    ("mine bad url", ("mine", "--exchange", "binance", "--market", "BTC/USDT", "--timeframe",
                      "1h", "--since", "1d", "--root", "{w}/mined", "--url", "ftp://x"), USAGE),
    ("mine unknown exchange", ("mine", "--exchange", "nosuch", "--market", "BTC/USDT",
                               "--timeframe", "1h", "--since", "1d", "--root", "{w}/mined"),
     USAGE),
    ("sim port negative", ("sim", "serve", "--port", "-1"), USAGE),
    ("sim port too big", ("sim", "serve", "--port", "99999"), USAGE),
    ("sim faults unknown", ("sim", "serve", "--faults", "bogus"), USAGE),
    ("sim faults probability", ("sim", "serve", "--faults", "rate_limit=2"), USAGE),
    ("sim start before history", ("sim", "serve", "--start", "1900-01-01"), USAGE),
    ("sim balance", ("sim", "serve", "--balance", "USDT=x"), USAGE),
    ("sim account file missing", ("sim", "serve", "--account-file", "{w}/nosuch"), USAGE),
    ("init into a file", ("init", "{w}/a-file"), EITHER),
    ("init under a file", ("init", "{w}/a-file/sub"), EITHER),
    ("worker run without inventory", ("worker", "run", "--root", "{w}", "--task", "x"), USAGE),
    ("worker resolver without routes", ("worker", "resolver", "--root", "{w}"), USAGE),
    ("start resume without task", ("start", "--resume", "-i", "{w}/inventories/empty.toml"),
     USAGE),
]
CORPUS = list(_corpus())


@pytest.fixture(autouse=True)
def crash_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Crash logs land here (and SFARM_INVENTORY set by a caller does not leak in)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("SFARM_INVENTORY", raising=False)
    return tmp_path / "state" / "sfarm" / "crash"


def _crash_logs(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log")) if directory.is_dir() else []


def check(argv: list[str], codes: frozenset[int], capsys: pytest.CaptureFixture[str],
          crash_dir: Path) -> tuple[int, str, str]:
    """Run `sfarm ARGV`; assert no traceback, no crash log, an allowed exit status and, with
    --json, one JSON document on stdout."""
    code, out, err = run(capsys, *argv)
    shown = f"sfarm {' '.join(argv)}\nexit {code}\nstdout: {out[:2000]}\nstderr: {err[:2000]}"
    assert "Traceback" not in out + err, shown
    logs = _crash_logs(crash_dir)
    assert not logs, shown + "\ncrash log:\n" + logs[0].read_text()[-3000:]
    assert code in codes, shown
    if code != 0:
        assert (out + err).strip(), shown  # a failure always says something
    if "--json" in argv:
        try:
            json.loads(out)
        except ValueError as error:
            pytest.fail(f"stdout is not one JSON document ({error})\n{shown}")
    return code, out, err


def _takes_json(argv: list[str]) -> bool:
    """Whether the command `argv` names has a --json option (else it gets none: its usage
    error for --json is a case of its own)."""
    command: Any = typer.main.get_command(cli_main.app)
    for word in argv:
        commands = getattr(command, "commands", {})
        if word not in commands:
            break
        command = commands[word]
    return any("--json" in getattr(param, "opts", ()) for param in command.params)


@pytest.mark.parametrize("case", CORPUS, ids=[case.id for case in CORPUS])
def test_bad_input_is_a_message(case: Case, world: World, capsys: pytest.CaptureFixture[str],
                                crash_dir: Path) -> None:
    """Each case once, with --json where the command has it (the rendering for people is the
    same message; the document is what differs)."""
    argv = case.args(world)
    if not _takes_json(argv):
        check(argv, case.codes, capsys, crash_dir)
        return
    code, out, err = check([*argv, "--json"], case.codes, capsys, crash_dir)
    document = json.loads(out)
    if code == 0:
        return
    if argv[0] == "validate" and "error" not in document:
        # SPEC's shape for validate, with each problem located; the message on stderr too
        assert document["valid"] is False and document["problems"], document
        assert {"file", "line", "path", "message", "hint"} <= set(document["problems"][0])
        assert document["problems"][0]["message"].split(":")[0] in err
    elif "error" in document:
        assert set(document["error"]) >= {"message", "hint", "file", "line"}, document
        assert document["error"]["message"][:20] in err  # typer's box wraps long ones


@pytest.mark.parametrize("name", list(DAMAGES))
def test_repair_of_a_damaged_root_is_a_report(name: str, world: World, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              crash_dir: Path) -> None:
    """`data verify --repair` changes the root it mends: each run on a copy of its own."""
    for as_json in ([], ["--json"]):
        root = tmp_path / f"root{len(as_json)}"
        shutil.copytree(world.path("damaged", _slug(name)), root)
        check(["data", "verify", "--repair", "--root", str(root), *as_json], ANY, capsys,
              crash_dir)


def test_usage_errors_with_json_are_one_document(
        world: World, capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    """typer's own refusals too: an unknown option, a missing argument, --json given to a
    command that has none."""
    for argv, says in ((["validate", "--bogus"], "No such option: --bogus"),
                       (["backtest", "--json"], "Missing argument 'STRATEGY'"),
                       (["logs", "box", "--json"], "No such option: --json")):
        _, out, _ = check([*argv, "--json"] if "--json" not in argv else argv, USAGE,
                             capsys, crash_dir)
        error = json.loads(out)["error"]
        assert error["message"].startswith(says) and "--help" in error["hint"], error


def test_validate_reports_a_value_of_the_wrong_kind_with_the_other_problems(
        world: World, capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    """`ABS(close > 1)` (polars types it, then fails when it runs; the condition language
    refuses it: ABS takes a number): validate names it as a problem (file, line, message)
    instead of crashing."""
    inventory = world.path("inventories", "with-abs-of-a-comparison.toml")
    _, out, _ = check(["validate", "-i", inventory, "--json"], USAGE, capsys, crash_dir)
    [problem] = [problem for problem in json.loads(out)["problems"]
                 if "ABS(close > 1) > 0" in problem["message"]]
    assert problem["file"] == inventory and problem["line"] == 13
    assert problem["path"] == "tasks.trader.strategy"
    assert "ABS(close > 1) > 0" in problem["message"] and "cannot be evaluated" in \
        problem["message"]


@pytest.mark.parametrize("name", OUT_OF_RANGE_CSVS)
def test_an_import_of_times_the_store_cannot_keep_is_a_message(
        name: str, world: World, capsys: pytest.CaptureFixture[str], crash_dir: Path,
        tmp_path: Path) -> None:
    root = tmp_path / "root"
    _, _, err = check(["data", "import", world.path("csv", f"{_slug(name)}.csv"), "--id",
                       "candles/imp/BTC-USDT/1m", "--root", str(root)], USAGE, capsys, crash_dir)
    said = " ".join(err.split())  # the console may wrap the message
    assert "1 bad rows, nothing imported: line 2: time " in said, err
    assert ("time before 1970-01-01 00:00 or from 9999-01-01 00:00 UTC on" in said
            or "time not understood" in said), err
    assert not (root / "data").exists()


# --- values from hypothesis ---------------------------------------------------------------------
_HYPOTHESIS = settings(max_examples=15, deadline=None, derandomize=True,
                       suppress_health_check=[HealthCheck.function_scoped_fixture,
                                              HealthCheck.too_slow])
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@_HYPOTHESIS
@given(start=_TEXT | st.sampled_from(["30d", "2024-01-05", "0d", "-1d", "9999999999d"]),
       cash=_TEXT | st.floats().map(repr))
def test_backtest_option_values(start: str, cash: str, world: World,
                                capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    check(["backtest", world.path("good.toml"), *BACKTEST, "--root", str(world.root), "--from",
           start, "--cash", cash, "--json"], ANY, capsys, crash_dir)


@_HYPOTHESIS
@given(dataset_id=_TEXT | st.sampled_from([H1, "candles//x", "sessions/a/b"]),
       tail=st.integers(min_value=-2, max_value=2**70).map(str) | _TEXT)
def test_data_show_values(dataset_id: str, tail: str, world: World,
                          capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    check(["data", "show", dataset_id, "--root", str(world.root), "--tail", tail, "--json"],
          ANY, capsys, crash_dir)


_CONDITION_WORDS = st.sampled_from(["close", "open", "rsi_14", "ts", "1", "0", "-2.5", "1e308",
                                    "TRUE", "NULL", "AND", "OR", "NOT", "(", ")", "+", "*", "/",
                                    "%", ">", "=", "<>", "ABS(", "COALESCE(", ",", "BETWEEN",
                                    "IS", "LAG(close, 3) OVER (ORDER BY ts)", "'x'"])


@_HYPOTHESIS
@given(words=st.lists(_CONDITION_WORDS, min_size=1, max_size=12))
def test_conditions(words: list[str], world: World, capsys: pytest.CaptureFixture[str],
                    crash_dir: Path, tmp_path: Path) -> None:
    strategy = tmp_path / "generated.toml"
    strategy.write_text(GOOD_STRATEGY.replace('"rsi_14 < 30"', json.dumps(" ".join(words))))
    check(["backtest", str(strategy), *BACKTEST, "--root", str(world.root), "--json"], ANY,
          capsys, crash_dir)


# --- the edge itself -----------------------------------------------------------------------------
FAKE_SECRET = "fake-test-secret-0123"  # visibly not a credential


@pytest.fixture
def failing_ls(monkeypatch: pytest.MonkeyPatch) -> None:
    """`sfarm data ls` made to hit a bug: an exception no code expects, quoting a secret."""
    def boom(root: object) -> None:
        raise RuntimeError(f"unexpected state\nrequest https://x/api?signature={FAKE_SECRET}")
    monkeypatch.setattr(data, "list_datasets", boom)


def test_a_crash_is_one_line_and_a_private_log(failing_ls: None, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               crash_dir: Path) -> None:
    code, out, err = run(capsys, "data", "ls", "--root", str(tmp_path))
    assert code == 1 and out == ""
    [log] = _crash_logs(crash_dir)
    assert err.strip().splitlines() == [
        f"error: sfarm data ls failed unexpectedly (RuntimeError: unexpected state); this is a "
        f"bug in sfarm: the traceback is in {log}"]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(crash_dir.stat().st_mode) == 0o700
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in boom" in text
    assert f"command: sfarm data ls --root {tmp_path}" in text
    assert FAKE_SECRET not in text and "signature=***" in text


def test_a_crash_with_json_is_one_document(failing_ls: None, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           crash_dir: Path) -> None:
    code, out, err = run(capsys, "data", "ls", "--root", str(tmp_path), "--json")
    [log] = _crash_logs(crash_dir)
    error = json.loads(out)["error"]
    assert code == 1 and error["log"] == str(log) and "failed unexpectedly" in error["message"]
    assert error["file"] is None and error["line"] is None and error["hint"]
    assert len(err.strip().splitlines()) == 1


def test_a_crash_of_a_node_command_is_logged_in_the_node_root(
        failing_ls: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        crash_dir: Path) -> None:
    node_root = tmp_path / "node"
    (node_root / "logs").mkdir(parents=True)
    code, _, err = run(capsys, "data", "ls", "--root", str(node_root))
    [log] = _crash_logs(node_root / "logs" / "crash")
    assert code == 1 and str(log) in err and not _crash_logs(crash_dir)


def test_ctrl_c_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    def interrupted(root: object) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(data, "list_datasets", interrupted)
    code, out, err = run(capsys, "data", "ls", "--root", str(tmp_path), "--json")
    assert code == 130 and err.strip() == "interrupted" and not _crash_logs(crash_dir)
    assert json.loads(out) == {"error": {"message": "interrupted", "hint": None, "file": None,
                                         "line": None}}


def test_a_command_that_printed_its_document_adds_none(
        world: World, capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    """`data verify --json` of a damaged root prints its report and exits 1: no error
    document after it."""
    _, out, _ = check(["data", "verify", "--root", world.path("damaged", "truncated-partition"),
                       "--json"], FAILED, capsys, crash_dir)
    assert json.loads(out)["ok"] is False


# --- real processes -----------------------------------------------------------------------------
REAL_CASES = ["validate inventory not utf-8", "backtest strategy deep parentheses",
              "unknown option", "data show truncated partition"]


@pytest.mark.parametrize("case_id", REAL_CASES)
def test_bad_input_in_a_real_process(case_id: str, world: World, tmp_path: Path) -> None:
    [case] = [case for case in CORPUS if case.id == case_id]
    result = sfarm_process(*case.args(world), "--json",
                           env={"XDG_STATE_HOME": str(tmp_path / "state")})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode in case.codes | USAGE, result.stderr
    json.loads(result.stdout)
    assert not (tmp_path / "state").exists()


def test_a_crash_in_a_real_process(tmp_path: Path) -> None:
    """The console script's own path: a bug is a log and one line, exit 1."""
    script = ("import sys\nfrom sfarm import data\nfrom sfarm.cli.main import main\n"
              "def boom(root):\n    raise ZeroDivisionError('division by zero')\n"
              "data.list_datasets = boom\nmain(sys.argv[1:])\n")
    result = subprocess.run([sys.executable, "-c", script, "data", "ls", "--root",
                             str(tmp_path)], capture_output=True, text=True, check=False,
                            cwd=PROJECT, timeout=120,
                            env={**sfarm_env(), "XDG_STATE_HOME": str(tmp_path / "state")})
    [log] = sorted((tmp_path / "state" / "sfarm" / "crash").glob("*.log"))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: sfarm data ls failed unexpectedly (ZeroDivisionError: division by zero); this "
        f"is a bug in sfarm: the traceback is in {log}"]
    assert "ZeroDivisionError" in log.read_text() and os.stat(log).st_mode & 0o077 == 0


def test_an_error_in_a_file_names_it_in_the_document(
        world: World, capsys: pytest.CaptureFixture[str], crash_dir: Path) -> None:
    strategy = world.path("strategies", "not-toml.toml")
    _, out, _ = check(["backtest", strategy, *BACKTEST, "--root", str(world.root), "--json"],
                      USAGE, capsys, crash_dir)
    error = json.loads(out)["error"]
    assert (error["file"], error["line"]) == (strategy, 1) and "invalid TOML" in error["message"]
