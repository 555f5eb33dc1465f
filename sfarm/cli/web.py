"""`sfarm web`: the dashboard served to browsers, one `sfarm tui` process per browser tab."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sfarm.cli.console import err, out
from sfarm.cli.options import InventoryOption, NetworkOption
from sfarm.errors import UsageError

if TYPE_CHECKING:
    from sfarm.tui.web import WebSettings
    from sfarm.tui.web_secrets import TlsFiles

DEFAULT_PORT = 8765

# typer keeps the line breaks of a docstring's later paragraphs: the help is built from
# one string per paragraph instead.
WEB_HELP = "\n\n".join([
    "Serve the dashboard to browsers: each tab runs its own `sfarm tui` on this node, which "
    "reaches the farm's nodes with your credentials (your SSH agent too), as every command run "
    "here does.",
    "[bold]Security[/]: on 127.0.0.1 (the default) only this machine can open the page, so it "
    "needs no token and no TLS; reach it from yours through an SSH tunnel. On any other "
    "address whoever opens the page controls the farm, so every request must carry a token "
    "(made once, printed at start) and the page is served over TLS (a self-signed certificate "
    "whose fingerprint is printed, or yours with --cert/--key).",
    "Examples:",
    "  [bold]sfarm web[/]  then on your machine [bold]ssh -L 8765:127.0.0.1:8765 you@node[/] "
    "and open http://127.0.0.1:8765",
    "  [bold]sfarm web --host 0.0.0.0[/]  and open the https://...?token=... URL it prints",
    "  [bold]sfarm web --host 0.0.0.0 --cert node.pem --key node-key.pem -n prod[/]",
    "Ctrl-C (or SIGTERM) stops the server and every dashboard it started.",
])


def dashboard_command(inventory: Path, network: str | None,
                      refresh: float | None) -> tuple[str, ...]:
    """The command each browser tab runs: this sfarm's `sfarm tui` on the same inventory."""
    command = [sys.executable, "-m", "sfarm", "tui", "-i", str(inventory)]
    if network is not None:
        command += ["-n", network]
    if refresh is not None:
        command += ["--refresh", f"{refresh:g}"]
    return tuple(command)


def web(
    inventory: InventoryOption = None,
    network: NetworkOption = None,
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. 127.0.0.1 (the default): this machine only, no "
                       "token, no TLS. Any other (0.0.0.0: every interface): token and TLS.")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help="TCP port; 0 picks a free one.")] = DEFAULT_PORT,
    refresh: Annotated[float | None, typer.Option(
        "--refresh", metavar="SECONDS", min=0.2,
        help="Seconds between status refreshes of each dashboard (`sfarm tui --refresh`).")]
    = None,
    public_url: Annotated[str | None, typer.Option(
        "--public-url", metavar="URL",
        help="The URL browsers use when it is not this server's own (a proxy in front, "
             "https://farm.example/); the page's addresses are then built from it.")] = None,
    cert: Annotated[Path | None, typer.Option(
        "--cert", metavar="FILE", help="Your TLS certificate (PEM), instead of a self-signed "
                                       "one; also honoured on 127.0.0.1.")] = None,
    key: Annotated[Path | None, typer.Option(
        "--key", metavar="FILE", help="The private key (PEM) of --cert.")] = None,
) -> None:
    """Serve the dashboard to browsers: one `sfarm tui` per browser tab, run on this node."""
    # The server (aiohttp, textual-serve) and the inventory load for this command only: every
    # other command's start-up would pay for them.
    from sfarm.inventory import load_inventory
    from sfarm.inventory.locate import find_node_root
    from sfarm.tui.web import DashboardServer
    from sfarm.tui.web_secrets import secrets_dir

    loaded = load_inventory(inventory)  # checked once here, not by every tab's dashboard
    if network is not None:
        loaded.select_network(network)
    node_root = loaded.path.parent if loaded.origin is not None else find_node_root()
    settings = _settings(dashboard_command(loaded.path.resolve(), network, refresh), host, port,
                         public_url, cert, key, secrets_dir(node_root))
    settings = replace(settings, title=f"sfarm: {loaded.model.farm.name}"
                       + (f" ({network})" if network else ""))
    server = DashboardServer(settings, err)
    server.serve_until_signalled(lambda bound: _announce(settings, bound))
    err.print("sfarm web stopped; no dashboard is left running")


