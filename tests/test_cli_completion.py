"""Shell completion (issue 17, item 8): node, task and dataset names, from the inventory found
as every command finds it and from a node root's datasets; in this process through the entry
point and as a real process, as the shell runs it (`_SFARM_COMPLETE=complete_bash`).

The process answers from a cached command tree without typer (sfarm.cli.quick_complete): its
answers are compared with typer's own, for every shell, on a corpus of command lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sfarm.cli import quick_complete
from sfarm.cli.command_tree import describe_app, unwrapped_help
from sfarm.cli.completion_cache import KEPT_TREES, cache_file
from sfarm.cli.main import app, main
from tests.fixtures.cli import sfarm_env
from tests.fixtures.processes import PROJECT

INVENTORY = """\
version = 1

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:9"
emulate = true

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
    # logs NODE: what that node runs, its emulator service included
    assert _complete(monkeypatch, capsys, "sfarm logs alpha ") == ["mine", "sim-sim"]
    assert _complete(monkeypatch, capsys, "sfarm logs beta ") == ["rsi-paper", "sim-sim"]
    assert _complete(monkeypatch, capsys, "sfarm logs -n prod gamma m") == ["mine"]
    # a node the inventory does not declare: every task (the command will name the nodes)
    assert _complete(monkeypatch, capsys, "sfarm logs omega r") == ["rsi-paper"]
    assert _complete(monkeypatch, capsys, "sfarm start --task r") == ["rsi-paper"]
    assert _complete(monkeypatch, capsys, "sfarm start --node alpha --task ") == ["mine"]
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
           "COMP_WORDS": "sfarm logs ", "COMP_CWORD": "2", "XDG_CACHE_HOME": str(farm / "cache")}
    result = subprocess.run([sys.executable, "-m", "sfarm"], cwd=farm, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alpha", "beta", "gamma"]
    cached = farm / "cache" / "sfarm"  # the tree typer answered from, kept for the next time
    assert cached.stat().st_mode & 0o777 == 0o700
    assert [path.stat().st_mode & 0o777 for path in cached.iterdir()] == [0o600]
    commands = subprocess.run([sys.executable, "-m", "sfarm"], cwd=farm, capture_output=True,
                              env={**env, "COMP_WORDS": "sfarm st", "COMP_CWORD": "1"},
                              text=True, timeout=60, check=False)
    assert commands.stdout.split() == ["start", "stop", "status"]


def test_the_completion_script(tmp_path: Path) -> None:
    env = {**sfarm_env(), "PYTHONPATH": str(PROJECT), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    for shell in ("bash", "zsh", "fish"):
        result = subprocess.run([sys.executable, "-m", "sfarm", "--show-completion", shell],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        assert "_SFARM_COMPLETE" in result.stdout, result.stdout
    # Setting completion up cached the command tree: the first Tab answers without typer.
    assert (tmp_path / "cache" / "sfarm" / cache_file().name).is_file()


# --- the quick path (sfarm.cli.quick_complete) against typer's own completion -------------------

@pytest.fixture(scope="module")
def tree() -> dict[str, Any]:
    return describe_app(app)


def _command_paths(node: dict[str, Any], path: str = "") -> Iterator[str]:
    yield path
    for name, sub in node.get("commands", {}).items():
        yield from _command_paths(sub, f"{path}{name} ")


def _corpus(tree: dict[str, Any], other: Path, every_command: bool) -> list[str]:
    """Command lines up to the cursor: names after options and as arguments, partial words,
    `=` values, quoting, `--`, unknown words; with `every_command`, each command's words and
    options too (they do not depend on the inventory)."""
    lines = [f"sfarm {path}{tail}" for path in _command_paths(tree["root"]) if every_command
             for tail in ("", "-", "--", "--n")]
    lines += [
        "sfarm st", "sfarm nosuch ", "sfarm nosuch -", "sfarm -h ",
        "sfarm logs a", "sfarm logs alpha ", "sfarm logs alpha m", "sfarm logs alpha mine ",
        "sfarm logs -n prod ", "sfarm logs -nprod ", "sfarm logs --network=prod ",
        "sfarm logs --network ", "sfarm logs --network=", "sfarm logs --network=p",
        "sfarm logs -n ", "sfarm logs -n", "sfarm logs -n prod -", "sfarm logs -n prod --n",
        "sfarm logs --bogus ", "sfarm logs -x ", "sfarm logs -- ", "sfarm logs -- -",
        "sfarm logs 'al", 'sfarm logs "alpha" ', "sfarm logs alpha mine extra ",
        f"sfarm logs -i {other} -n prod ", f"sfarm logs --inventory={other} ",
        f"sfarm logs -i{other} ", "sfarm logs -i /no/such/file ",
        "sfarm status --node ", "sfarm status --node b", "sfarm status --node=b",
        "sfarm status --json --json -", "sfarm status --json -", "sfarm status --node alpha --",
        "sfarm start --task ", "sfarm start --task r", "sfarm start --node alpha --task ",
        "sfarm report ", "sfarm report r", "sfarm report rsi-paper ",
        "sfarm data ls --node ", "sfarm data pull ", "sfarm data pull a",
        "sfarm data show ", "sfarm data show c", "sfarm data show --root root ",
        "sfarm data show --root root c", "sfarm data show --root=root c",
        "sfarm data verify --root root i", "sfarm data relayout --root root ",
        "sfarm data show --root root candles/sim/BTC-USDT/1h ",
        "sfarm data show --node alpha ", "sfarm data show -h ",
    ]
    return lines


@pytest.fixture(scope="module")
def typer_command() -> Any:
    """The app as typer runs it (`app()` builds this on every call: built once here)."""
    import typer

    return typer.main.get_command(app)


def _typer_answer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                  env: dict[str, str], command: Any = None) -> tuple[str, int]:
    """typer's own answer, its help texts on one line (the tree's: sfarm.cli.command_tree)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit) as exit_, unwrapped_help():
        if command is None:
            main([])
        else:
            command.main(args=[], prog_name="sfarm", standalone_mode=False)
    for key in env:
        monkeypatch.delenv(key)
    code = exit_.value.code
    return capsys.readouterr().out, 0 if code is None else int(code)


def _quick_answer(tree: dict[str, Any], env: dict[str, str]) -> tuple[str, int]:
    shell = env["_SFARM_COMPLETE"].partition("_")[2]
    text, status = quick_complete.answer(tree, shell, {**os.environ, **env})
    return ("" if text is None else text + "\n"), status


def _requests(line: str) -> Iterator[dict[str, str]]:
    """The environment each shell's script gives sfarm for the cursor at the end of `line`."""
    words = quick_complete.split_words(line)
    cword = len(words) if line.endswith(" ") or not words else len(words) - 1
    yield {"_SFARM_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    yield {"_SFARM_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": line}
    for action in ("get-args", "is-args"):
        yield {"_SFARM_COMPLETE": "complete_fish", "_TYPER_COMPLETE_ARGS": line,
               "_TYPER_COMPLETE_FISH_ACTION": action}


@pytest.mark.parametrize("inventory", ["found", "none", "broken", "environment"])
def test_the_quick_path_answers_as_typer(
        inventory: str, farm: Path, tree: dict[str, Any], typer_command: Any,
        tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path_factory.mktemp("other") / "farm.toml"
    other.write_text(INVENTORY.replace("gamma", "delta"))
    if inventory == "none":
        (farm / "sfarm.toml").unlink()
    elif inventory == "broken":
        (farm / "sfarm.toml").write_text("[networks.lab.nodes\n")
    elif inventory == "environment":
        monkeypatch.setenv("SFARM_INVENTORY", str(other))
    differences = []
    for line in _corpus(json.loads(json.dumps(tree)), other, every_command=inventory == "found"):
        for request in _requests(line):
            typer_says = _typer_answer(monkeypatch, capsys, request, typer_command)
            quick_says = _quick_answer(tree, request)
            if quick_says != typer_says:
                differences.append((request, typer_says, quick_says))
    assert differences == []


def test_after_version_the_quick_path_offers_no_version_line(
        farm: Path, tree: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The one deliberate difference: typer runs --version's callback while it completes and
    offers its output (`sfarm`, `0.1.0`) among the commands; the quick path offers the
    commands only."""
    request = {"_SFARM_COMPLETE": "complete_bash", "COMP_WORDS": "sfarm --version ",
               "COMP_CWORD": "2"}
    typer_says, _ = _typer_answer(monkeypatch, capsys, request)
    quick_says, _ = _quick_answer(tree, request)
    assert typer_says.startswith("sfarm 0.1.0\n")
    assert quick_says == typer_says.removeprefix("sfarm 0.1.0\n")


def test_the_corpus_reaches_every_kind_of_answer(farm: Path, tree: dict[str, Any]) -> None:
    """The comparison above means something: names, commands and options are among its
    answers, not only empty ones."""
    def bash(line: str) -> list[str]:
        words = quick_complete.split_words(line)
        env = {"_SFARM_COMPLETE": "complete_bash", "COMP_WORDS": line,
               "COMP_CWORD": str(len(words) if line.endswith(" ") else len(words) - 1)}
        return _quick_answer(tree, env)[0].split()

    assert bash("sfarm logs ") == ["alpha", "beta", "gamma"]
    assert bash("sfarm start --task r") == ["rsi-paper"]
    assert bash("sfarm data show --root root i") == ["indicators/sim/BTC-USDT/1h/rsi_14"]
    assert bash("sfarm st") == ["start", "stop", "status"]
    assert "--network" in bash("sfarm logs --")


def _process(cwd: Path, cache: Path, line: str, *python: str) -> subprocess.CompletedProcess[str]:
    env = {**sfarm_env(), "PYTHONPATH": str(PROJECT), "XDG_CACHE_HOME": str(cache),
           "_SFARM_COMPLETE": "complete_bash", "COMP_WORDS": line,
           "COMP_CWORD": str(len(line.split(" ")) - 1)}
    argv = [sys.executable, "-X", "importtime", *(python or ("-m", "sfarm"))]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result


def _imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines()
            if line.startswith("import time:")}


def _opts_sorted(tree: Any) -> Any:
    """`tree` as JSON, each option's names sorted: typer makes the help option's names from a
    set, in an order that changes from process to process (string hashing)."""
    if isinstance(tree, dict):
        return {key: sorted(value) if key == "opts" else _opts_sorted(value)
                for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [_opts_sorted(value) for value in tree]
    return tree


def test_the_cached_tree_is_the_apps_and_answers_without_typer(farm: Path) -> None:
    cache = farm / "cache"
    (cache / "sfarm").mkdir(parents=True, mode=0o700)
    others = [cache / "sfarm" / f"completion-{n:016}.json" for n in range(KEPT_TREES + 1)]
    for age, other in enumerate(others):  # trees of other code, the first one the oldest
        other.write_text(json.dumps({"format": 1, "root": {"params": [], "commands": {}}}))
        os.utime(other, ns=(age * 10**9, age * 10**9))
    first = _process(farm, cache, "sfarm logs ")  # no tree of this code: typer answers
    assert first.stdout.split() == ["alpha", "beta", "gamma"]
    assert "typer" in _imported(first)
    written = cache / "sfarm" / cache_file().name
    assert _opts_sorted(json.loads(written.read_text())) == _opts_sorted(describe_app(app))
    assert [other.exists() for other in others] == [False] + [True] * KEPT_TREES
    assert written.stat().st_mode & 0o777 == 0o600
    for python in (("-m", "sfarm"), ("-c", "from sfarm.cli.entry import main; main()")):
        again = _process(farm, cache, "sfarm logs ", *python)
        assert again.stdout.split() == ["alpha", "beta", "gamma"]
        assert not {"typer", "rich", "pydantic"} & _imported(again), python


def test_an_unreadable_cache_is_rewritten(farm: Path) -> None:
    cache = farm / "cache"
    written = cache / "sfarm" / cache_file().name
    written.parent.mkdir(parents=True)
    written.write_text("{not json")
    assert _process(farm, cache, "sfarm report ").stdout.split() == ["mine", "rsi-paper"]
    assert json.loads(written.read_text())["root"]["commands"]
