"""The root command group: every option value typer refuses is quoted in its message.

typer converts option values with pydantic and shows only pydantic's first message
(`Invalid value for '--cash': Input should be a valid number, ...`), which never says what was
given. Every subcommand is parsed inside the root group's `invoke`, so one override here quotes
the value for all commands: `--cash: expected a valid number, ... (got 'abc')`.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup, TyperOption

from sfarm.errors import Interrupted


class QuotingGroup(TyperGroup):
    """A TyperGroup whose bad-option-value errors say which value was refused."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except typer.BadParameter as error:
            error.message = quote_refused_value(error.message, error.__cause__)
            raise
        except KeyboardInterrupt:
            # typer would turn it into a silent exit 130: the edge (sfarm.cli.main) says so.
            raise Interrupted() from None


def quote_refused_value(message: str, cause: BaseException | None) -> str:
    """`message (got VALUE)` when `cause` is the pydantic error of a value the message does
    not quote yet, in the inventory's words (`expected ...`); else `message` unchanged (click's
    own messages already quote it)."""
    from pydantic import ValidationError  # on this error path only: pydantic is loaded then

    if not isinstance(cause, ValidationError):
        return message
    message = message.replace("Input should be", "expected")  # the inventory's words
    errors = cause.errors(include_url=False)
    if not errors or "input" not in errors[0]:
        return message
    value = errors[0]["input"]
    if repr(value) in message or (not isinstance(value, str) and str(value) in message):
        return message
    return f"{message} (got {value!r})"


def _hide_flag_types() -> None:
    """Flags take no value, yet typer's rich help writes `<bool>` beside each (`--json <bool>`),
    which reads as if one were expected; show no type for them, as click does."""
    show_type = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else show_type(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()
