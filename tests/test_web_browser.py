"""`sfarm web` in a real headless browser (Debian's chromium, driven by playwright): the real
dashboard (`sfarm tui`) of a real local farm shows its task table in the page, on 127.0.0.1 and
through the token and TLS of a server bound to 0.0.0.0; the page fetches nothing from outside
its own origin. All traffic goes to 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request

from tests.fixtures.browser import chromium, expose_terminals, screen_text, wait_for_line
from tests.fixtures.farm import Farm, local_farm
from tests.fixtures.inventories import SIM_EXCHANGE, head, mine_task
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import descendants, listening_ports, web_server

pytestmark = pytest.mark.slow

TASK = "btc-miner"  # a name no other word on the screen is
INVENTORY = head("{network}") + SIM_EXCHANGE + mine_task("1h", name=TASK) + f"""
[networks.{{network}}.nodes.lab]
host = "local"
tasks = ["{TASK}"]
"""


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with local_farm(INVENTORY, "alpha") as farm:
        farm.sfarm("up")
        wait_for(lambda: farm.polled_tasks()[TASK]["state"] == "running", what="the miner running")
        yield farm


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def _requests_outside(requests: list[Request], origin: str) -> list[str]:
    return [request.url for request in requests
            if not (request.url == origin or request.url.startswith(origin + "/"))]


def test_the_page_shows_the_dashboards_task_table(farm: Farm, browser: Browser,
                                                  tmp_path: Path) -> None:
    with web_server(farm.inventory, app=None,
                    env={"XDG_CONFIG_HOME": str(tmp_path)}) as server:
        page = browser.new_page()
        requests: list[Request] = []
        sockets: list[str] = []
        page.on("request", lambda request: requests.append(request))
        page.on("websocket", lambda websocket: sockets.append(websocket.url))
        expose_terminals(page)
        page.goto(server.url)
        # The task table's row: node, task, kind, state, in that order.
        row = wait_for_line(page, "lab", TASK, "mine", "running").split()
        assert row.index("lab") < row.index(TASK) < row.index("mine") < row.index("running")
        # The dashboard opens no port; the server has the one it was asked for.
        pids = [server.process.pid, *descendants(server.process.pid)]
        assert listening_ports(pids) == {server.port}
        assert _requests_outside(requests, server.origin) == [], "the page fetched elsewhere"
        assert [url.split("?")[0] for url in sockets] == [f"ws://127.0.0.1:{server.port}/ws"]
        assert len(server.app_processes()) == 1  # one dashboard for the one tab
        page.close()
        wait_for(lambda: server.app_processes() == [], timeout_s=30,
                 what="the dashboard to end with its tab")


def test_through_the_token_and_tls_of_a_server_on_every_interface(farm: Farm, browser: Browser,
                                                                   tmp_path: Path) -> None:
    # -n and --refresh reach each tab's `sfarm tui` too.
    with web_server(farm.inventory, "--host", "0.0.0.0", "-n", "alpha", "--refresh", "1",
                    app=None,
                    env={"XDG_CONFIG_HOME": str(tmp_path)}) as server:
        assert server.token is not None
        context = browser.new_context(ignore_https_errors=True)  # its certificate: self-signed
        try:
            stranger = context.new_page()
            refused = stranger.goto(server.origin + "/")
            assert refused is not None and refused.status == 401
            stranger.close()

            page = context.new_page()
            expose_terminals(page)
            page.goto(f"{server.origin}/?token={server.token}")
            wait_for_line(page, "lab", TASK, "mine", "running")
            assert "token" not in page.url  # the cookie carries it now, not the address bar
            assert server.app_processes() != []
            assert TASK in screen_text(page)
        finally:
            context.close()
