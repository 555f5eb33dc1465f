"""Where a key path sits in TOML source text, so errors can name a line.

tomllib gives values but no positions. A TOML file is line-oriented enough that following table
headers and `key =` lines finds the line of every key the inventory uses; inline tables and
arrays map to the line of their key (or of the array element, for strings in multi-line arrays).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]

# TOML keys: bare, "basic" (with backslash escapes) or 'literal', joined by dots.
_BARE = r"[A-Za-z0-9_-]+"
_BASIC = r'"(?:[^"\\]|\\.)*"'
_LITERAL = r"'[^']*'"
_SIMPLE = f"(?:{_BARE}|{_BASIC}|{_LITERAL})"
_DOTTED = rf"{_SIMPLE}(?:\s*\.\s*{_SIMPLE})*"
_HEADER = re.compile(rf"^\s*\[\[?\s*(?P<path>{_DOTTED})\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(rf"^\s*(?P<key>{_DOTTED})\s*=")
_PART = re.compile(
    rf"\s*(?:(?P<bare>{_BARE})|(?P<basic>{_BASIC})|'(?P<literal>[^']*)')\s*(?:\.|$)")


def split_dotted(text: str) -> tuple[str, ...]:
    """`networks.prod."node 1"` -> ("networks", "prod", "node 1")."""
    parts: list[str] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if not match or match.end() == position:
            break
        if match.group("basic") is not None:
            parts.append(_unescape(match.group("basic")))
        else:
            parts.append(match.group("bare") or match.group("literal"))
        position = match.end()
    return tuple(parts)


def _unescape(quoted: str) -> str:
    """A basic-string key as TOML reads it (escapes such as \\" or \\u00e9 applied)."""
    try:
        return str(tomllib.loads(f"k = {quoted}")["k"])
    except tomllib.TOMLDecodeError:  # not valid TOML: the text between the quotes will do
        return quoted[1:-1]


@dataclass
class SourceIndex:
    """Line numbers (1-based) of every table header and key found in a TOML text."""

    lines: list[str]
    positions: dict[tuple[str, ...], int] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> SourceIndex:
        index = cls(text.splitlines())
        table: tuple[str, ...] = ()
        open_string: str | None = None  # the delimiter of a multi-line string being read
        for number, line in enumerate(index.lines, start=1):
            inside_string = open_string is not None
            open_string = _open_string_after(line, open_string)
            if inside_string:  # text of a string, not keys: `[x]` here is no header
                continue
            header = _HEADER.match(line)
            if header:
                table = split_dotted(header.group("path"))
                for depth in range(1, len(table) + 1):
                    index.positions.setdefault(table[:depth], number)
                continue
            key = _KEY.match(line)
            if key:
                path = table + split_dotted(key.group("key"))
                for depth in range(len(table) + 1, len(path) + 1):
                    index.positions.setdefault(path[:depth], number)
        return index

    def line_of(self, path: KeyPath, value: object = None) -> int | None:
        """The line of the longest prefix of `path` found in the text.

        When the path ends in a list index and `value` is a string, the line holding that
        string at or after the key's line is preferred (multi-line arrays).
        """
        keys = tuple(part for part in path if isinstance(part, str))
        for depth in range(len(keys), 0, -1):
            line = self.positions.get(keys[:depth])
            if line is None:
                continue
            if depth == len(keys) and path and isinstance(path[-1], int) and isinstance(value, str):
                return self._find_string_from(line, value) or line
            return line
        return None

    def _find_string_from(self, start: int, value: str) -> int | None:
        quoted = (f'"{value}"', f"'{value}'")
        for number in range(start, min(start + 200, len(self.lines)) + 1):
            if any(q in self.lines[number - 1] for q in quoted):
                return number
            if number > start and (_KEY.match(self.lines[number - 1])
                                   or _HEADER.match(self.lines[number - 1])):
                return None
        return None


def _open_string_after(line: str, open_string: str | None) -> str | None:
    """The delimiter of the multi-line string still open at the end of `line` (None if none),
    given the one open at its start. Quotes inside strings and comments do not count."""
    position = 0
    if open_string is not None:
        position = _closing_end(line, 0, open_string)
        if position < 0:
            return open_string
    while position < len(line):
        if line[position] == "#":
            return None
        delimiter = line[position:position + 3]
        if delimiter in ('"""', "'''"):
            position = _closing_end(line, position + 3, delimiter)
            if position < 0:
                return delimiter
        elif line[position] in "\"'":
            end = _closing_end(line, position + 1, line[position])
            position = end if end >= 0 else len(line)
        else:
            position += 1
    return None


def _closing_end(line: str, start: int, delimiter: str) -> int:
    """The index just past the `delimiter` that closes a string, searching from `start`;
    -1 when the string does not close on this line."""
    position = start
    while True:
        found = line.find(delimiter, position)
        if found < 0:
            return -1
        backslashes = len(line[:found]) - len(line[:found].rstrip("\\"))
        if delimiter[0] == '"' and backslashes % 2 == 1:  # \" inside a basic string
            position = found + 1
            continue
        end = found + len(delimiter)
        if len(delimiter) == 3:  # """a""""" ends with up to two quotes of the string's own
            while end < len(line) and line[end] == delimiter[0] and end - found < 5:
                end += 1
        return end


def format_key_path(path: KeyPath) -> str:
    """("networks", "prod", "nodes", "a", "tasks", 0) -> `networks.prod.nodes.a.tasks[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            text += f".{part}" if text else part
        else:
            text += f'."{part}"' if text else f'"{part}"'
    return text or "(top level)"
