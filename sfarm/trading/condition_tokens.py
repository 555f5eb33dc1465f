"""The words of the condition language (sfarm.trading.condition_grammar): the text cut into
tokens (numbers, names, quoted names, operators), and refused at the first character none
starts with, at a comment, or beyond MAX_TOKENS. Pure: text in, tokens out."""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset({"AND", "OR", "NOT", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "LAG",
                      "OVER", "ORDER", "BY", "ASC"})
FUNCTIONS = frozenset({"ABS", "COALESCE", "LAG"})
COMPARISONS = frozenset({"<", "<=", ">", ">=", "=", "<>", "!="})
# Bound of a condition: real ones are a few dozen tokens. Beyond it polars' planning grows
# faster than linearly (3,000 terms took minutes).
MAX_TOKENS = 500

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>"[A-Za-z_][A-Za-z0-9_]*")
  | (?P<op><=|>=|<>|!=|[=<>+\-*/%(),])
""", re.VERBOSE)


class ConditionError(ValueError):
    """A text that is not a condition: `what` was found at `column` (1-based)."""

    def __init__(self, what: str, column: int) -> None:
        super().__init__(f"{what} at column {column}")
        self.what = what
        self.column = column


class ConditionSyntaxError(ConditionError):
    """Text outside the condition language."""


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, quoted, op, end
    text: str
    column: int  # 1-based

    @property
    def word(self) -> str:
        """A name's keyword form (upper case); other tokens as written."""
        return self.text.upper() if self.kind == "name" else self.text


def tokenize(text: str) -> list[Token]:
    """The tokens of `text`, ending with an `end` token; ConditionSyntaxError at the first
    character no token starts with (a quote ', a semicolon, a dot in a name...) and at a
    comment (`--`)."""
    tokens, position = [], 0
    while position < len(text):
        if text.startswith("--", position):  # SQL's comment: the rest would go unread
            raise ConditionSyntaxError("a comment (--) is not part of conditions", position + 1)
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConditionSyntaxError(f"unexpected character {text[position]!r}", position + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), position + 1))
        position = match.end()
        if len(tokens) > MAX_TOKENS:
            raise ConditionSyntaxError(f"too long: a condition has at most {MAX_TOKENS} "
                                       "tokens (names, numbers, operators)", position + 1)
    tokens.append(Token("end", "", len(text) + 1))
    return tokens
