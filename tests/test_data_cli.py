"""`sfarm data ls/show/verify/import`: in-process through `sfarm.cli.main.main`, plus the real
executable once for exit codes and stdout hygiene."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from sfarm import data
from sfarm.cli.aligned import WRAPPED_ROWS, print_table
from sfarm.cli.data import _columns
from sfarm.cli.readable import format_times
from sfarm.data.layout import format_ts
from tests.fixtures.cli import run
from tests.fixtures.data_helpers import T0, make_candles

BTC_1M = "candles/binance/BTC-USDT/1m"
ETH_1H = "candles/binance/ETH-USDT/1h"
SFARM = Path(sys.executable).parent / "sfarm"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data.append(tmp_path, BTC_1M, make_candles(T0, 2000))
    data.append(tmp_path, ETH_1H, make_candles(T0, 48, "1h"))
    mirror = data.dataset_dir(tmp_path, "candles/kraken/BTC-USD/1h", mirror_of="miner-2")
    # A mirror is a copy of the producer's directory (what rsync leaves).
    source = tmp_path / "elsewhere"
    data.append(source, "candles/kraken/BTC-USD/1h", make_candles(T0, 10, "1h"))
    mirror.mkdir(parents=True)
    for item in data.dataset_dir(source, "candles/kraken/BTC-USD/1h").iterdir():
        (mirror / item.name).write_bytes(item.read_bytes())
    return tmp_path


def test_ls_json_lists_own_and_mirror_datasets(root: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "ls", "--root", str(root), "--json")
    assert code == 0
    document = json.loads(out)
    listed = [(d["id"], d["node"], d["rows"], d["partitions"]) for d in document["datasets"]]
    assert listed == [(BTC_1M, None, 2000, 2), (ETH_1H, None, 48, 1),
                      ("candles/kraken/BTC-USD/1h", "miner-2", 10, 1)]
    assert document["datasets"][0]["first"] == "2024-01-01 00:00"


def test_ls_table(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "ls", "--root", str(root))
    assert code == 0
    assert "miner-2" in out and "2,000" in out and BTC_1M in out


def test_ls_defaults_to_the_current_directory(root: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    code, out, _ = run(capsys, "data", "ls", "--json")
    assert code == 0 and len(json.loads(out)["datasets"]) == 3


def test_show_json_with_tail(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "show", BTC_1M, "--root", str(root), "--tail", "3",
                       "--json")
    assert code == 0
    document = json.loads(out)
    assert document["rows"] == 2000 and document["partitions"] == 2
    assert [row["ts"] for row in document["tail"]] == [T0 + i * 60_000 for i in (1997, 1998, 1999)]
    assert document["columns"]["close"] == "Float64"


def test_show_finds_a_mirror_dataset(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "show", "candles/kraken/BTC-USD/1h", "--root", str(root))
    assert code == 0 and "mirror of miner-2" in out and "last 10 rows" in out


def test_a_dataset_mirrored_from_two_nodes_needs_one_named(
        root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kraken = "candles/kraken/BTC-USD/1h"
    second = data.dataset_dir(root, kraken, mirror_of="miner-3")
    shutil.copytree(data.dataset_dir(root, kraken, mirror_of="miner-2"), second)
    for command in ("show", "verify"):
        code, _, err = run(capsys, "data", command, kraken, "--root", str(root))
        assert code == 2
        assert f"{kraken} is not produced here but mirrored from miner-2, miner-3" in err
        assert "pick one with --mirror NODE" in err
    code, out, _ = run(capsys, "data", "show", kraken, "--root", str(root), "--mirror",
                       "miner-3", "--json")
    assert code == 0 and json.loads(out)["node"] == "miner-3"
    code, out, _ = run(capsys, "data", "verify", kraken, "--root", str(root), "--mirror",
                       "miner-3", "--json")
    assert code == 0 and [d["node"] for d in json.loads(out)["datasets"]] == ["miner-3"]
    code, _, err = run(capsys, "data", "show", kraken, "--root", str(root), "--mirror",
                       "miner-4")
    assert code == 2 and f"no dataset {kraken} under {root}" in err


def test_show_unknown_dataset_is_usage_error(root: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "show", "candles/binance/XRP-USDT/1m", "--root", str(root))
    assert code == 2 and "no dataset candles/binance/XRP-USDT/1m" in err


SHOWN_TAIL = """\
last 5 rows
time (UTC)           open     high      low    close  volume
2024-01-02 09:15  100.110  100.220  100.060  100.170      39
2024-01-02 09:16  100.120  100.170  100.070  100.120      70
2024-01-02 09:17  100.130  100.180  100.020  100.070     101
2024-01-02 09:18  100.140  100.200  100.090  100.150      31
2024-01-02 09:19  100.150  100.200  100.050  100.100      62
"""


def test_show_prints_rows_as_aligned_text(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # One line per row under its header, numbers ending where their header ends, times from
    # the left, two spaces between columns: rich's Table took ~1 ms a row (100 s for 200k).
    code, out, _ = run(capsys, "data", "show", BTC_1M, "--root", str(root), "--tail", "5")
    assert code == 0
    assert out.endswith(SHOWN_TAIL)


def test_show_prints_many_rows_one_line_each(root: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "show", BTC_1M, "--root", str(root), "--tail", "1500")
    assert code == 0
    lines = out.splitlines()
    title = lines.index("last 1500 rows")
    header, rows = lines[title + 1], lines[title + 2:]
    assert len(rows) == 1500  # more than one chunk of written lines, none lost or repeated
    assert [" ".join(line.split()[:2]) for line in rows] == [
        format_ts(T0 + minute * 60_000) for minute in range(500, 2000)]
    assert {len(line) for line in rows} == {len(header)}
    for name in ("open", "high", "low", "close", "volume"):
        end = header.index(name) + len(name)  # right-aligned under its header
        assert all(line[end - 1].isdigit() and line[end:end + 1] in ("", " ") for line in rows)


def _shown(root: Path, tail: int, width: int) -> list[str]:
    """`data show`'s table of the last `tail` rows in a terminal `width` columns wide."""
    sink = io.StringIO()
    rows = data.read_tail(root, BTC_1M, tail)
    print_table(Console(file=sink, width=width, force_terminal=True, color_system=None),
                "last rows", _columns(rows))
    return sink.getvalue().splitlines()


