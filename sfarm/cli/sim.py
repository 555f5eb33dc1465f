"""`sfarm sim serve`: run the offline exchange emulator (Binance's spot REST dialect)."""

from __future__ import annotations

import errno
import os
import signal
import threading
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from sfarm.cli.console import err
from sfarm.errors import RunError, UsageError
from sfarm.sim.defaults import DEFAULT_API_KEY, DEFAULT_BALANCES, DEFAULT_SECRET
from sfarm.timepoints import BadTimePoint, parse_time_point

if TYPE_CHECKING:
    from sfarm.sim.accounts import AccountKeys

DEFAULT_PORT = 8900

SERVE_HELP = (
    "Serve the exchange emulator on HOST:PORT until SIGTERM or Ctrl-C.\n\n"
    "It speaks Binance's spot REST dialect, so an inventory exchange "
    f'{{ccxt = "binance", url = "http://127.0.0.1:{DEFAULT_PORT}"}} reaches it through '
    "unmodified ccxt: markets, klines, tickers, server time, and signed account and order "
    "endpoints for the account of --api-key and $SFARM_SIM_SECRET (by default the well-known "
    f"test account {DEFAULT_API_KEY}), or of --account-file alone. Candles are a seeded random "
    "walk: the same --seed gives the same candles and the same faults in every run. As on "
    "Binance, the still-open candle is returned partially formed: store closed candles only."
    "\n\n"
    "--faults takes comma-separated items, P a probability in 0..1: rate_limit=P[:RETRY_AFTER_S], "
    "server_error=P[:STATUS], slow=P:SECONDS, drop=P, short_page=P, maintenance=START/END (no "
    "candles in that range, ever), bad_candles=START/END (candles with impossible prices or "
    "volumes in that range, ever), scope=public|all (faults hit public market data by default)."
    "\n\nExample:\n\n"
    "  sfarm sim serve --port 8900 --faults rate_limit=0.1,slow=0.05:2,drop=0.02"
)


def _balances(items: list[str]) -> dict[str, Decimal]:
    if not items:
        return dict(DEFAULT_BALANCES)
    balances: dict[str, Decimal] = {}
    for item in items:
        asset, sep, amount = item.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal(-1)
        if not sep or not asset.strip() or not value.is_finite() or value < 0:
            raise UsageError(f"--balance {item!r}: expected ASSET=AMOUNT",
                             hint="--balance USDT=10000")
        balances[asset.strip().upper()] = value
    return balances


def _start_ms(value: str) -> int:
    from sfarm.sim.candles import ORIGIN_MS  # the emulator (numpy): when serving only

    try:
        start = parse_time_point(value).resolve()
    except BadTimePoint as error:
        raise UsageError(f"--start: {error}") from None
    if start < ORIGIN_MS:
        raise UsageError(f"--start {value!r}: the emulator's history begins on 2015-01-01")
    return start


def _account(account_file: Path | None, api_key: str) -> AccountKeys:
    """The one account served: the file's, else --api-key with $SFARM_SIM_SECRET (the secret
    comes from a file or the environment only, so it never shows in `ps`)."""
    from sfarm.sim.accounts import AccountKeys, read_account  # secrets, hashlib: when serving

    if account_file is not None:
        return read_account(account_file)
    return AccountKeys(api_key, os.environ.get("SFARM_SIM_SECRET") or DEFAULT_SECRET)


def _bind_error(host: str, port: int, error: OSError) -> RunError:
    """Why the emulator cannot listen, in one line: the line `sfarm status` shows of a deployed
    emulator (sfarm.status.services reads it from the service's log)."""
    if error.errno == errno.EADDRINUSE:
        return RunError(f"port {host}:{port} is in use by another process",
                        hint=f"stop that process (`ss -ltnp 'sport = :{port}'` names it), or "
                             f"serve on another port: --port, or for a deployed emulator its "
                             f"exchange's url in the inventory")
    return RunError(f"cannot listen on {host}:{port}: {error.strerror or error}",
                    hint="choose another --port, or --port 0 for a free one")


def serve(
    port: Annotated[int, typer.Option("--port", "-p", min=0, max=65535,
                                      help="TCP port; 0 picks a free one.")]
    = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1 unless you mean it).")]
    = "127.0.0.1",
    faults: Annotated[str | None, typer.Option(help="Faults to inject, see above.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the price walk and of the fault dice.")] = 0,
    start: Annotated[str, typer.Option(help="First candle (date, ISO time or 30d ago).")]
    = "2024-01-01",
    api_key: Annotated[str, typer.Option("--api-key", envvar="SFARM_SIM_API_KEY",
                                         help="API key of the emulated account.")]
    = DEFAULT_API_KEY,
    account_file: Annotated[Path | None, typer.Option(
        "--account-file", help="TOML file (mode 0600) with api_key and secret: the only account "
        "served (deployed emulators use one made for their node).")] = None,
    balance: Annotated[list[str] | None, typer.Option(
        help="Starting balance ASSET=AMOUNT (repeatable). Default: USDT=100000 BTC=1 ETH=10.")]
    = None,
) -> None:
    # The emulator (numpy) and the process helpers load when serving, not at every CLI start.
    from sfarm.runtime.parent import die_with_parent
    from sfarm.sim import AccountConfig, Emulator, EmulatorConfig, parse_faults

    if os.environ.get("SUPERVISOR_ENABLED"):  # a node's service: never outlive supervisord
        die_with_parent()
    keys = _account(account_file, api_key)
    plan = parse_faults(faults)
    config = EmulatorConfig(
        host=host, port=port, seed=seed, start_ms=_start_ms(start), faults=plan,
        accounts=(AccountConfig(keys.api_key, keys.secret, _balances(balance or [])),),
    )
    try:
        emulator = Emulator(config)
    except OSError as error:
        raise _bind_error(host, port, error) from None
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    emulator.start()
    err.print(f"sfarm sim: listening on {emulator.url} (seed {seed}, faults: "
              f"{plan.describe() or 'none'})", markup=False, highlight=False, soft_wrap=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emulator.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(app: typer.Typer) -> None:
    """Add `sfarm sim` and its `serve` command."""
    sim = typer.Typer(help="The offline exchange emulator (Binance spot dialect).",
                      no_args_is_help=True)
    sim.command("serve", help=SERVE_HELP)(serve)
    app.add_typer(sim, name="sim")
