"""Shell completion (issue 17, item 8): node, task and dataset names, from the inventory found
as every command finds it and from a node root's datasets; in this process through the entry
point and as a real process, as the shell runs it (`_SFARM_COMPLETE=complete_bash`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sfarm.cli.main import main
from tests.fixtures.cli import sfarm_env
from tests.fixtures.processes import PROJECT

INVENTORY = """\
version = 1

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:9"

[tasks.mine]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = "1d"

[tasks.rsi-paper]
kind = "trade"
mode = "paper"
exchange = "sim"
market = "BTC/USDT"
timeframe = "1h"
strategy = "no-such-strategy.toml"   # completion reads names only: no strategy file is read

[networks.lab.nodes.alpha]
host = "local"
tasks = ["mine"]

[networks.lab.nodes.beta]
host = "local"
tasks = ["rsi-paper"]

[networks.prod.nodes.gamma]
host = "local"
tasks = ["mine"]
"""
DATASETS = ("data/candles/sim/BTC-USDT/1h", "data/candles/sim/ETH-USDT/1h",
            "data/indicators/sim/BTC-USDT/1h/rsi_14", "mirror/alpha/candles/sim/SOL-USDT/1h")


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with ./sfarm.toml (found without -i) and a root holding datasets."""
    (tmp_path / "sfarm.toml").write_text(INVENTORY)
    for dataset in DATASETS:
        (tmp_path / "root" / dataset).mkdir(parents=True)
        (tmp_path / "root" / dataset / "_manifest.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFARM_INVENTORY", raising=False)
    return tmp_path


def _complete(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
              line: str) -> list[str]:
    """What bash would be offered for the last word of `line` (in this process)."""
    words = line.split(" ")
    monkeypatch.setenv("_SFARM_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", line)
    monkeypatch.setenv("COMP_CWORD", str(len(words) - 1))
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code in (0, None)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out.split()


def test_node_names(farm: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _complete(monkeypatch, capsys, "sfarm logs ") == ["alpha", "beta", "gamma"]
    assert _complete(monkeypatch, capsys, "sfarm logs -n prod ") == ["gamma"]
    assert _complete(monkeypatch, capsys, "sfarm status --node b") == ["beta"]
    assert _complete(monkeypatch, capsys, "sfarm data ls --node ") == ["alpha", "beta", "gamma"]


def test_task_names(farm: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _complete(monkeypatch, capsys, "sfarm logs alpha ") == ["mine", "rsi-paper"]
    assert _complete(monkeypatch, capsys, "sfarm start --task r") == ["rsi-paper"]
    assert _complete(monkeypatch, capsys, "sfarm report ") == ["mine", "rsi-paper"]


def test_the_inventory_is_found_as_every_command_finds_it(
        farm: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path_factory.mktemp("other") / "farm.toml"
    other.write_text(INVENTORY.replace("gamma", "delta"))
    assert _complete(monkeypatch, capsys, f"sfarm logs -i {other} -n prod ") == ["delta"]
    monkeypatch.setenv("SFARM_INVENTORY", str(other))
    assert _complete(monkeypatch, capsys, "sfarm logs -n prod ") == ["delta"]


def test_dataset_ids(farm: Path, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _complete(monkeypatch, capsys, "sfarm data show --root root c") == [
        "candles/sim/BTC-USDT/1h", "candles/sim/ETH-USDT/1h", "candles/sim/SOL-USDT/1h"]
    assert _complete(monkeypatch, capsys, "sfarm data verify --root root i") == [
        "indicators/sim/BTC-USDT/1h/rsi_14"]
    monkeypatch.chdir(farm / "root")  # no --root: the current directory, as the command
    assert len(_complete(monkeypatch, capsys, "sfarm data show ")) == 4


def test_nothing_to_find_completes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFARM_INVENTORY", raising=False)
    assert _complete(monkeypatch, capsys, "sfarm logs ") == []
    (tmp_path / "sfarm.toml").write_text("[networks.lab.nodes\n")  # not TOML
    assert _complete(monkeypatch, capsys, "sfarm logs ") == []
    assert _complete(monkeypatch, capsys, "sfarm data show ") == []


def test_completion_as_the_shell_runs_it(farm: Path) -> None:
    env = {**sfarm_env(), "PYTHONPATH": str(PROJECT), "_SFARM_COMPLETE": "complete_bash",
           "COMP_WORDS": "sfarm logs ", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "sfarm"], cwd=farm, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta", "gamma"]
    commands = subprocess.run([sys.executable, "-m", "sfarm"], cwd=farm, capture_output=True,
                              env={**env, "COMP_WORDS": "sfarm st", "COMP_CWORD": "1"},
                              text=True, timeout=60, check=False)
    assert commands.stdout.split() == ["start", "stop", "status"]


def test_the_completion_script(tmp_path: Path) -> None:
    env = {**sfarm_env(), "PYTHONPATH": str(PROJECT),
           "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    for shell in ("bash", "zsh", "fish"):
        result = subprocess.run([sys.executable, "-m", "sfarm", "--show-completion", shell],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "_SFARM_COMPLETE" in result.stdout, result.stdout
