"""How a command that failed tells it: one message on stderr for people and, when the command
was given --json, one JSON document on stdout for scripts (SPEC: `--json` prints one JSON
document on stdout and nothing else there, errors included).

The error document is `{"error": {"message", "hint", "file", "line"}}` (plus `problems` for an
invalid inventory, `log` for a crash); a command that printed its own document before failing
(`up --json --wait` that timed out, `validate --json` with its problems) gets no second one.
Pure but for printing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from typer._click.core import Command
from typer._click.exceptions import ClickException  # typer's own click, vendored
from typer.core import TyperGroup

from sfarm.cli.console import err
from sfarm.cli.help_render import load_rich_utils
from sfarm.errors import SfarmError

if TYPE_CHECKING:
    from sfarm.inventory.problems import Problem


def redact(text: str) -> str:
    """sfarm.redact.redact, loaded on a failure only (its patterns, logging): a command that
    succeeds, `sfarm --help` first, does not pay for them."""
    from sfarm.redact import redact as masked

    return masked(text)


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for --json (before a `--` that ends the options)."""
    for argument in argv:
        if argument == "--":
            return False
        if argument == "--json":
            return True
    return False


def command_path(root: Command, argv: Sequence[str]) -> str:
    """`sfarm data show`: the command `argv` names, as far as its words name subcommands."""
    words, command = ["sfarm"], root
    for argument in argv:
        if argument.startswith("-") or not isinstance(command, TyperGroup):
            continue
        sub = command.commands.get(argument)
        if sub is None:
            break
        words.append(argument)
        command = sub
    return " ".join(words)


def error_document(message: str, *, hint: str | None = None, file: Path | str | None = None,
                   line: int | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON document of a command that failed, secrets masked."""
    return {"error": {"message": redact(message), "hint": None if hint is None else redact(hint),
                      "file": None if file is None else str(file), "line": line, **extra}}


def problem_json(problem: Problem) -> dict[str, Any]:
    """An inventory problem as `validate --json` lists it (SPEC: file, line, path, message,
    hint)."""
    from sfarm.inventory.source import format_key_path

    return {"file": None if problem.file is None else str(problem.file), "line": problem.line,
            "path": format_key_path(problem.path), "message": redact(problem.message),
            "hint": None if problem.hint is None else redact(problem.hint)}


def sfarm_error_document(error: SfarmError) -> dict[str, Any]:
    from sfarm.inventory.problems import InventoryError

    if isinstance(error, InventoryError) and error.problems:
        first = error.problems[0]
        return error_document(error.message, hint=error.hint, file=first.file, line=first.line,
                              problems=[problem_json(problem) for problem in error.problems])
    return error_document(error.message, hint=error.hint, file=error.file, line=error.line)


def validation_document(error: SfarmError) -> dict[str, Any]:
    """`validate --json` of an inventory that could not be validated (SPEC: `{"valid": false,
    "problems": [...]}`): its problems, or the one error that stopped the check (no inventory,
    an unreadable file) as one problem without a key path."""
    from sfarm.inventory.problems import InventoryError

    if isinstance(error, InventoryError) and error.problems:
        problems = [problem_json(problem) for problem in error.problems]
    else:
        problems = [{"file": error.file, "line": error.line, "path": None,
                     "message": redact(error.message),
                     "hint": None if error.hint is None else redact(error.hint)}]
    return {"valid": False, "problems": problems}


def report_error(error: SfarmError) -> None:
    """An SfarmError for people: `error: MESSAGE` and its hint on stderr."""
    # Messages quote TOML ([exchanges.binance]) and code: never read them as rich markup.
    err.print(f"[bold red]error:[/] {escape(redact(error.message))}", markup=True,
              highlight=False)
    if error.hint:
        err.print(f"[dim]hint:[/] {escape(redact(error.hint))}", markup=True, highlight=False)


def report_usage(error: ClickException) -> None:
    """A usage error of typer/click, in typer's own rendering (the usage line and a box)."""
    load_rich_utils().rich_format_error(error)


def usage_document(error: ClickException) -> dict[str, Any]:
    context = getattr(error, "ctx", None)
    hint = (f"`{context.command_path} --help` shows its arguments and options"
            if context is not None else "`sfarm --help` lists the commands")
    return error_document(error.format_message(), hint=hint)


def report_plain(message: str, hint: str | None = None) -> None:
    """A one-line failure that is not an SfarmError (an interrupt, a crash)."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint:[/] {escape(hint)}", markup=True, highlight=False)
