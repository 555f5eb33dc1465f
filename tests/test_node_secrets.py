"""Secrets only where needed, gone when not (issue 15, item 4): a node gets the credentials of
its live trade tasks' exchanges and nothing else, a secrets file a node no longer needs is
deleted by the next deploy, a deploy that does not have the credentials at hand leaves the
node's file as it is and says so, and supervisord and its workers start with a clean
environment (none of the operator's keys, nor their forwarded SSH agent)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfarm.inventory import load_inventory
from sfarm.remote.deploy import build_deployment
from tests.fixtures.cli import run_sfarm
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for

INVENTORY = """
version = 1

[farm]
name = "keys"

[exchanges.binance]
ccxt = "binance"
credentials = "BINANCE"

[exchanges.kraken]
ccxt = "kraken"
credentials = "KRAKEN"

[tasks.mine]
kind = "mine"
exchange = "kraken"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = "2024-01-01"

[tasks.mine-binance]
kind = "mine"
exchange = "binance"
markets = ["BTC/USDT"]
timeframes = ["1h"]
since = "2024-01-01"

[tasks.paper]
kind = "trade"
mode = "paper"
exchange = "kraken"
market = "BTC/USDT"
timeframe = "1h"
strategy = "always.toml"

[tasks.live]
kind = "trade"
mode = "live"
live = true
max_drawdown = 0.2
exchange = "binance"
market = "BTC/USDT"
timeframe = "1h"
strategy = "always.toml"

[networks.prod.nodes.miner]
host = "10.0.0.1"
tasks = ["mine", "mine-binance", "paper"]

[networks.prod.nodes.trader]
host = "10.0.0.2"
tasks = ["live"]
"""
SECRETS = "secrets/secrets.toml"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    (tmp_path / "always.toml").write_text('[strategy]\nname = "a"\nentry_long = "close > 0"\n')
    (tmp_path / "sfarm.toml").write_text(INVENTORY)
    return tmp_path / "sfarm.toml"


def _deployment(inventory: Path, node: str):  # type: ignore[no-untyped-def]
    loaded = load_inventory(inventory)
    spec = next(spec for spec in loaded.nodes("prod") if spec.name == node)
    return build_deployment(loaded, spec, Path("/srv/sfarm/prod") / node, "/usr/bin/python3")


def test_credentials_go_to_live_trading_nodes_only(inventory: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE", "KRAKEN"):
        monkeypatch.setenv(f"{name}_API_KEY", f"{name.lower()}-key")
        monkeypatch.setenv(f"{name}_SECRET", f"{name.lower()}-secret")
    miner = _deployment(inventory, "miner")  # mines and trades on paper: needs none
    assert SECRETS not in [file.path for file in miner.files] and SECRETS in miner.absent
    trader = _deployment(inventory, "trader")
    (secrets,) = [file for file in trader.files if file.path == SECRETS]
    assert secrets.mode == 0o600 and SECRETS not in trader.absent
    assert tomllib.loads(secrets.content.decode()) == {
        "BINANCE": {"api_key": "binance-key", "secret": "binance-secret"}}


def test_a_deploy_without_the_credentials_leaves_them_and_says_so(
        inventory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BINANCE_API_KEY", "BINANCE_SECRET"):
        monkeypatch.delenv(name, raising=False)
    trader = _deployment(inventory, "trader")
    assert SECRETS not in [file.path for file in trader.files]
    assert SECRETS not in trader.absent  # never deleted, never blanked
    (notice,) = trader.notices
    assert notice.startswith(f"{SECRETS} kept as it is: credentials BINANCE are not at hand")


LOCAL = head("{network}") + SIM_EXCHANGE + mine_task("1h")


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(LOCAL + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
""", "clean") as farm:
        yield farm


@pytest.mark.slow
def test_supervised_processes_start_clean_and_stale_secrets_go(farm: Farm) -> None:
    stale = farm.root / SECRETS
    stale.parent.mkdir(parents=True)
    stale.write_text('[OLD]\napi_key = "old-key"\nsecret = "old-secret"\n')
    env = {"OPERATOR_API_KEY": "must-not-leak", "SSH_AUTH_SOCK": "/tmp/agent.sock"}
    run_sfarm(farm.inventory, "up", env=env)
    assert not stale.exists()  # a mine-only node holds no credentials
    wait_for(lambda: farm.polled_tasks()["mine"]["pid"], what="the miner's pid")
    supervisord = int((farm.root / "supervisor" / "supervisord.pid").read_text())
    for pid in (supervisord, farm.tasks()["mine"]["pid"]):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert "OPERATOR_API_KEY" not in names and "SSH_AUTH_SOCK" not in names, names
        assert "PATH" in names
