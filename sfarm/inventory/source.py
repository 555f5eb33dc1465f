"""Where a key path sits in TOML source text, so errors can name a line.

tomllib gives values but no positions. A TOML file is line-oriented enough that following table
headers and `key =` lines finds the line of every key the inventory uses; inline tables and
arrays map to the line of their key (or of the array element, for strings in multi-line arrays).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*\[\[?\s*(?P<path>[^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*(?P<key>(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
                  r"""(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_PART = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"([^"]*)"|'([^']*)')\s*(?:\.|$)""")


def split_dotted(text: str) -> tuple[str, ...]:
    """`networks.prod."node 1"` -> ("networks", "prod", "node 1")."""
    parts: list[str] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if not match or match.end() == position:
            break
        parts.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return tuple(parts)


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
            if open_string is not None:  # text of a string, not keys: `[x]` here is no header
                if open_string in line:
                    open_string = None
                continue
            open_string = _opens_multiline_string(line)
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


def _opens_multiline_string(line: str) -> str | None:
    """The delimiter of a multi-line string that starts on `line` and does not end there."""
    for delimiter in ('"""', "'''"):
        if line.count(delimiter) % 2 == 1:
            return delimiter
    return None


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
