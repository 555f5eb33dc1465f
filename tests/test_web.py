"""`sfarm web` as a real process, without a browser: the page and its addresses, the websocket
session and its app process, token and TLS off loopback, the secrets kept 0600 and reused, one
listener only, and no process left after SIGTERM or Ctrl-C.

Until `sfarm tui` lands each tab runs tests.fixtures.web_app (the CLI is otherwise the real
one); tests/test_web_browser.py loads the real dashboard. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import socket
import ssl
import stat
import sys
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sfarm.cli.web import _announce, dashboard_command
from sfarm.inventory.origin import NodeOrigin
from sfarm.tui.web import WebSettings
from sfarm.tui.web_access import host_name, is_loopback
from sfarm.tui.web_secrets import (
    TLS_FILE,
    TOKEN_FILE,
    TlsFiles,
    make_self_signed,
    read_or_make_token,
)
from tests.fixtures.cli import run, sfarm_process
from tests.fixtures.processes import alive
from tests.fixtures.waiting import wait_for
from tests.fixtures.web import (
    TASK,
    colon_hex,
    listening_ports,
    served_fingerprint,
    web_server,
    write_inventory,
)
from tests.fixtures.web_app import MARKER

_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    """Where the secrets go outside a node root ($XDG_CONFIG_HOME), never the real one."""
    return tmp_path / "config"


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    return write_inventory(tmp_path)


def _env(config_home: Path, **extra: str) -> dict[str, str]:
    return {"XDG_CONFIG_HOME": str(config_home), **extra}


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, str]:
    """GET `url`: status, headers, body (errors too)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20, context=_INSECURE) as response:
            return response.status, response.headers, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode("utf-8", "replace")


async def _session_text(url: str, headers: dict[str, str], until: str) -> str:
    text = ""
    async with aiohttp.ClientSession() as client, \
            client.ws_connect(url, headers=headers, ssl=_INSECURE) as websocket:
        while until not in text:
            message = await asyncio.wait_for(websocket.receive(), 60)
            if message.type == aiohttp.WSMsgType.BINARY:
                text += message.data.decode("utf-8", "replace")
            elif message.type != aiohttp.WSMsgType.TEXT:
                break
    return text


def session_text(url: str, until: str, **headers: str) -> str:
    """Open a session (the app starts), read what the app draws until `until` shows."""
    return asyncio.run(_session_text(url, headers, until))


def websocket_status(url: str, **headers: str) -> int:
    """The HTTP status a websocket handshake to `url` gets (101 when accepted)."""
    async def handshake() -> int:
        async with aiohttp.ClientSession() as client:
            try:
                async with client.ws_connect(url, headers=headers, ssl=_INSECURE):
                    return 101
            except aiohttp.WSServerHandshakeError as error:
                return error.status
    return asyncio.run(handshake())


def external_urls(page: str, origin: str) -> list[str]:
    """Every http(s)/ws(s) URL (or protocol-relative one) the page names outside `origin`."""
    bare = origin.split("://", 1)[1]
    found = re.findall(r"""(?:https?|wss?):(//[^\s"'<>)]+)|["'(](//[^\s"'<>)]+)""", page)
    urls = [a or b for a, b in found]
    return [url for url in urls if not (url == f"//{bare}" or url.startswith(f"//{bare}/"))]


def test_loopback_page_is_built_from_the_address_used(inventory: Path,
                                                      config_home: Path) -> None:
    with web_server(inventory, env=_env(config_home)) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert "This machine only" in server.output()
        assert "ssh -L" in server.output()
        status, headers, page = fetch(server.origin + "/")
        assert status == 200
        assert f'data-session-websocket-url="ws://127.0.0.1:{server.port}/ws"' in page
        assert external_urls(page, server.origin) == []
        assert "googleapis" not in page and "fonts/RobotoMono" in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        for path in re.findall(r'(?:href|src)="http://127\.0\.0\.1:\d+(/static/[^"]+)"', page):
            assert fetch(server.origin + path)[0] == 200, path  # every file it loads is here

        # The address the browser used, whatever the server is bound to.
        _, _, by_name = fetch(server.origin + "/", {"Host": f"localhost:{server.port}"})
        assert f'"ws://localhost:{server.port}/ws"' in by_name
        # No token on loopback, so only this machine's names: a rebound DNS name is refused.
        assert fetch(server.origin + "/", {"Host": f"evil.example:{server.port}"})[0] == 403
        assert fetch(server.origin + "/", {"Host": 'x"><script>'})[0] == 400
        assert fetch(server.origin + "/ws")[0] == 400  # a plain GET starts nothing
        assert not (config_home / "sfarm").exists()  # no token, no certificate made
        assert server.app_processes() == []


