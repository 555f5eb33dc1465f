"""Entry point of the `sfarm` command: the typer app, its subcommands and error rendering."""

from __future__ import annotations

import inspect
import sys

import typer
from rich.markup import escape

from sfarm import __version__
from sfarm.cli.console import err
from sfarm.cli.group import QuotingGroup
from sfarm.errors import SfarmError
from sfarm.redact import redact

app = typer.Typer(
    name="sfarm",
    cls=QuotingGroup,  # option values typer refuses are quoted in the message
    help=(
        "Run a crypto-trading farm on one machine or many.\n\n"
        "One TOML inventory declares networks of nodes and the tasks they run: mine candles, "
        "compute indicators, trade. Start with:\n\n"
        "  sfarm init myfarm && cd myfarm && sfarm validate && sfarm plan"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sfarm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run a crypto-trading farm on one machine or many."""


def _register_commands() -> None:
    # Each command module adds its commands to `app`; this list is the single place that says
    # which commands exist, in the order `sfarm --help` shows them.
    from sfarm.cli import (
        backtest,
        dashboard,
        data,
        farm,
        inventory_cmds,
        mine,
        node,
        report,
        sim,
        web,
        worker,
    )

    for module in (inventory_cmds, farm, report, dashboard, web, data, mine, backtest, sim, worker,
                   node):
        module.register(app)
    _one_line_summaries(app)


def _one_line_summaries(group: typer.Typer) -> None:
    """Command lists show each command's first docstring paragraph; in rich markup mode typer
    keeps its source line breaks there (it joins them only in the command's own --help), so
    the list would break lines mid-sentence. Give every command that paragraph on one line."""
    for info in group.registered_commands:
        if info.short_help is None and info.callback is not None and info.callback.__doc__:
            first = inspect.cleandoc(info.callback.__doc__).split("\n\n")[0]
            info.short_help = " ".join(first.split())
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _one_line_summaries(sub.typer_instance)


_register_commands()


def report_error(error: SfarmError) -> None:
    # Messages quote TOML ([exchanges.binance]) and code: never read them as rich markup.
    err.print(f"[bold red]error:[/] {escape(redact(error.message))}", markup=True,
              highlight=False)
    if error.hint:
        err.print(f"[dim]hint:[/] {escape(redact(error.hint))}", markup=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; SfarmError becomes a message on stderr and its exit status."""
    try:
        app(args=argv, prog_name="sfarm")
    except SfarmError as error:
        report_error(error)
        sys.exit(error.exit_code)