def test_show_in_a_terminal_wraps_only_a_few_rows_too_wide_for_it(root: Path) -> None:
    assert _shown(root, 5, 120)[1:] == SHOWN_TAIL.splitlines()[1:]  # they fit: as in a pipe
    narrow = _shown(root, 5, 40)  # rich's Table, cells wrapped within the width
    assert any("│" in line for line in narrow) and all(len(line) <= 40 for line in narrow)
    # Too many rows for rich's Table (seconds to minutes): lines the terminal folds, each of
    # the same length so that the folded parts line up too.
    many = _shown(root, WRAPPED_ROWS + 1, 40)
    assert len(many) == WRAPPED_ROWS + 3 and not any("│" in line for line in many)
    assert len({len(line) for line in many[1:]}) == 1


@given(st.lists(st.integers(min_value=-2**63, max_value=2**63 - 1)
                | st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999)
                | st.integers(min_value=0, max_value=2**41).map(lambda second: second * 1000)
                | st.none(), max_size=20))
def test_show_writes_times_as_format_ts_does(values: list[int | None]) -> None:
    # polars writes them, 20 times faster: the same text, far dates and nulls included
    series = pl.Series("ts", values, dtype=pl.Int64)
    assert format_times(series) == [format_ts(value) for value in values]


def test_verify_all_ok_then_broken(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "verify", "--root", str(root), "--json")
    assert code == 0
    document = json.loads(out)
    assert document["ok"] is True and len(document["datasets"]) == 3
    manifest = data.load_manifest(root, ETH_1H)
    assert manifest is not None
    partition = data.dataset_dir(root, ETH_1H) / manifest.partitions[0].file
    partition.write_bytes(partition.read_bytes()[:-10] + b"0123456789")
    code, out, _ = run(capsys, "data", "verify", ETH_1H, BTC_1M, "--root", str(root))
    assert code == 1
    assert "sha256 does not match" in out and "problems" in out


def test_import_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "btc.csv"
    make_candles(T0, 30).with_columns(pl.col("ts") // 1000).rename(
        {"ts": "Timestamp", "close": "Close"}).write_csv(csv)
    code, out, _ = run(capsys, "data", "import", str(csv), "--id", BTC_1M, "--root",
                       str(tmp_path), "--json")
    assert code == 0
    assert json.loads(out)["rows_added"] == 30
    code, out, _ = run(capsys, "data", "import", str(csv), "--id", BTC_1M, "--root",
                       str(tmp_path))
    assert code == 0 and "30 already stored" in out
    assert data.read(tmp_path, BTC_1M).equals(make_candles(T0, 30))