def test_a_session_runs_one_app_with_the_operators_environment_and_no_listener(
        inventory: Path, config_home: Path) -> None:
    agent = "/tmp/sfarm-web-test-agent.sock"
    with web_server(inventory, env=_env(config_home, SSH_AUTH_SOCK=agent)) as server:
        ws = f"ws://127.0.0.1:{server.port}/ws"
        # Another site's page may not open a session (websockets ignore CORS): no app starts.
        assert websocket_status(ws, Origin="http://evil.example") == 403
        assert server.app_processes() == []

        async def watch() -> tuple[str, list[int], set[int]]:
            text = ""
            async with aiohttp.ClientSession() as client, client.ws_connect(
                    ws + "?width=100&height=30", headers={"Origin": server.origin}) as socket:
                while f"agent={agent}" not in text:
                    message = await asyncio.wait_for(socket.receive(), 60)
                    assert message.type == aiohttp.WSMsgType.BINARY, message
                    text += message.data.decode("utf-8", "replace")
                apps = server.app_processes()
                return text, apps, listening_ports([server.process.pid, *apps])

        text, apps, ports = asyncio.run(watch())
        assert MARKER in text
        assert len(apps) == 1
        assert ports == {server.port}  # the app opened no port, the server one only
        # The tab closed: its app is asked to quit and is gone.
        wait_for(lambda: not alive(apps[0]), timeout_s=30, what="the app to end with its tab")


@pytest.mark.parametrize(("signum", "group"), [
    (signal.SIGTERM, False),  # kill, systemd
    (signal.SIGINT, False),
    (signal.SIGINT, True),  # Ctrl-C in its terminal: the dashboards get it too
], ids=["SIGTERM", "SIGINT", "Ctrl-C"])
def test_a_signal_stops_the_server_and_every_dashboard(inventory: Path, config_home: Path,
                                                       signum: int, group: bool) -> None:
    # The real `sfarm tui` (its farm not up: it shows so), two tabs of it.
    with web_server(inventory, app=None, env=_env(config_home)) as server:
        async def open_sessions_then_stop() -> list[int]:
            async with aiohttp.ClientSession() as client:
                sockets = [await client.ws_connect(f"ws://127.0.0.1:{server.port}/ws")
                           for _ in range(2)]
                for socket in sockets:
                    text = ""
                    while TASK not in text:  # the dashboard has drawn its tree
                        message = await asyncio.wait_for(socket.receive(), 60)
                        text += message.data.decode("utf-8", "replace")
                apps = server.app_processes()
                assert server.stop(signum, group=group) == 0, server.output()
                for socket in sockets:
                    await socket.close()
                return apps

        apps = asyncio.run(open_sessions_then_stop())
        assert len(apps) == 2
        assert [pid for pid in apps if alive(pid)] == []
        assert "no dashboard is left running" in server.output()
        assert "Traceback" not in server.output()
        assert "WARNING" not in server.output()  # e.g. an app reaped behind asyncio's back


def test_off_loopback_token_and_tls_are_required_and_kept(inventory: Path,
                                                          config_home: Path) -> None:
    secrets = config_home / "sfarm"
    with web_server(inventory, "--host", "0.0.0.0", env=_env(config_home)) as server:
        assert server.scheme == "https" and server.token
        assert "warning: whoever opens this page controls the farm" in server.output()
        assert "ssh -L" in server.output()
        assert server.fingerprint == colon_hex(served_fingerprint(server.port))
        token = server.token
        assert (secrets / TOKEN_FILE).read_text().strip() == token
        for name in (TOKEN_FILE, TLS_FILE):
            assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name

        # No token: nothing, not even the page's script, and no app process started.
        origin, ws = server.origin, f"wss://127.0.0.1:{server.port}/ws"
        assert fetch(origin + "/")[0] == 401
        assert fetch(origin + "/static/js/textual.js")[0] == 401
        assert websocket_status(ws) == 401
        assert fetch(origin + "/?token=not-" + token)[0] == 403
        assert websocket_status(ws, Cookie=f"sfarm_web_{server.port}=not-{token}") == 403
        assert server.app_processes() == []

        # The token once in the URL: the page, and a cookie for what the page loads next.
        status, headers, page = fetch(f"{origin}/?token={token}")
        assert status == 200
        assert f'data-session-websocket-url="wss://127.0.0.1:{server.port}/ws"' in page
        assert external_urls(page, origin) == []
        cookie = headers["Set-Cookie"]
        assert cookie.startswith(f"sfarm_web_{server.port}={token};")
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert attribute in cookie, cookie
        jar = f"sfarm_web_{server.port}={token}"
        assert fetch(origin + "/static/js/textual.js", {"Cookie": jar})[0] == 200
        assert MARKER in session_text(ws, MARKER, Cookie=jar, Origin=origin)
        first = (server.fingerprint, token)

    # The next start reuses both: pinned fingerprints and browsers' cookies stay valid.
    with web_server(inventory, "--host", "0.0.0.0", env=_env(config_home)) as again:
        assert (again.fingerprint, again.token) == first
        assert again.fingerprint == colon_hex(served_fingerprint(again.port))


