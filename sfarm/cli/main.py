"""Entry point of the `sfarm` command: the typer app, its subcommands and error rendering."""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from typing import Any, TextIO, cast

import typer
from typer._click.exceptions import ClickException  # typer's own click, vendored
from typer._click.utils import PacifyFlushWrapper

from sfarm import __version__
from sfarm.cli import help_render
from sfarm.cli.console import documents_printed, err, print_json
from sfarm.cli.failure import (
    command_path,
    error_document,
    report_error,
    report_plain,
    report_usage,
    sfarm_error_document,
    usage_document,
    wants_json,
)
from sfarm.cli.group import QuotingGroup
from sfarm.errors import Interrupted, SfarmError

# The command modules, in the order `sfarm --help` lists them, and the top-level commands each
# registers (its `register(app)`; tests/test_startup_imports.py checks the two agree). `sfarm
# CMD ...` builds an app of CMD's module alone: the other modules' imports (rich's progress
# bars, the emulator's defaults, ...) and typer's build of their ~40 commands are not paid for
# one command. Help, completion and anything unrecognised get the whole app.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "inventory_cmds": ("validate", "plan", "init"),
    "farm": ("deploy", "up", "start", "stop", "restart", "down", "status", "logs"),
    "report": ("report",),
    "dashboard": ("tui",),
    "web": ("web",),
    "data": ("data",),
    "mine": ("mine",),
    "backtest": ("backtest",),
    "sim": ("sim",),
    "worker": ("worker",),
    "node": ("node",),
}
_MODULE_OF = {command: module for module, commands in COMMAND_MODULES.items()
              for command in commands}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sfarm {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Run a crypto-trading farm on one machine or many."""


@functools.cache
def build_app(modules: tuple[str, ...] = tuple(COMMAND_MODULES)) -> typer.Typer:
    """The typer app with the commands of `modules` (of COMMAND_MODULES; all by default)."""
    made = typer.Typer(
        name="sfarm",
        cls=QuotingGroup,  # option values typer refuses are quoted in the message
        help=(
            "Run a crypto-trading farm on one machine or many.\n\n"
            "One TOML inventory declares networks of nodes and the tasks they run: mine "
            "candles, compute indicators, trade. Start with:\n\n"
            "  sfarm init myfarm && cd myfarm && sfarm validate && sfarm plan"
        ),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    made.callback()(_root)
    for name in modules:
        importlib.import_module(f"sfarm.cli.{name}").register(made)
    _one_line_summaries(made)
    return made


def app_for(arguments: list[str]) -> typer.Typer:
    """The app that runs `arguments`: of the named command's module alone when the first
    argument names a command, else (help, --version, a mistyped command) the whole app, so
    that what typer says (the command list, "did you mean") is unchanged."""
    module = _MODULE_OF.get(arguments[0]) if arguments else None
    return build_app((module,)) if module is not None else build_app()


def __getattr__(name: str) -> Any:
    # `app`: the whole app (completion's command tree, tests walking every command), built
    # when first asked for.
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with its status. This is the edge: nothing escapes it but
    SystemExit. SfarmError and usage errors become their message (exit 1 or 2), Ctrl-C one line
    (130), anything else a crash log and one line saying where it is (1); with --json, stdout
    holds one JSON document whatever happened (sfarm.cli.failure)."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    help_render.install()  # typer's help and usage rendering, when it imports it
    as_json = wants_json(arguments)
    documents = documents_printed()
    document: dict[str, Any] | None = None
    app = app_for(arguments)
    try:
        status = app(args=arguments, prog_name="sfarm", standalone_mode=False)
    except Interrupted:
        err.print("interrupted", highlight=False)
        status, document = Interrupted.exit_code, error_document("interrupted")
    except SfarmError as error:
        report_error(error)
        status, document = error.exit_code, sfarm_error_document(error)
    except ClickException as error:  # bad usage, as typer/click word it
        report_usage(error)
        status, document = error.exit_code, usage_document(error)
    except typer.Abort:  # a question got no answer (stdin closed)
        report_plain("aborted: no answer to the question")
        status, document = 1, error_document("aborted: no answer to the question")
    except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing to tell it
        sys.stdout = cast(TextIO, PacifyFlushWrapper(sys.stdout))
        sys.exit(1)
    except Exception as error:
        # The edge: anything else is a bug, written to a crash log, shown as one line.
        status, document = 1, _crashed(error, arguments, app)
    if document is not None and as_json and documents_printed() == documents:
        print_json(document)
    sys.exit(status if isinstance(status, int) else 0)


def _crashed(error: Exception, arguments: list[str], app: typer.Typer) -> dict[str, Any]:
    from sfarm.cli.crash import crash_line, write_crash_log  # tempfile etc.: on a crash only

    log = write_crash_log(error, arguments)
    line = crash_line(error, command_path(typer.main.get_command(app), arguments), log)
    report_plain(line)
    return error_document(line, hint="please report it with the log file",
                          log=None if log is None else str(log))
