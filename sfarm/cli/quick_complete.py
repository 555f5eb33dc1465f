"""Shell completion without typer: answers a `_SFARM_COMPLETE=complete_SHELL` request from the
command tree (sfarm.cli.command_tree, cached by sfarm.cli.completion_cache) in a few
milliseconds instead of the ~0.5 s it takes to import typer, rich and pydantic.

It follows typer's completion step by step, so that it gives the same answers: its parser in
resilient mode (a usage error ends parsing, keeping what was parsed), its walk down the
command groups (`_resolve_context`), its choice of what completes the last word
(`_resolve_incomplete`) and each shell's output format (typer._completion_classes). Names come
from the same completers typer calls (sfarm.cli.completion), given a context of the same shape.
tests/test_cli_completion.py compares the two on a corpus of command lines.
"""

from __future__ import annotations

import importlib
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SHELLS = ("bash", "zsh", "fish")
Item = tuple[str, str | None]  # a completion: its value and, for zsh and fish, its help
Command = dict[str, Any]  # a command of the tree (sfarm.cli.command_tree)
Param = dict[str, Any]


class _ParseStop(Exception):
    """A usage error of the parser: in resilient mode parsing stops there."""


class Context:
    """What a completer sees of typer's context: the values so far, and the group above.
    (A plain class: dataclasses would import inspect, a tenth of this path's time.)"""

    def __init__(self, command: Command, parent: Context | None) -> None:
        self.command = command
        self.parent = parent
        self.params: dict[str, Any] = {}
        self.given: set[str] = set()  # parameters given on the command line
        self.args: list[str] = []  # what parsing left (a group: its command and words)


def split_words(line: str) -> list[str]:
    """typer's split_arg_string: shlex words, a word cut by the cursor kept as it is."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:
        words.append(lexer.token)
    return words


def _options(command: Command) -> tuple[dict[str, Param], dict[str, Param]]:
    """The parser's long and short options (`-x` short, anything longer long)."""
    long: dict[str, Param] = {}
    short: dict[str, Param] = {}
    for param in command["params"]:
        if param["option"]:
            for opt in [*param["opts"], *param["secondary_opts"]]:
                (short if len(opt) == 2 and opt[1] != "-" else long)[opt] = param
    return long, short


def _takes_value(param: Param) -> bool:
    return param["action"] in ("store", "append")


def _parse(command: Command, args: list[str], parent: Context | None) -> Context:
    """typer's make_context in resilient mode: options, then arguments, then values."""
    ctx = Context(command, parent)
    long, short = _options(command)
    rargs = list(args)
    largs: list[str] = []
    values: dict[str, Any] = {}
    try:
        while rargs:
            arg = rargs.pop(0)
            if arg == "--":
                break
            if arg[:1] == "-" and len(arg) > 1:
                _option(arg, rargs, largs, long, short, values, command)
            elif command["interspersed"]:
                largs.append(arg)
            else:
                rargs.insert(0, arg)
                break
        largs = _arguments(command, largs + rargs, values)
    except _ParseStop:
        pass
    for param in command["params"]:
        _settle(ctx, param, values)
    ctx.args = largs
    return ctx


def _option(arg: str, rargs: list[str], largs: list[str], long: dict[str, Param],
            short: dict[str, Param], values: dict[str, Any], command: Command) -> None:
    name, equals, explicit = arg.partition("=")
    if name in long:
        param = long[name]
        if _takes_value(param):
            if equals:
                rargs.insert(0, explicit)
            _store(param, _value(rargs), values)
        elif equals:
            raise _ParseStop
        else:
            _store(param, None, values)
        return
    if arg[:2] == "--":
        if not command["ignore_unknown"]:
            raise _ParseStop
        largs.append(arg)
        return
    unknown: list[str] = []
    for index, char in enumerate(arg[1:], start=2):
        found = short.get(f"-{char}")
        if found is None:
            if command["ignore_unknown"]:
                unknown.append(char)
                continue
            raise _ParseStop
        if _takes_value(found):
            if index < len(arg):
                rargs.insert(0, arg[index:])
            _store(found, _value(rargs), values)
            break
        _store(found, None, values)
    if unknown:
        largs.append("-" + "".join(unknown))


def _value(rargs: list[str]) -> str:
    if not rargs:
        raise _ParseStop  # "option requires an argument"
    return rargs.pop(0)


def _store(param: Param, value: str | None, values: dict[str, Any]) -> None:
    action, name = param["action"], param["name"]
    if action == "store":
        values[name] = value
    elif action == "append":
        values.setdefault(name, []).append(value)
    elif action == "count":
        values[name] = values.get(name, 0) + 1
    else:  # a flag
        values[name] = True


def _arguments(command: Command, words: list[str], values: dict[str, Any]) -> list[str]:
    """The parser's _unpack_args for arguments taking one word or all the rest (-1)."""
    arguments = [param for param in command["params"] if not param["option"]]
    if any(param["nargs"] not in (1, -1) for param in arguments):
        raise NotImplementedError("arguments of nargs > 1")  # the slow path answers
    star = next((i for i, param in enumerate(arguments) if param["nargs"] == -1), None)
    after = len(arguments) - star - 1 if star is not None else 0
    rest = list(words)
    for index, param in enumerate(arguments):
        if star is None or index < star:
            values[param["name"]] = rest.pop(0) if rest else None
        elif index == star:
            taken = rest[:max(len(rest) - after, 0)]
            rest = rest[len(taken):]
            values[param["name"]] = tuple(taken) or None
        else:
            values[param["name"]] = rest.pop(0) if rest else None
    return [] if star is not None else rest


