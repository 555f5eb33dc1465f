"""Every command's --help: it runs, teaches with an example, and shows no value type beside a
flag (a flag takes no value)."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from sfarm.cli.main import app
from tests.fixtures.cli import run_here


def _command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every visible command under `group` (typer's groups hold their commands in
    `commands`)."""
    paths = []
    for name, command in group.commands.items():
        if command.hidden:
            continue
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths += _command_paths(command, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_group(app))


def test_the_commands_are_found() -> None:
    assert {("status",), ("report",), ("data", "show"), ("backtest",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help_runs_and_flags_show_no_type(path: tuple[str, ...]) -> None:
    result = run_here(*path, "--help")
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