def test_in_a_node_root_the_secrets_live_in_its_secrets_dir(tmp_path: Path,
                                                            config_home: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "inventory.toml").write_text(write_inventory(tmp_path).read_text())
    origin = NodeOrigin(farm="web", network="alpha", node="lab", local=True,
                        inventory_dir=str(tmp_path))
    (root / "node.json").write_bytes(origin.to_json())
    with web_server(root / "inventory.toml", "--host", "0.0.0.0", cwd=root,
                    env=_env(config_home), use_inventory=False) as server:
        assert (root / "secrets" / TOKEN_FILE).read_text().strip() == server.token
        assert stat.S_IMODE((root / "secrets" / TLS_FILE).stat().st_mode) == 0o600
        assert not (config_home / "sfarm").exists()


def test_the_operators_certificate_is_served_on_loopback_too(tmp_path: Path, inventory: Path,
                                                             config_home: Path) -> None:
    pem = make_self_signed(["operator.example", "127.0.0.1"])
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    key.write_bytes(pem[:pem.index(b"-----BEGIN CERTIFICATE")])
    cert.write_bytes(pem[pem.index(b"-----BEGIN CERTIFICATE"):])
    expected = hashlib.sha256(x509.load_pem_x509_certificate(cert.read_bytes())
                              .public_bytes(Encoding.DER)).hexdigest().upper()
    with web_server(inventory, "--cert", str(cert), "--key", str(key),
                    env=_env(config_home)) as server:
        assert server.scheme == "https" and server.token is None  # loopback: no token
        assert served_fingerprint(server.port) == expected
        assert server.fingerprint == colon_hex(expected), server.output()  # as printed
        status, _, page = fetch(server.origin + "/")
        assert status == 200 and f'"wss://127.0.0.1:{server.port}/ws"' in page


def test_a_public_url_builds_the_page_and_requires_the_token(inventory: Path,
                                                             config_home: Path) -> None:
    public = "https://farm.example/sfarm"
    with web_server(inventory, "--public-url", public, env=_env(config_home)) as server:
        assert server.url.startswith(public + "?token=")
        assert server.scheme == "https"
        local = f"http://127.0.0.1:{server.port}"  # the proxy's side: plain http on loopback
        assert fetch(local + "/")[0] == 401
        status, _, page = fetch(f"{local}/?token={server.token}")
        assert status == 200
        assert 'data-session-websocket-url="wss://farm.example/sfarm/ws"' in page
        assert "https://farm.example/sfarm/static/js/textual.js" in page


def test_bad_options_are_refused_before_serving(capsys: pytest.CaptureFixture[str],
                                                inventory: Path, tmp_path: Path) -> None:
    code, _, error = run(capsys, "web", "-i", str(inventory), "--cert", str(tmp_path / "c"))
    assert code == 2 and "--cert and --key go together" in error
    code, _, error = run(capsys, "web", "-i", str(inventory), "--public-url",
                         "http://farm.example/")
    assert code == 2 and "must be https" in error
    code, _, error = run(capsys, "web", "-i", str(inventory), "-n", "nope")
    assert code == 2 and "no network 'nope'" in error


def test_the_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    token = read_or_make_token(tmp_path / "secrets")
    assert len(token) >= 43 and read_or_make_token(tmp_path / "secrets") == token
    path = tmp_path / "secrets" / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)  # loosened by hand: tightened on the next read
    assert read_or_make_token(tmp_path / "secrets") == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_fingerprint_is_printed_as_it_is(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    # rich reads ":CD:" as an emoji code: a fingerprint must never be one.
    fingerprint = ":".join(["CD"] * 32)
    tls = TlsFiles(tmp_path / "tls.pem", tmp_path / "tls.pem", fingerprint)
    settings = WebSettings(command=("true",), host="0.0.0.0", tls=tls, token="T0k:cd:en")
    _announce(settings, 8765)
    printed = capsys.readouterr().out
    assert f"SHA-256 fingerprint {fingerprint}\n" in printed
    assert "/?token=T0k%3Acd%3Aen" in printed or "/?token=T0k:cd:en" in printed


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("LOCALHOST", True), ("0.0.0.0", False), ("::", False),
    ("10.0.0.5", False), ("node1.lan", False), ("localhost.evil.example", False),
])
def test_which_addresses_are_this_machine_only(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_the_host_of_a_host_header() -> None:
    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("[::1]:8765") == "::1"
    assert host_name("node1.lan") == "node1.lan"


def test_a_port_in_use_is_an_error_not_a_traceback(inventory: Path, config_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = sfarm_process("web", "-i", str(inventory), "--port",
                               str(taken.getsockname()[1]), env=_env(config_home), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot listen on 127.0.0.1:" in result.stderr and "Traceback" not in result.stderr


def test_each_tab_runs_this_sfarms_tui_on_the_same_inventory() -> None:
    assert dashboard_command(Path("/farm/sfarm.toml"), None, None) == (
        sys.executable, "-m", "sfarm", "tui", "-i", "/farm/sfarm.toml")
    assert dashboard_command(Path("/farm/sfarm.toml"), "alpha", 5.0)[-4:] == (
        "-n", "alpha", "--refresh", "5")