def _settle(ctx: Context, param: Param, values: dict[str, Any]) -> None:
    """A parameter's value as typer's consume_value finds it: the command line, else its
    environment variable, else its default; paths made Path as typer converts them."""
    name = param["name"]
    value = values.get(name)
    if value is not None:
        ctx.given.add(name)
    else:
        envvars = param["envvar"]
        for envvar in [envvars] if isinstance(envvars, str) else envvars or []:
            if os.environ.get(envvar):
                value = os.environ[envvar]
                break
        else:
            value = param["default"]
    if param["path"] and value is not None:
        value = (tuple(Path(item) for item in value) if isinstance(value, list | tuple)
                 else Path(value))
    ctx.params[name] = value


def _resolve_context(root: Command, args: list[str]) -> Context:
    ctx = _parse(root, args, None)
    rest = list(ctx.args)
    while rest and "commands" in ctx.command:
        command = ctx.command["commands"].get(rest[0])
        if command is None:
            return ctx
        ctx = _parse(command, rest[1:], ctx)
        rest = list(ctx.args)
    return ctx


def _option_waiting_for_value(args: list[str], param: Param) -> bool:
    if not param["option"] or not _takes_value(param):
        return False
    last = args[-1] if args else ""
    return last.startswith("-") and last in param["opts"]


def _argument_open(ctx: Context, param: Param) -> bool:
    return not param["option"] and (param["nargs"] == -1 or param["name"] not in ctx.given)


def completions(root: Command, args: list[str], incomplete: str, shell: str) -> list[Item]:
    """What typer offers for `incomplete` after the words `args`, with help as `shell`
    shows it."""
    ctx = _resolve_context(root, args)
    args = list(args)
    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args.append(name)
    if "--" in args or not incomplete.startswith("-"):
        params = ctx.command["params"]
        param = next((p for p in params if _option_waiting_for_value(args, p)), None)
        param = param or next((p for p in params if _argument_open(ctx, p)), None)
        if param is not None:
            return _values(ctx, param, incomplete)
    return _command_items(ctx, incomplete, shell)


def _values(ctx: Context, param: Param, incomplete: str) -> list[Item]:
    if param["complete"] is not None:
        module, _, function = param["complete"].partition(":")
        completer: Callable[[Any, str], list[str]] = getattr(
            importlib.import_module(module), function)
        return [(name, None) for name in completer(ctx, incomplete)
                if name.startswith(incomplete)]
    if param["choices"] is not None:
        return [(str(choice), None) for choice in param["choices"]
                if str(choice).startswith(incomplete)]
    if param["file"]:
        return [(incomplete, None)]
    return []


def _command_items(ctx: Context, incomplete: str, shell: str) -> list[Item]:
    command = ctx.command
    items: list[Item] = [
        (name, (sub["help"] or {}).get(shell))
        for name, sub in command.get("commands", {}).items()
        if name.startswith(incomplete) and not sub["hidden"]]
    if incomplete and not incomplete[0].isalnum():
        for param in command["params"]:
            if (not param["option"] or param["hidden"]
                    or (not param["multiple"] and param["name"] in ctx.given)):
                continue
            items.extend((name, (param["help"] or {}).get(shell))
                         for name in [*param["opts"], *param["secondary_opts"]]
                         if name.startswith(incomplete))
    return items


def zsh_escape(text: str) -> str:
    """typer's ZshComplete escape, of values here and of help texts in the tree."""
    return (text.replace('"', '""').replace("'", "''").replace("$", "\\$")
            .replace("`", "\\`").replace(":", r"\\:"))


def answer(tree: dict[str, Any], shell: str,
           environ: Mapping[str, str]) -> tuple[str | None, int]:
    """The text typer prints for a completion request of `shell` (None: nothing printed)
    and the exit status. `environ` holds the shell's request (COMP_WORDS, ...); options'
    environment variables are read from the process's, as typer reads them."""
    root = tree["root"]
    if shell == "bash":
        words = split_words(environ["COMP_WORDS"])
        cword = int(environ["COMP_CWORD"])
        args = words[1:cword]
        incomplete = words[cword] if cword < len(words) else ""
        return "\n".join(value for value, _ in completions(root, args, incomplete, shell)), 0
    line = environ.get("_TYPER_COMPLETE_ARGS", "")
    args = split_words(line)[1:]
    incomplete = ""
    if args and not line.endswith(" "):
        incomplete = args.pop()
    items = completions(root, args, incomplete, shell)
    if shell == "zsh":
        lines = [f'"{zsh_escape(value)}":"{help_}"' if help_ else f'"{zsh_escape(value)}"'
                 for value, help_ in items]
        return (f"_arguments '*: :(({chr(10).join(lines)}))'" if lines else "_files"), 0
    action = environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
    lines = [f"{value}\t{help_}" if help_ else value for value, help_ in items]
    if action == "is-args":
        return None, 0 if lines else 1
    return ("\n".join(lines) if action == "get-args" and lines else ""), 0


def complete(tree: dict[str, Any], instruction: str) -> int:
    """Answer `instruction` (complete_bash, complete_zsh, complete_fish) on stdout as typer
    does (one line more: click.echo's newline); the exit status."""
    text, status = answer(tree, instruction.partition("_")[2], os.environ)
    if text is not None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return status


def understood(instruction: str) -> bool:
    """Whether this path answers `instruction`; else typer does (source_*, powershell)."""
    kind, _, shell = instruction.partition("_")
    return kind == "complete" and shell in SHELLS
