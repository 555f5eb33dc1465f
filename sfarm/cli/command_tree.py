"""The command tree as shell completion needs it, generated from the typer app: commands,
their options and arguments, how the parser takes each (a value or not, repeatable), which
name completer a value or argument uses, the help texts a shell shows. sfarm.cli.quick_complete
answers from it without importing typer; sfarm.cli.completion_cache keeps it on disk.

Generated, never kept by hand: walks `typer.main.get_command(app)` and reads each command's
parser as typer sets it up (`make_parser`), so the description says what typer's completion
sees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer._click.core import Context
from typer._completion_classes import _sanitize_help_text  # typer's rendering of shell help
from typer.core import TyperGroup, TyperOption

from sfarm.cli.help_render import load_rich_utils
from sfarm.cli.quick_complete import zsh_escape

TREE_FORMAT = 1  # bump when the description's shape changes


def describe_app(app: typer.Typer) -> dict[str, Any]:
    """The whole command tree of `app`, as a JSON-able document."""
    command = typer.main.get_command(app)
    ctx = Context(command, info_name="sfarm", **command.context_settings)
    with unwrapped_help():
        return {"format": TREE_FORMAT, "root": _command(command, ctx)}


@contextmanager
def unwrapped_help() -> Iterator[None]:
    """typer renders a help text for zsh and fish at the width of the terminal it finds,
    breaking lines inside a completion's description; the tree keeps each on one line (the
    same text, whatever the terminal)."""
    load_rich_utils()  # imported as the app imports it (without rich.markdown), then:
    from typer import rich_utils

    width = rich_utils.MAX_WIDTH
    rich_utils.MAX_WIDTH = 1_000_000
    try:
        yield
    finally:
        rich_utils.MAX_WIDTH = width


def _helps(text: str | None) -> dict[str, str] | None:
    """A help text as typer shows it to zsh and to fish (escaped, rich markup rendered away)."""
    if not text:
        return None
    return {"zsh": _sanitize_help_text(zsh_escape(text)),
            "fish": _sanitize_help_text(re.sub(r"\s", " ", text))}


def _command(command: Any, ctx: Context) -> dict[str, Any]:
    parser = command.make_parser(ctx)
    parsed = {id(option.obj): option
              for option in [*parser._long_opt.values(), *parser._short_opt.values()]}
    node: dict[str, Any] = {
        "hidden": bool(command.hidden),
        "help": _helps(command.get_short_help_str()),
        "interspersed": bool(ctx.allow_interspersed_args),
        "ignore_unknown": bool(ctx.ignore_unknown_options),
        "params": [_param(param, ctx, parsed.get(id(param)))
                   for param in command.get_params(ctx)],
    }
    if isinstance(command, TyperGroup):
        node["commands"] = {}
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None:
                sub_ctx = Context(sub, parent=ctx, info_name=name, **sub.context_settings)
                node["commands"][name] = _command(sub, sub_ctx)
    return node


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return str(value)  # a Path, an enum: completers read names and paths only


def _param(param: Any, ctx: Context, parsed: Any) -> dict[str, Any]:
    descriptor = param.type_descriptor
    completer = descriptor.parameter_info.autocompletion
    try:
        default = param.get_default(ctx, call=True)
    except Exception:  # a default that needs more than the context: completers never read it
        default = None
    described: dict[str, Any] = {
        "name": param.name,
        "option": isinstance(param, TyperOption),
        "nargs": param.nargs,
        "multiple": bool(param.multiple),
        "envvar": _json_value(param.envvar),
        "path": bool(descriptor.is_path),
        "default": _json_value(default),
        "complete": None if completer is None
        else f"{completer.__module__}:{completer.__qualname__}",
        "choices": None if descriptor.choices is None
        else [getattr(choice, "value", choice) for choice in descriptor.choices],
        "file": bool(descriptor.is_file),
    }
    if isinstance(param, TyperOption):
        described.update(
            opts=list(param.opts), secondary_opts=list(param.secondary_opts),
            hidden=bool(param.hidden), help=_helps(param.help),
            action=parsed.action if parsed is not None else "store",
            value_nargs=parsed.nargs if parsed is not None else 1)
    return described
