"""Where the command tree for shell completion (sfarm.cli.command_tree) is kept: one JSON file
per build of sfarm in the user's cache directory ($XDG_CACHE_HOME/sfarm, else
~/.cache/sfarm), named by the code's stamp (sfarm.runtime.build.code_stamp: names, sizes and
times of the code files, not their digest, which would take a fifth of the time budget), so
that code that changed (an upgrade, an edited checkout) never answers from the tree of other
code: its file is missing and the first completion writes it (through typer, which answers
that time).

Standard library only: read on every completion, before anything else is imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sfarm.runtime.build import code_stamp

CACHE_PREFIX = "completion-"
KEPT_TREES = 4  # trees of other code kept too: checkouts and venvs used in turn share the dir


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sfarm"


def cache_file() -> Path:
    return cache_dir() / f"{CACHE_PREFIX}{code_stamp()}.json"


def load_tree() -> dict[str, Any] | None:
    """The cached tree of the running code, or None (none yet, unreadable: typer answers)."""
    try:
        with cache_file().open("rb") as file:
            tree = json.load(file)
    except (OSError, ValueError):
        return None
    return tree if isinstance(tree, dict) and "root" in tree else None


def save_tree(tree: dict[str, Any]) -> None:
    """Keep `tree` for the running code (0600 in a 0700 directory, replaced atomically),
    with the KEPT_TREES newest trees of other code. A cache that cannot be written is no
    error: completion then keeps answering through typer."""
    path = cache_file()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(tree, file, separators=(",", ":"))
        os.replace(partial, path)
        others = sorted((old for old in path.parent.glob(f"{CACHE_PREFIX}*.json") if old != path),
                        key=lambda old: old.stat().st_mtime_ns, reverse=True)
        for old in others[KEPT_TREES:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass
