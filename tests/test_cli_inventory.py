"""`sfarm validate`, `sfarm plan`, `sfarm init` as a user runs them, and every command's help.

The broken inventories are in test_inventory_corpus.py; here the valid ones, the plan document
that scripts read, the scaffold, and the option handling around them. What a script relies on
(exit status, one JSON document on stdout) runs in a real process; the rest runs the same entry
point in-process, which is ten times faster.
"""

from __future__ import annotations

import json
import socket
import tomllib
from pathlib import Path

import pytest
import typer

from sfarm.cli import main as cli_main
from sfarm.scaffold import EMULATOR_PORTS, farm_name, free_port
from tests.fixtures.cli import Run, run_here, sfarm_process
from tests.fixtures.processes import PROJECT

FARM = PROJECT / "inventory" / "farm.toml"
LOCAL = PROJECT / "inventory" / "local.toml"


def clean(run: Run) -> None:
    assert "Traceback" not in run.stderr, run.stderr


@pytest.fixture(autouse=True)
def no_inventory_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFARM_INVENTORY", raising=False)


@pytest.mark.parametrize("inventory", [LOCAL, FARM], ids=["local", "farm"])
def test_example_inventories_are_valid(inventory: Path) -> None:
    run = sfarm_process("validate", "-i", str(inventory))
    clean(run)
    assert run.returncode == 0, run.stderr
    assert f"valid: {inventory}" in run.stdout


def test_validate_json() -> None:
    run = run_here("validate", "-i", str(FARM), "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["valid"] is True
    assert document["networks"] == ["prod", "test"]
    assert document["warnings"] == []


def test_plan_json_is_one_document_with_the_contract_keys() -> None:
    run = sfarm_process("plan", "-i", str(FARM), "-n", "prod", "--json")
    clean(run)
    assert run.returncode == 0, run.stderr
    document, end = json.JSONDecoder().raw_decode(run.stdout)
    assert run.stdout[end:].strip() == ""  # nothing but the one document on stdout
    assert list(document) == ["network", "nodes", "datasets", "transfers", "problems"]
    assert document["network"] == "prod"
    assert [node["name"] for node in document["nodes"]] == \
        ["miner-binance", "miner-kraken", "quant-1", "trader-1", "trader-2"]
    assert document["nodes"][3] == {"name": "trader-1", "host": "10.0.0.31",
                                    "tasks": ["rsi-paper", "rsi-live"]}
    datasets = {entry["id"]: entry for entry in document["datasets"]}
    assert datasets["candles/binance/BTC-USDT/1h"] == {
        "id": "candles/binance/BTC-USDT/1h",
        "producer": {"node": "miner-binance", "task": "mine-binance"},
        "consumers": [{"node": "quant-1", "task": "studies-binance"},
                      {"node": "trader-1", "task": "rsi-paper"}],
    }
    transfers = document["transfers"]
    for target in ("quant-1", "trader-1"):
        assert {"dataset": "candles/binance/BTC-USDT/1h", "from": "miner-binance",
                "to": target} in transfers
    assert {"dataset": "indicators/binance/BTC-USDT/1h/rsi_14", "from": "quant-1",
            "to": "trader-1"} in transfers
    assert len(transfers) == 14
    assert document["problems"] == []


def test_plan_text_shows_nodes_tasks_and_transfers() -> None:
    run = run_here("plan", "-i", str(FARM), "-n", "prod")
    clean(run)
    assert run.returncode == 0
    for text in ("network prod", "miner-binance", "mine-binance", "trader-2", "cross-backtest",
                 "reads candles/kraken/BTC-USD/1h from miner-kraken", "transfers"):
        assert text in run.stdout, text


def test_plan_of_the_only_network_needs_no_option() -> None:
    run = run_here("plan", "-i", str(LOCAL), "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["network"] == "local" and document["transfers"] == []


def test_plan_without_network_on_a_multi_network_inventory() -> None:
    run = sfarm_process("plan", "-i", str(FARM), "--json")
    clean(run)
    assert run.returncode == 2
    assert "2 networks" in run.stderr and "-n/--network" in run.stderr
    assert "prod, test" in run.stderr
    # --json: the error is one JSON document on stdout too (issue 16, item 5)
    error = json.loads(run.stdout)["error"]
    assert "2 networks" in error["message"] and error["hint"] == "networks: prod, test"


def test_plan_of_an_unknown_network_suggests_the_near_miss() -> None:
    run = run_here("plan", "-i", str(FARM), "-n", "prd")
    clean(run)
    assert run.returncode == 2
    assert "no network 'prd'" in run.stderr and "did you mean 'prod'?" in run.stderr


def test_inventory_from_the_environment_and_the_default_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = run_here("validate")
    clean(missing)
    assert missing.returncode == 2
    assert "no inventory at sfarm.toml" in missing.stderr and "sfarm init" in missing.stderr
    monkeypatch.setenv("SFARM_INVENTORY", str(FARM))
    env_run = run_here("validate")
    assert env_run.returncode == 0, env_run.stderr


# --- init ---------------------------------------------------------------------------------------


def test_init_scaffolds_a_valid_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    farm = tmp_path / "myfarm"
    run = sfarm_process("init", str(farm))
    clean(run)
    assert run.returncode == 0, run.stderr
    assert (farm / "sfarm.toml").is_file()
    assert (farm / "strategies" / "rsi_revert.toml").is_file()
    inventory = tomllib.loads((farm / "sfarm.toml").read_text(encoding="utf-8"))
    assert inventory["farm"]["name"] == "myfarm"  # named after its directory
    port = int(inventory["exchanges"]["sim"]["url"].rsplit(":", 1)[1])
    assert port in EMULATOR_PORTS  # never the demo's 8900
    assert f"cd {farm} && sfarm validate && sfarm up --wait 180" in run.stdout
    ignored = (farm / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "secrets.toml" in ignored
    # valid as written, both by path and from inside the directory (./sfarm.toml)
    assert run_here("validate", "-i", str(farm / "sfarm.toml")).returncode == 0
    monkeypatch.chdir(farm)
    inside = run_here("plan", "--json")
    assert inside.returncode == 0, inside.stderr
    assert json.loads(inside.stdout)["nodes"]


def test_a_farm_is_named_after_its_directory_and_takes_a_free_emulator_port(
        tmp_path: Path) -> None:
    assert farm_name(tmp_path / "My Farm!") == "My-Farm"
    assert farm_name(tmp_path / "acme.prod") == "acme.prod"
    assert farm_name(Path("/")) == "farm"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port(range(port, port + 2)) == port + 1
    assert free_port(range(port, port + 1)) == port  # free again once closed


def test_init_twice_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run_here("init", str(tmp_path)).returncode == 0
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(inventory.read_text(encoding="utf-8") + "# mine\n", encoding="utf-8")
    again = sfarm_process("init", str(tmp_path))
    clean(again)
    assert again.returncode == 2
    assert "already exist" in again.stderr and "--force" in again.stderr
    assert inventory.read_text(encoding="utf-8").endswith("# mine\n")  # untouched
    forced = run_here("init", str(tmp_path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert not inventory.read_text(encoding="utf-8").endswith("# mine\n")


# --- help ---------------------------------------------------------------------------------------


def _command_paths() -> list[tuple[str, ...]]:
    """Every command the app has, groups' subcommands included (read from the app itself, so
    commands added later are checked too)."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            paths.append(path)
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(cli_main.app), ())
    return paths


COMMANDS = _command_paths()


def test_the_inventory_commands_exist() -> None:
    assert {("validate",), ("plan",), ("init",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    run = run_here(*path, "--help")
    assert run.returncode == 0, run.stderr
    assert "Example" in run.stdout
    assert "<bool>" not in run.stdout  # a flag takes no value: no type beside it


def test_root_help_starts_with_an_example() -> None:
    run = run_here("--help")
    assert run.returncode == 0
    assert "sfarm init myfarm" in run.stdout

