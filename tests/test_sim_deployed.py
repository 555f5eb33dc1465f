"""A deployed emulator (a real local farm: supervisord runs it as a service) is a test tool that
no one else can use: it serves an account made for its node (random, 0600 in the node's
`secrets/`, kept by the next deploy), never the well-known default one, its secret on no
command line; it listens on 127.0.0.1 only; the operator's credentials for the emulated
exchange are not shipped."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest

from sfarm.exchanges import Credentials, make_exchange
from sfarm.inventory import load_inventory
from sfarm.remote.deploy import build_deployment
from sfarm.sim import DEFAULT_API_KEY, DEFAULT_SECRET
from tests.fixtures.cli import run_sfarm
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for

INVENTORY = (head("{network}") + SIM_EXCHANGE + 'credentials = "SIMOP"\n' + mine_task("1h") + """
[networks.{network}.nodes.lab]
host = "local"
tasks = ["mine"]
""")
# The operator's credentials for the emulated exchange: the well-known account, which a
# deployed emulator must refuse; deploy must not ship them either.
OPERATOR = {"SIMOP_API_KEY": DEFAULT_API_KEY, "SIMOP_SECRET": DEFAULT_SECRET}


@pytest.fixture
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "emu") as farm:
        yield farm


def deploy(farm: Farm) -> list[dict]:
    report = json.loads(run_sfarm(farm.inventory, "deploy", "--json", env=OPERATOR).stdout)
    steps: list[dict] = report["nodes"][0]["steps"]
    return steps


def serving(url: str) -> bool:
    try:
        make_exchange("binance", url=url).fetch_time()
    except ccxt.NetworkError:
        return False
    return True


def command_lines() -> list[str]:
    """What `ps` shows of every process of this machine that can be read."""
    lines = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            lines.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone meanwhile
    return lines


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* shows them) of the sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.parametrize(("exchange", "listens_on"), [
    ('url = "http://127.0.0.1:8901"', ["--host", "127.0.0.1", "--port", "8901"]),
    ('url = "http://localhost:8902"', ["--host", "127.0.0.1", "--port", "8902"]),
    ('url = "http://[::1]:8903"', ["--host", "::1", "--port", "8903"]),
    ('url = "http://10.0.0.5:8904"\nemulate_bind = "0.0.0.0"',
     ["--host", "0.0.0.0", "--port", "8904"]),
])
def test_the_emulator_service_listens_on_loopback_unless_told(
        tmp_path: Path, exchange: str, listens_on: list[str]) -> None:
    inventory = tmp_path / "sfarm.toml"
    inventory.write_text(head("emu", base_dir=False) + f"""
[exchanges.sim]
ccxt = "binance"
emulate = true
{exchange}
""" + mine_task() + """
[networks.emu.nodes.lab]
host = "local"
tasks = ["mine"]
""")
    loaded = load_inventory(inventory)
    root = tmp_path / "emu" / "lab"
    deployment = build_deployment(loaded, loaded.nodes("emu")[0], root)
    emulator = next(p for p in deployment.programs if p.name == "sim-sim")
    assert list(emulator.command[3:]) == ["sim", "serve", *listens_on, "--account-file",
                                          str(root / "secrets" / "emulator-sim.toml")]
    assert deployment.emulators == ("sim",)


@pytest.mark.slow
def test_deployed_emulator_serves_only_its_node_account_on_loopback(farm: Farm) -> None:
    first = deploy(farm)
    assert {"step": "emulator account sim", "status": "changed",
            "detail": "made secrets/emulator-sim.toml"} in first
    account = farm.root / "secrets" / "emulator-sim.toml"
    assert oct(account.stat().st_mode & 0o777) == "0o600"
    keys = tomllib.loads(account.read_text())
    assert DEFAULT_API_KEY not in keys.values() and len(keys["secret"]) >= 32
    assert not (farm.root / "secrets" / "secrets.toml").exists()  # operator's: not shipped

    url = f"http://127.0.0.1:{farm.port}"
    wait_for(lambda: serving(url), what="the emulator service")
    well_known = make_exchange("binance", url=url,
                               credentials=Credentials(DEFAULT_API_KEY, DEFAULT_SECRET))
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        well_known.fetch_balance()
    own = make_exchange("binance", url=url, credentials=Credentials(keys["api_key"],
                                                                    keys["secret"]))
    assert own.fetch_balance()["total"]["USDT"] > 0

    assert not [line for line in command_lines() if keys["secret"] in line]
    assert [line for line in command_lines() if str(account) in line]  # the file, named
    assert listening_addresses(farm.port) == {"0100007F"}  # 127.0.0.1, nothing wider

    again = deploy(farm)
    assert {"step": "emulator account sim", "status": "ok",
            "detail": "secrets/emulator-sim.toml"} in again
    assert tomllib.loads(account.read_text()) == keys
    assert own.fetch_balance()["total"]["USDT"] > 0
