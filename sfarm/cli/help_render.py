"""typer's help renderer without the two rich modules it imports and sfarm never uses.

`typer.rich_utils` renders every `--help` and usage error. It imports `rich.markdown` (for
rich_markup_mode="markdown"; sfarm's is "rich") and `rich.traceback` (for pretty exceptions,
which sfarm turns off: the edge in sfarm.cli.main writes a crash log instead); the two, with
markdown-it, pygments and attrs under them, take about as long to import as typer and
rich.console together. `load_rich_utils` imports typer.rich_utils with stand-ins for those two
names, each importing the real class the moment it is used, so nothing changes but the time.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any


class _Markdown:
    """Stands for rich.markdown.Markdown: making one makes the real one."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rich.markdown").Markdown(*args, **kwargs)


class _Traceback:
    """Stands for rich.traceback.Traceback, of which typer calls `from_exception` only."""

    @classmethod
    def from_exception(cls, *args: Any, **kwargs: Any) -> Any:
        return importlib.import_module("rich.traceback").Traceback.from_exception(*args,
                                                                                   **kwargs)


def load_rich_utils() -> ModuleType:
    """typer.rich_utils, imported (once) with the stand-ins above."""
    loaded = sys.modules.get("typer.rich_utils")
    if loaded is not None:
        return loaded
    stand_ins = {"rich.markdown": ("Markdown", _Markdown),
                 "rich.traceback": ("Traceback", _Traceback)}
    placed = []
    for name, (attribute, stand_in) in stand_ins.items():
        if name not in sys.modules:  # already imported for real: typer gets the real one
            module = ModuleType(name)
            setattr(module, attribute, stand_in)
            sys.modules[name] = module
            placed.append(name)
    try:
        return importlib.import_module("typer.rich_utils")
    finally:
        for name in placed:  # later imports of these modules load the real ones
            del sys.modules[name]
