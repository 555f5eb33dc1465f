"""What the farm key may ask of a producer's gate (sfarm.resolver.gate), as a pure parse of
`SSH_ORIGINAL_COMMAND`: a change stream of datasets of an allowed root, or an rsync pull of one
such dataset with options rrsync will check. Anything else is `Refused`, with the reason.

Imports only the stdlib and the store's layout: the gate starts on every pull.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from sfarm.data.layout import DATA_DIR, dataset_dir
from sfarm.errors import UsageError

WATCH_COMMAND = "sfarm-watch"
PREFIX = "sfarm farm key:"

# One part of a dataset id as the gate admits it: the store's ids are made of exchange, market,
# timeframe, indicator key and task names; never empty, `.`, `..` or hidden, never a character
# a shell or rsync's argument escaping would touch.
_ID_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:+@=,-]*", re.ASCII)
# An option word of the rsync server command line: passed on to rrsync, which splits its
# command on whitespace and reads backslashes as escapes, so neither may appear.
_RSYNC_OPTION = re.compile(r"-[A-Za-z0-9_.:+@=,%/-]*", re.ASCII)


class Refused(Exception):
    """The request is not one the farm key may make; `str()` says why."""


@dataclass(frozen=True)
class WatchRequest:
    root: str
    dataset_ids: tuple[str, ...]


@dataclass(frozen=True)
class PullRequest:
    root: str
    dataset_id: str
    options: tuple[str, ...]  # the client's rsync server options, for rrsync to check


def normalised_roots(roots: Sequence[str]) -> tuple[str, ...]:
    """The allowed roots as compared with requests; ValueError when one is not absolute or has
    a `..` component (the authorized line is wrong, not the request)."""
    if not roots:
        raise ValueError("no node root given")
    checked = []
    for root in roots:
        if not posixpath.isabs(root) or ".." in root.split("/"):
            raise ValueError(f"node root {root!r} is not an absolute path without `..`")
        checked.append(posixpath.normpath(root))
    return tuple(checked)


def parse_request(command: str | None, roots: Sequence[str]) -> WatchRequest | PullRequest:
    """The request `command` (SSH_ORIGINAL_COMMAND, None for a login) makes, for the
    normalised allowed `roots`; Refused when the farm key may not make it."""
    if command is None or not command.strip():
        raise Refused("refused a login (no command)")
    try:
        words = shlex.split(command)
    except ValueError:
        raise Refused("refused a command that does not parse") from None
    if words[0] == WATCH_COMMAND:
        return _parse_watch(words[1:], roots)
    if words[:3] == ["rsync", "--server", "--sender"]:
        return _parse_pull(words[3:], roots)
    if words[:2] == ["rsync", "--server"]:
        raise Refused("refused an rsync that would write (the key only reads)")
    raise Refused(f"refused the command {_shorten(words[0])!r}")


def _parse_watch(arguments: list[str], roots: Sequence[str]) -> WatchRequest:
    if len(arguments) < 2:
        raise Refused(f"{WATCH_COMMAND} needs a node root and at least one dataset id")
    root = _allowed_root(arguments[0], roots)
    return WatchRequest(root, tuple(_dataset_id(word) for word in arguments[1:]))


def _parse_pull(arguments: list[str], roots: Sequence[str]) -> PullRequest:
    if len(arguments) < 2 or arguments[-2] != ".":
        raise Refused("refused an rsync pull that does not name one directory (expected "
                      "`rsync --server --sender OPTIONS . ROOT/data/ID/`; a client's -s, "
                      "--secluded-args, hides the path and is refused)")
    options = arguments[:-2]
    for option in options:
        if not _RSYNC_OPTION.fullmatch(option):
            raise Refused(f"refused the rsync argument {_shorten(option)!r}")
    path = arguments[-1]
    if not path.endswith("/"):
        raise Refused("refused a pull of a path without a trailing `/` (pull ROOT/data/ID/)")
    if ".." in path.split("/"):
        raise Refused("refused a path with `..`")
    for root in roots:
        prefix = posixpath.join(root, DATA_DIR) + "/"
        normal = posixpath.normpath(path)
        if normal.startswith(prefix):
            return PullRequest(root, _dataset_id(normal[len(prefix):]), tuple(options))
    raise Refused(f"refused the path {_shorten(path)!r}: not a dataset in a node root's data/")


def _allowed_root(word: str, roots: Sequence[str]) -> str:
    if posixpath.isabs(word) and ".." not in word.split("/"):
        normal = posixpath.normpath(word)
        if normal in roots:
            return normal
    raise Refused(f"refused the node root {_shorten(word)!r}")


def _dataset_id(word: str) -> str:
    parts = word.split("/")
    if not 3 <= len(parts) <= 5 or not all(_ID_PART.fullmatch(part) for part in parts):
        raise Refused(f"refused {_shorten(word)!r}: not a dataset id")
    try:
        dataset_dir("/", word)  # the store's own check of the shape (kind, parts, timeframe)
    except UsageError:
        raise Refused(f"refused {_shorten(word)!r}: not a dataset id") from None
    return word


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def what_the_key_may_do(roots: Sequence[str]) -> str:
    return (f"it may only run `{WATCH_COMMAND} ROOT ID...` or pull ROOT/data/ID/ with rsync, "
            f"for ROOT in {', '.join(roots)}")