def _settings(command: tuple[str, ...], host: str, port: int, public_url: str | None,
              cert: Path | None, key: Path | None, secrets: Path) -> WebSettings:
    """Token and TLS as the address requires: none on loopback (TLS if given a certificate),
    both elsewhere (a self-signed certificate unless given one)."""
    from yarl import URL

    from sfarm.tui.web import WebSettings
    from sfarm.tui.web_access import is_loopback
    from sfarm.tui.web_secrets import (
        certificate_names,
        operator_certificate,
        read_or_make_certificate,
        read_or_make_token,
    )

    if (cert is None) != (key is None):
        raise UsageError("--cert and --key go together",
                         hint="give your certificate and its private key, or neither (a "
                              "self-signed certificate is made when one is needed)")
    tls: TlsFiles | None = None
    if cert is not None and key is not None:
        tls = operator_certificate(cert, key)
    if public_url is not None:
        parsed = URL(public_url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise UsageError(f"--public-url {public_url!r}: expected http(s)://HOST[:PORT][/PATH]")
    settings = WebSettings(command=command, host=host, port=port, public_url=public_url, tls=tls)
    if settings.loopback_only:
        return settings
    if public_url is not None and not settings.secure:
        raise UsageError(f"--public-url {public_url!r}: other machines reach the page there, "
                         "so it must be https (its token travels with every request)")
    if tls is None and not is_loopback(host):
        tls = read_or_make_certificate(secrets, certificate_names(host))
    return WebSettings(command=command, host=host, port=port, public_url=public_url, tls=tls,
                       token=read_or_make_token(secrets))


def _announce(settings: WebSettings, port: int) -> None:
    """What the operator needs once the server listens: the URL to open (with the token), the
    certificate's fingerprint, and how exposed the page is."""
    import getpass
    import socket

    scheme = "https" if settings.tls is not None else "http"
    shown_host = settings.host
    if settings.host in ("", "0.0.0.0", "::"):
        shown_host = socket.gethostname()
    elif ":" in shown_host:
        shown_host = f"[{shown_host}]"
    url = settings.public_url or f"{scheme}://{shown_host}:{port}/"
    if settings.token is not None:
        from yarl import URL

        url = str(URL(url).update_query(token=settings.token))
    tunnel = (f"ssh -L {port}:127.0.0.1:{port} {getpass.getuser()}@{socket.gethostname()}, "
              f"then open http://127.0.0.1:{port}/")
    # Printed as they are: no markup, and no emoji codes (a fingerprint's ":CD:" is one).
    def plain(text: str) -> None:
        out.print(text, markup=False, emoji=False)

    plain(f"sfarm web: the dashboard (one `sfarm tui` per browser tab) on {url}")
    if settings.tls is not None:
        plain(f"TLS certificate {settings.tls.certificate}, "
              f"SHA-256 fingerprint {settings.tls.fingerprint}")
    if settings.loopback_only:
        plain(f"This machine only (no token needed). From yours: {tunnel}")
    else:
        err.print("[yellow]warning:[/] whoever opens this page controls the farm (start, stop, "
                  "deploy, arm live trading) with your credentials; keep the token secret "
                  "and check the certificate's fingerprint in your browser.")
        err.print(f"[dim]safer:[/] run `sfarm web` on 127.0.0.1 (the default) and tunnel: "
                  f"{escape(tunnel)}", emoji=False)
    out.print("Ctrl-C stops the server and every dashboard it started.")


def register(app: typer.Typer) -> None:
    app.command(help=WEB_HELP)(web)
