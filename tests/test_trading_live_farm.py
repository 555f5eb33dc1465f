"""A live trade task in a real local farm (supervisord, workers, the emulator as a service):
it places no order until started with `--live`, then trades on the emulator's signed endpoints
with the account deploy made for the node's emulator (the operator's credentials for an
emulated exchange play no part); its log never shows the credentials; `stop` disarms it."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator

import pytest

from sfarm.exchanges import Credentials, make_exchange
from sfarm.sim import DEFAULT_API_KEY, DEFAULT_SECRET
from sfarm.trading.client_ids import client_id_prefix
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import live_trade_task
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.slow

INVENTORY = """
version = 1

[farm]
name = "livefarm"

[defaults]
base_dir = "{base}"

[exchanges.sim]
ccxt = "binance"
url = "http://127.0.0.1:{port}"
emulate = true
credentials = "SIMFARM"

[tasks.mine]
kind = "mine"
exchange = "sim"
markets = ["BTC/USDT"]
timeframes = ["1m"]
since = "1h"
""" + live_trade_task(cash=500.0) + """

[networks.livefarm.nodes.lab]
host = "local"
tasks = ["mine", "trader"]
"""
STRATEGY = """\
[strategy]
name = "always-in"
entry_long = "close > 0"
exit_long = "close < 0"
take_profit = 0.5
fee = 0.001
"""


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "livefarm", files={"always.toml": STRATEGY}) as farm:
        yield farm


def heartbeat(farm: Farm) -> dict:
    """The trader's own heartbeat (faster to poll than `sfarm status`)."""
    try:
        return json.loads((farm.root / "run" / "trader.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def node_account(farm: Farm) -> Credentials:
    """The account deploy made for the node's emulator (the one its live tasks trade with)."""
    keys = tomllib.loads((farm.root / "secrets" / "emulator-sim.toml").read_text())
    return Credentials(keys["api_key"], keys["secret"])


def session_orders(farm: Farm) -> list[dict]:
    exchange = make_exchange("binance", url=f"http://127.0.0.1:{farm.port}",
                             credentials=node_account(farm))
    orders = exchange.fetch_orders("BTC/USDT", 0, 1000)
    return [o for o in orders if o["clientOrderId"].startswith(client_id_prefix("trader"))]


def test_live_task_trades_only_after_start_live(farm: Farm,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator's credentials for the emulated exchange: ignored (the deployed emulator
    # refuses this well-known account; the trader must use the node's).
    monkeypatch.setenv("SIMFARM_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("SIMFARM_SECRET", DEFAULT_SECRET)
    up = farm.sfarm("up")
    assert "live task trader on lab places no order" in up.stderr
    wait_for(lambda: heartbeat(farm).get("waiting_for") == "sfarm start --live",
             what="the live task refusing to trade")
    trader = farm.tasks()["trader"]
    assert trader["state"] == "running" and "not armed" in trader["last_error"]
    assert session_orders(farm) == []

    farm.sfarm("start", "--task", "trader", "--live")
    log_file = farm.root / "logs" / "trader.log"
    wait_for(lambda: len(session_orders(farm)) == 2,
             what=f"the entry and its take profit; log: {log_file.read_text()[-3000:]}")
    buy, target = session_orders(farm)
    assert (buy["side"], buy["status"], target["status"]) == ("buy", "closed", "open")
    wait_for(lambda: (heartbeat(farm).get("trade") or {}).get("position", 0) > 0,
             what="the position on the heartbeat")
    datasets = {d["id"] for d in farm.tasks()["trader"]["datasets"]}
    assert {"sessions/trader/orders", "sessions/trader/equity"} <= datasets

    log = (farm.root / "logs" / "trader.log").read_text()
    assert "bought" in log
    account_file = farm.root / "secrets" / "emulator-sim.toml"
    assert oct(account_file.stat().st_mode & 0o777) == "0o600"
    assert not (farm.root / "secrets" / "secrets.toml").exists()
    for secret in node_account(farm).secrets():
        assert secret not in log

    farm.sfarm("start", "--task", "trader")  # without --live: it runs but trades no more
    assert not (farm.root / "run" / "trader.live").exists()
    wait_for(lambda: heartbeat(farm).get("waiting_for") == "sfarm start --live",
             what="the live task disarmed")
    assert len(session_orders(farm)) == 2