def test_import_bad_row_names_file_and_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("ts,open,high,low,close,volume\n"
                   f"{T0},1,2,0.5,1.5,3\n{T0 + 60_000},1,0.9,0.5,1.5,3\n")
    code, _, err = run(capsys, "data", "import", str(csv), "--id", BTC_1M, "--root",
                       str(tmp_path))
    assert code == 2
    assert "bad.csv" in err and "line 3" in err and "high below open or close" in err
    assert data.load_manifest(tmp_path, BTC_1M) is None


def test_real_executable_exit_code_and_clean_json(root: Path) -> None:
    (data.dataset_dir(root, BTC_1M) / "_manifest.json").unlink()
    broken = subprocess.run([SFARM, "data", "verify", "--root", root, BTC_1M, ETH_1H, "--json"],
                            check=False, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "COLUMNS": "200"})
    assert broken.returncode == 1, broken.stderr
    document = json.loads(broken.stdout)  # stdout holds the JSON document and nothing else
    assert document["ok"] is False
    assert [d["ok"] for d in document["datasets"]] == [False, True]
    assert "no _manifest.json" in document["datasets"][0]["problems"][0]


def test_verify_unknown_id_is_usage_error(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "verify", "candles/x/Y-Z/1m", "--root", str(root))
    assert code == 2 and "error: no dataset candles/x/Y-Z/1m" in err


def test_missing_root_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "data", "ls", "--root", str(tmp_path / "nope"))
    assert code == 2 and "no such directory" in err


def test_empty_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "data", "verify", "--root", str(tmp_path), "--json")
    assert code == 0 and json.loads(out) == {"root": str(tmp_path), "ok": True, "datasets": []}


def test_relayout_command_reports_each_dataset(root: Path, capsys) -> None:
    code, out, _ = run(capsys, "data", "relayout", ETH_1H, "--root", str(root), "--json")
    assert code == 0
    assert json.loads(out)["datasets"] == [{"id": ETH_1H, "changed": False}]  # already current
    code, _, err = run(capsys, "data", "relayout", "candles/binance/SOL-USDT/1h",
                       "--root", str(root))
    assert code == 2
    assert "candles/binance/SOL-USDT/1h" in err


# --- --node: a farm node's root, found from the inventory ----------------------------------------

FARM = """\
version = 1

[defaults]
base_dir = "nodes"

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:8999"
emulate = true

[tasks.mine]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
since = "2h"

[networks.prod.nodes.lab]
host = "local"
tasks = ["mine"]

[networks.prod.nodes.far]
host = "10.0.0.7"
"""


def test_node_finds_a_local_nodes_root_from_the_inventory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "farm" / "sfarm.toml"
    inventory.parent.mkdir()
    inventory.write_text(FARM, encoding="utf-8")
    lab = tmp_path / "farm" / "nodes" / "prod" / "lab"  # base_dir is the inventory's folder's
    data.append(lab, "candles/sim/BTC-USDT/1m", make_candles(T0, 30))
    node = ("--node", "lab", "-i", str(inventory))

    code, out, err = run(capsys, "data", "ls", *node, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert listed["root"] == str(lab) and [d["id"] for d in listed["datasets"]] == [
        "candles/sim/BTC-USDT/1m"]
    code, out, _ = run(capsys, "data", "show", "candles/sim/BTC-USDT/1m", *node, "--json")
    assert code == 0 and json.loads(out)["rows"] == 30

    code, _, err = run(capsys, "data", "ls", "--node", "lap", "-i", str(inventory))
    assert code == 2 and "no node 'lap' in network 'prod'" in err and "did you mean 'lab'" in err
    code, _, err = run(capsys, "data", "ls", *node, "--root", str(lab))
    assert code == 2 and "--root and --node both name a root" in err
    for command in (["data", "ls"], ["mine", "--exchange", "binance", "--market", "BTC/USDT",
                                     "--timeframe", "1m", "--since", "1d"]):
        code, _, err = run(capsys, *command, "--node", "far", "-i", str(inventory))
        assert code == 2 and "node 'far' is reached over SSH (10.0.0.7)" in err, command
        assert "sfarm data pull far --root DIR" in err

    strategy = tmp_path / "farm" / "candle.toml"
    strategy.write_text('[strategy]\nname = "candle"\nentry_long = "close > open"\n'
                        'exit_long = "close < open"\n', encoding="utf-8")
    code, out, err = run(capsys, "backtest", str(strategy), *node, "--exchange", "sim",
                         "--market", "BTC/USDT", "--timeframe", "1m", "--json")
    assert code == 0, err
    assert json.loads(out)["dataset"] == "candles/sim/BTC-USDT/1m" and len(
        json.loads(out)["equity_curve"]) == 30
